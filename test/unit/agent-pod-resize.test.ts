/**
 * The agent's side of in-place pod resize (issue 22, KEP-1287 / KEP-5067): admission against
 * node allocatable, the allocation checkpoint, the actuation plan, and the status it reports.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { V1Container, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { admitResize, AllocationManager, resizeRequested, allocationOf, type Allocatable } from '../../agent/pods/allocation.js';
import { planResize } from '../../agent/pods/resize.js';
import { actualResources, withResizeStatus, type ResizeStatusInput } from '../../agent/status/resize-status.js';
import type { ContainerStatus, LinuxContainerResources } from '../../cri/runtime.js';
import { createLogger } from '../../lib/log.js';

const log = createLogger('test', 'silent');
const mi = 1024 * 1024;
const options = { cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: 0, minOomScoreAdj: -1000 };

function container(name: string, cpu: string, memory: string, restartMemory = false): V1Container {
  return {
    name,
    image: 'i:1',
    resources: { requests: { cpu, memory }, limits: { cpu, memory } },
    ...(restartMemory ? { resizePolicy: [{ resourceName: 'memory', restartPolicy: 'RestartContainer' }] } : {}),
  };
}
function pod(uid: string, containers: V1Container[], generation = 1): V1Pod {
  return { metadata: { name: uid, namespace: 'ns', uid, generation }, spec: { containers } };
}
function running(name: string, resources: LinuxContainerResources): ContainerStatus {
  return {
    id: `${name}-id`, podSandboxId: 'sb', metadata: { name, attempt: 0 }, state: 'CONTAINER_RUNNING', createdAt: 1, startedAt: 2, finishedAt: 0, exitCode: 0,
    image: { image: 'i:1' }, imageRef: 'sha256:abc', reason: '', message: '', labels: {}, annotations: {}, mounts: [], logPath: '', resources,
  };
}
/** What the runtime reports for a container started with cpu limit = request and a memory limit. */
const cgroupOf = (milli: number, memory: number): LinuxContainerResources => ({ cpuShares: Math.floor((milli * 1024) / 1000), cpuQuota: milli * 100, cpuPeriod: 100_000, memoryLimitInBytes: memory });

describe('admitResize (canResizePod)', () => {
  const allocatable: Allocatable = { cpu: '1', memory: '1Gi' };
  it('is Infeasible when the pod alone exceeds allocatable', () => {
    expect(admitResize(pod('a', [container('c', '2', '64Mi')]), [], allocatable)).toEqual({
      reason: 'Infeasible',
      message: "Node didn't have enough capacity: cpu, requested: 2000, capacity: 1000",
    });
  });
  it('is Deferred when it does not fit beside the other pods, and fits once they leave', () => {
    const wanted = pod('a', [container('c', '600m', '64Mi')]);
    const other = pod('b', [container('c', '500m', '64Mi')]);
    expect(admitResize(wanted, [other], allocatable)).toEqual({
      reason: 'Deferred',
      message: "Node didn't have enough resource: cpu, requested: 600, used: 500, capacity: 1000",
    });
    expect(admitResize(wanted, [], allocatable)).toBeUndefined();
  });
  it('checks memory as well', () => {
    expect(admitResize(pod('a', [container('c', '100m', '2Gi')]), [], allocatable)?.reason).toBe('Infeasible');
  });
});

describe('AllocationManager', () => {
  let dir: string;
  let allocatable: Allocatable | undefined;
  let active: V1Pod[];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'knode-alloc-'));
    allocatable = { cpu: '1', memory: '1Gi' };
    active = [];
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const manager = () => new AllocationManager({ rootDir: dir, log, allocatable: () => allocatable, activePods: () => active });

  it('allocates a new pod from its spec, defers a resize that does not fit, allocates it when room frees up', () => {
    const m = manager();
    const a = pod('a', [container('c', '400m', '64Mi')]);
    const b = pod('b', [container('c', '500m', '64Mi')]);
    active = [a, b];
    expect(m.allocate(a).pod).toBe(a);
    m.allocate(b);
    const resized = pod('a', [container('c', '600m', '64Mi')], 2);
    const deferred = m.allocate(resized);
    expect(deferred.pending?.reason).toBe('Deferred');
    // still runs with what was admitted
    expect(deferred.pod.spec!.containers[0]!.resources!.limits!.cpu).toBe('400m');
    expect(resizeRequested(resized, m.get('a')!)).toBe(true);
    m.release('b');
    active = [resized];
    const done = m.allocate(resized);
    expect(done.pending).toBeUndefined();
    expect(m.get('a')).toEqual(allocationOf(resized));
  });

  it('defers every resize while node allocatable is unknown', () => {
    allocatable = undefined;
    const m = manager();
    m.allocate(pod('a', [container('c', '100m', '64Mi')]));
    expect(m.allocate(pod('a', [container('c', '200m', '64Mi')])).pending?.reason).toBe('Deferred');
  });

  it('keeps the allocations across a restart (checkpoint on disk)', async () => {
    const m = manager();
    m.allocate(pod('a', [container('c', '100m', '64Mi')]));
    const restarted = manager();
    await restarted.load();
    expect(restarted.get('a')).toEqual({ c: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '100m', memory: '64Mi' } } });
    expect(JSON.parse(await readFile(join(dir, 'allocated_pods_state'), 'utf8'))).toMatchObject({ version: 1 });
  });

  it('starts empty from a corrupt checkpoint', async () => {
    await writeFile(join(dir, 'allocated_pods_state'), '{"version": 7}');
    const m = manager();
    await m.load();
    expect(m.get('a')).toBeUndefined();
  });

  it('treats equal quantities in other spellings as no resize', () => {
    const m = manager();
    m.allocate(pod('a', [container('c', '1', '1Gi')]));
    expect(resizeRequested(pod('a', [container('c', '1000m', '1024Mi')]), m.get('a')!)).toBe(false);
  });
});

describe('planResize', () => {
  const allocated = pod('a', [container('main', '150m', '128Mi'), container('side', '200m', '96Mi', true)]);
  it('updates NotRequired containers in place and restarts RestartContainer ones', () => {
    const plan = planResize(allocated, new Map([['main', running('main', cgroupOf(100, 64 * mi))], ['side', running('side', cgroupOf(200, 64 * mi))]]), options);
    expect(plan.map((e) => [e.container.name, e.restart])).toEqual([['main', false], ['side', true]]);
    expect(plan[0]!.desired).toEqual({ cpuShares: 153, cpuQuota: 15_000, cpuPeriod: 100_000, memoryLimitInBytes: 128 * mi });
  });
  it('leaves containers whose settings match, and a runtime that reports none', () => {
    const plan = planResize(allocated, new Map([['main', running('main', cgroupOf(150, 128 * mi))], ['side', { ...running('side', {}), resources: undefined }]]), options);
    expect(plan).toEqual([]);
  });
  it('does not restart for a cpu-only change when only memory asks for a restart', () => {
    const plan = planResize(allocated, new Map([['side', running('side', cgroupOf(100, 96 * mi))]]), options);
    expect(plan.map((e) => e.restart)).toEqual([false]);
  });
});

describe('resize status', () => {
  const allocated = pod('a', [container('main', '150m', '128Mi')], 3);
  const base: V1PodStatus = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ name: 'main', image: 'i:1', imageID: '', ready: true, restartCount: 0 }] };
  const input = (partial: Partial<ResizeStatusInput>): ResizeStatusInput => ({ allocated, containers: [running('main', cgroupOf(150, 128 * mi))], options, now: Date.UTC(2026, 0, 1), ...partial });

  it('reports the actual resources from the cgroup settings, memory as a BinarySI quantity', () => {
    expect(actualResources(allocated.spec!.containers[0]!.resources!, cgroupOf(100, 64 * mi))).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '100m', memory: '64Mi' } });
  });

  it('sets allocatedResources, no resize condition when actual matches, and observedGeneration everywhere', () => {
    const status = withResizeStatus(base, input({}));
    expect(status.containerStatuses![0]!.allocatedResources).toEqual({ cpu: '150m', memory: '128Mi' });
    expect(status.containerStatuses![0]!.resources).toEqual(allocated.spec!.containers[0]!.resources);
    expect(status.conditions!.map((c) => c.type)).toEqual(['Ready']);
    expect(status.observedGeneration).toBe(3);
    expect(status.conditions!.every((c) => c.observedGeneration === 3)).toBe(true);
  });

  it('sets PodResizeInProgress while actual differs from allocated, with reason Error and the message on failure', () => {
    const inProgress = withResizeStatus(base, input({ containers: [running('main', cgroupOf(100, 64 * mi))] }));
    expect(inProgress.conditions!.find((c) => c.type === 'PodResizeInProgress')).toMatchObject({ status: 'True', observedGeneration: 3 });
    const failed = withResizeStatus(base, input({ error: 'below usage' }));
    expect(failed.conditions!.find((c) => c.type === 'PodResizeInProgress')).toMatchObject({ reason: 'Error', message: 'below usage' });
  });

  it('sets PodResizePending with its reason and keeps its transition time while unchanged', () => {
    const pending = { reason: 'Infeasible' as const, message: "Node didn't have enough capacity" };
    const first = withResizeStatus(base, input({ pending }));
    const condition = first.conditions!.find((c) => c.type === 'PodResizePending')!;
    expect(condition).toMatchObject({ status: 'True', reason: 'Infeasible', message: pending.message });
    const later = withResizeStatus(base, input({ pending, previous: first, now: Date.UTC(2026, 0, 2) }));
    expect(later.conditions!.find((c) => c.type === 'PodResizePending')!.lastTransitionTime).toEqual(condition.lastTransitionTime);
  });

  it('sets no resize condition on a terminated pod', () => {
    const status = withResizeStatus({ ...base, phase: 'Succeeded' }, input({ pending: { reason: 'Deferred', message: 'm' } }));
    expect(status.conditions!.map((c) => c.type)).toEqual(['Ready']);
  });
});
