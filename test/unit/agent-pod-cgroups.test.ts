/**
 * The pod cgroup step: the worker ensures the pod cgroup before the sandbox and removes it with
 * the pod (FakePodCgroups over the fake runtime); CgroupfsPodCgroups' file layout on v1- and
 * v2-shaped trees in a temp directory (the real kernel is in
 * test/integration/agent-pod-cgroups.test.ts).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { V1Container, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { createLogger } from '../../lib/log.js';
import { Backoff } from '../../agent/pods/backoff.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { CgroupfsPodCgroups } from '../../agent/cgroups/pod-cgroups.js';
import { FakePodCgroups } from '../helpers/fake-pod-cgroups.js';
import { kubepodsResourceConfig } from '../../agent/cgroups/node-allocatable.js';
import { PodWorkers } from '../../agent/pods/workers.js';
import type { PodWorkerDeps } from '../../agent/pods/worker.js';

const root = mkdtempSync(join(tmpdir(), 'knode-agent-pod-cgroups-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const image = 'knode.local/busybox:1';
const log = createLogger('test', 'silent');
let counter = 0;

const c = (name: string, limits?: Record<string, string>, requests?: Record<string, string>): V1Container => ({
  name,
  image,
  imagePullPolicy: 'IfNotPresent',
  command: ['sleep', '3600'],
  ...(limits || requests ? { resources: { ...(limits ? { limits } : {}), ...(requests ? { requests } : {}) } } : {}),
});
function makePod(containers: V1Container[]): V1Pod {
  const n = counter++;
  return { metadata: { name: `p${n}`, namespace: 'default', uid: `cg-uid-${n}` }, spec: { restartPolicy: 'Always', terminationGracePeriodSeconds: 1, containers } };
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function harness(podCgroups: FakePodCgroups) {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const runtime = new FakeRuntime({ now: () => clock.now() * 1e6, images: [image] });
  const statuses = new Map<string, V1PodStatus>();
  const deps: PodWorkerDeps = {
    runtime, clock, restartBackoff: new Backoff(clock), imageBackoff: new Backoff(clock), rootDir: join(root, 'root'), log,
    runtimeConfig: {
      nodeName: 'node-1', podLogsDir: join(root, 'logs'), clusterDomain: 'cluster.local', clusterDNS: [], hostDNS: { servers: [], searches: [], options: [] },
      cgroupDriver: 'cgroupfs', cgroupRoot: '', cgroupsPerQOS: true, cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: -1,
    },
    objects: async () => ({ configMap: () => undefined, secret: () => undefined }),
    node: () => ({ hostIP: '10.0.0.1', memoryCapacityBytes: 8 * 2 ** 30 }),
    onStatus: (pod, status) => statuses.set(pod.metadata!.uid!, status),
    onTerminated: () => undefined,
    resyncMs: 3_600_000,
    podCgroups,
  };
  return { runtime, clock, statuses, workers: new PodWorkers(deps) };
}

describe('pod worker: the pod cgroup step', () => {
  it('ensures the pod cgroup before the sandbox, removes it with the pod', async () => {
    const cgroups = new FakePodCgroups();
    const h = harness(cgroups);
    let sandboxesAtEnsure = -1;
    const ensure = cgroups.ensure.bind(cgroups);
    cgroups.ensure = async (pod) => {
      sandboxesAtEnsure = h.runtime.calls.filter((call) => call.method === 'runPodSandbox').length;
      await ensure(pod);
    };
    const pod = makePod([c('a', { cpu: '100m', memory: '16Mi' })]);
    const uid = pod.metadata!.uid!;
    h.workers.sync(new Map([[uid, pod]]));
    await until(() => h.statuses.get(uid)?.phase === 'Running', 'Running');
    expect(cgroups.ensured).toEqual([uid]);
    expect(sandboxesAtEnsure).toBe(0);
    h.workers.sync(new Map());
    await until(() => cgroups.removed.includes(uid), 'cgroup removed');
    await h.workers.stop();
  });

  it('a pod cgroup that cannot be made: ContainerCreating with the reason, no sandbox, retried with back-off', async () => {
    const cgroups = new FakePodCgroups();
    cgroups.failEnsure = new Error('cannot write 67108864 to memory.limit_in_bytes', { cause: new Error('EBUSY') });
    const h = harness(cgroups);
    const pod = makePod([c('a', { memory: '64Mi' }, { memory: '32Mi' })]);
    const uid = pod.metadata!.uid!;
    h.workers.sync(new Map([[uid, pod]]));
    await until(() => h.statuses.get(uid)?.containerStatuses?.[0]?.state?.waiting?.message !== undefined, 'waiting reason');
    const waiting = h.statuses.get(uid)!.containerStatuses![0]!.state!.waiting!;
    expect(waiting.reason).toBe('ContainerCreating');
    expect(waiting.message).toMatch(/cgroups exist and are correctly applied: cannot write 67108864 to memory.limit_in_bytes: EBUSY/);
    expect(h.runtime.sandboxes.size).toBe(0);
    cgroups.failEnsure = undefined;
    h.clock.advance(11_000);
    h.workers.podEvent(uid);
    await until(() => h.statuses.get(uid)?.phase === 'Running', 'Running after the retry');
    expect(cgroups.ensured).toEqual([uid]);
    await h.workers.stop();
  });
});

describe('CgroupfsPodCgroups file layout', () => {
  const read = (...parts: string[]) => readFileSync(join(...parts), 'utf8');

  it('v1: pod cgroup per controller hierarchy, Guaranteed directly under kubepods, tier shares', async () => {
    const mount = mkdtempSync(join(root, 'v1-'));
    for (const h of ['cpu', 'memory', 'pids']) mkdirSync(join(mount, h));
    const burstable = makePod([c('a', { cpu: '100m', memory: '32Mi' }, { cpu: '50m' }), c('b', { cpu: '200m', memory: '32Mi' }, { cpu: '100m' })]);
    const guaranteed = makePod([c('a', { cpu: '1', memory: '1Gi' })]);
    const cgroups = new CgroupfsPodCgroups({ cgroupRoot: '', mountRoot: mount, cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: 64, activePods: () => [burstable, guaranteed], log, removeAttempts: 1 });
    await cgroups.ensure(burstable);
    await cgroups.ensure(guaranteed);
    const b = `kubepods/burstable/pod${burstable.metadata!.uid}`;
    expect([read(mount, 'cpu', b, 'cpu.shares'), read(mount, 'cpu', b, 'cpu.cfs_period_us'), read(mount, 'cpu', b, 'cpu.cfs_quota_us')]).toEqual(['153', '100000', '30000']);
    expect(read(mount, 'memory', b, 'memory.limit_in_bytes')).toBe(String(64 * 2 ** 20));
    expect(read(mount, 'pids', b, 'pids.max')).toBe('64');
    const g = `kubepods/pod${guaranteed.metadata!.uid}`;
    expect([read(mount, 'cpu', g, 'cpu.shares'), read(mount, 'cpu', g, 'cpu.cfs_quota_us'), read(mount, 'memory', g, 'memory.limit_in_bytes')]).toEqual(['1024', '100000', String(2 ** 30)]);
    expect(read(mount, 'cpu', 'kubepods/besteffort/cpu.shares')).toBe('2');
    expect(read(mount, 'cpu', 'kubepods/burstable/cpu.shares')).toBe('153');
    // A directory that still holds files (a busy cgroup on the real fs) stays: reported.
    expect(await cgroups.remove(burstable.metadata!.uid!)).toBe(false);
  });

  it('enforceNodeAllocatable pods: the kubepods cgroup is limited to capacity − kubeReserved − systemReserved', async () => {
    const mount = mkdtempSync(join(root, 'alloc-'));
    for (const h of ['cpu', 'memory', 'pids']) mkdirSync(join(mount, h));
    const capacity = { cpu: '4', memory: '8Gi' };
    const reserved = { kubeReserved: { cpu: '500m', memory: '1Gi' }, systemReserved: { cpu: '500m', memory: '512Mi' } };
    const pod = makePod([c('a', { cpu: '100m', memory: '32Mi' })]);
    const enforced = new CgroupfsPodCgroups({ cgroupRoot: '', mountRoot: mount, cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: -1, log, kubepods: () => kubepodsResourceConfig(capacity, { ...reserved, enforceNodeAllocatable: ['pods'] }) });
    await enforced.ensure(pod);
    expect(read(mount, 'memory', 'kubepods/memory.limit_in_bytes')).toBe(String(8 * 2 ** 30 - 2 ** 30 - 512 * 2 ** 20));
    expect(read(mount, 'cpu', 'kubepods/cpu.shares')).toBe(String(3 * 1024));
    // "none": the kubepods cgroup gets the whole capacity, as the kubelet's.
    expect(kubepodsResourceConfig(capacity, { ...reserved, enforceNodeAllocatable: ['none'] })).toEqual({ cpuShares: 4 * 1024, memoryLimitBytes: 8 * 2 ** 30 });
    expect(kubepodsResourceConfig(undefined, { ...reserved, enforceNodeAllocatable: ['pods'] })).toBeUndefined();
  });

  it('v2: unified tree, controllers delegated below the root, cpu.max / cpu.weight / memory.max', async () => {
    const mount = mkdtempSync(join(root, 'v2-'));
    const pod = makePod([c('a', { cpu: '500m', memory: '64Mi' })]);
    const dirs = ['', 'knode', 'knode/kubepods', 'knode/kubepods/burstable', 'knode/kubepods/besteffort', `knode/kubepods/pod${pod.metadata!.uid}`];
    for (const d of dirs) {
      mkdirSync(join(mount, d), { recursive: true });
      writeFileSync(join(mount, d, 'cgroup.controllers'), d === 'knode' ? 'cpu memory' : 'cpu memory pids');
    }
    const cgroups = new CgroupfsPodCgroups({ cgroupRoot: '/knode', mountRoot: mount, cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: -1, log });
    await cgroups.ensure(pod);
    const p = join(mount, `knode/kubepods/pod${pod.metadata!.uid}`);
    expect([read(p, 'cpu.weight'), read(p, 'cpu.max'), read(p, 'memory.max'), read(p, 'pids.max')]).toEqual(['20', '50000 100000', String(64 * 2 ** 20), 'max']);
    expect(read(mount, 'knode/cgroup.subtree_control')).toBe('+cpu +memory');
    expect(read(mount, 'knode/kubepods/cgroup.subtree_control')).toBe('+cpu +memory +pids');
    expect(read(mount, 'knode/kubepods/besteffort/cpu.weight')).toBe('1');
    expect(() => read(mount, 'cgroup.subtree_control')).toThrow(/ENOENT/);
  });

  it('no cgroup tree: nothing is made; a bad uid is refused', async () => {
    const mount = mkdtempSync(join(root, 'none-'));
    const cgroups = new CgroupfsPodCgroups({ cgroupRoot: '', mountRoot: mount, cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: -1, log });
    await cgroups.ensure(makePod([c('a')]));
    expect(() => read(mount, 'cpu', 'kubepods', 'besteffort', 'cpu.shares')).toThrow(/ENOENT/);
    const bad = makePod([c('a')]);
    bad.metadata!.uid = '../../etc';
    await expect(cgroups.ensure(bad)).rejects.toThrow(/cannot create a pod cgroup for uid/);
  });
});
