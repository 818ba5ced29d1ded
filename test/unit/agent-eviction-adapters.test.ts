/**
 * The agent's eviction adapters around fakes: the in-place kill through the pod worker (grace
 * period, Failed/Evicted status that sticks, no restart), the status amendment, dead-container
 * reclaim (terminated and unknown pods only, after the sources are ready), the CRI image store
 * (pinned images, images in use) and admission (rejected pods never reach the workers).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CoreV1Api, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { kubeLabels, type Container, type ContainerRuntime } from '../../cri/runtime.js';
import { createLogger } from '../../lib/log.js';
import { Backoff } from '../../agent/pods/backoff.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { PodWorkers } from '../../agent/pods/workers.js';
import type { RuntimeConfigOptions } from '../../agent/pods/runtime-config.js';
import { AgentContainerReclaimer, AgentActivePods, CriImageStore, evictedStatus } from '../../agent/eviction/adapters.js';
import { AgentEviction } from '../../agent/eviction/node.js';
import { EvictionManager } from '../../eviction/manager.js';
import { FakeActivePods, FakeObservations, FakePodKiller, FakePodStats } from '../helpers/eviction-fakes.js';
import type { EvictedPodStatus } from '../../eviction/types.js';
import type { EventInput } from '../../lib/events.js';

const root = mkdtempSync(join(tmpdir(), 'knode-agent-eviction-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const image = 'knode.local/busybox:1';
const log = createLogger('test', 'silent');

const evicted: EvictedPodStatus = {
  phase: 'Failed',
  reason: 'Evicted',
  message: 'The node was low on resource: memory. ',
  conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message: 'The node was low on resource: memory. ' }],
};

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function workers() {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const runtime = new FakeRuntime({ now: () => clock.now() * 1e6, images: [image] });
  const statuses = new Map<string, V1PodStatus>();
  const terminated: string[] = [];
  const runtimeConfig: RuntimeConfigOptions = {
    nodeName: 'node-1', podLogsDir: join(root, 'logs'), clusterDomain: 'cluster.local', clusterDNS: [],
    hostDNS: { servers: [], searches: [], options: [] }, cgroupDriver: 'cgroupfs', cgroupRoot: '', cgroupsPerQOS: false,
    cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: -1,
  };
  const pool = new PodWorkers({
    runtime, clock, restartBackoff: new Backoff(clock), imageBackoff: new Backoff(clock), runtimeConfig, rootDir: join(root, 'root'), log,
    objects: async () => ({ configMap: () => undefined, secret: () => undefined }),
    node: () => ({ memoryCapacityBytes: 8 * 2 ** 30 }),
    onStatus: (pod, status) => statuses.set(pod.metadata!.uid!, status),
    onTerminated: (pod) => terminated.push(pod.metadata!.uid!),
    resyncMs: 3_600_000,
  });
  return { runtime, pool, statuses, terminated };
}

const pod = (name: string, uid: string, resources?: Record<string, string>): V1Pod => ({
  metadata: { name, namespace: 'default', uid },
  spec: { restartPolicy: 'Always', terminationGracePeriodSeconds: 30, containers: [{ name: 'app', image, command: ['sleep', '3600'], ...(resources ? { resources: { requests: resources, limits: resources } } : {}) }] },
});

describe('PodWorker.kill (eviction through the normal termination path)', () => {
  it('stops the containers with the eviction grace period; the pod stays Failed/Evicted and is not restarted', async () => {
    const { runtime, pool, statuses, terminated } = workers();
    const p = pod('hog', 'uid-hog');
    pool.sync(new Map([['uid-hog', p]]));
    await until(() => statuses.get('uid-hog')?.phase === 'Running', 'Running');
    const active = new AgentActivePods({ desired: () => [p], terminated: (uid) => pool.get(uid)?.isTerminated, kill: () => undefined });
    expect(await active.activePods()).toEqual([p]);
    await pool.get('uid-hog')!.kill(1, (status) => evictedStatus(status, evicted));
    const stops = runtime.calls.filter((call) => call.method === 'stopContainer');
    expect(stops.map((call) => call.args[1])).toEqual([1]);
    expect(statuses.get('uid-hog')).toMatchObject({ phase: 'Failed', reason: 'Evicted', message: evicted.message });
    expect(statuses.get('uid-hog')!.conditions).toContainEqual(expect.objectContaining({ type: 'DisruptionTarget', status: 'True' }));
    expect(terminated).toContain('uid-hog');
    expect(await active.activePods()).toEqual([]);
    // Later syncs (API updates) keep it terminal and start nothing.
    const creates = runtime.calls.filter((call) => call.method === 'createContainer').length;
    pool.sync(new Map([['uid-hog', { ...p, metadata: { ...p.metadata, resourceVersion: '2' } }]]));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runtime.calls.filter((call) => call.method === 'createContainer').length).toBe(creates);
    expect(statuses.get('uid-hog')?.phase).toBe('Failed');
    await pool.stop();
  });
});

describe('evictedStatus', () => {
  it('sets phase, reason, message and replaces a DisruptionTarget condition, keeping the others', () => {
    const status: V1PodStatus = { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }, { type: 'DisruptionTarget', status: 'False' }] };
    const result = evictedStatus(status, evicted);
    expect(result).toMatchObject({ phase: 'Failed', reason: 'Evicted', message: evicted.message });
    expect(result.conditions!.map((c) => `${c.type}=${c.status}`)).toEqual(['Ready=False', 'DisruptionTarget=True']);
  });
});

const container = (id: string, uid: string | undefined, state: Container['state'], imageRef = 'sha256:img'): Container => ({
  id,
  podSandboxId: 's',
  metadata: { name: 'app', attempt: 0 },
  image: { image },
  imageRef,
  state,
  createdAt: 0,
  labels: uid ? { [kubeLabels.podUid]: uid } : {},
  annotations: {},
});

describe('AgentContainerReclaimer', () => {
  const fake = (containers: Container[]) => {
    const removed: string[] = [];
    const runtime: Pick<ContainerRuntime, 'listContainers' | 'removeContainer'> = {
      listContainers: async () => containers,
      removeContainer: async (id) => void removed.push(id),
    };
    return { runtime, removed };
  };
  const states: Record<string, boolean | undefined> = { live: false, done: true };
  const containers = [
    container('live-dead', 'live', 'CONTAINER_EXITED'),
    container('live-running', 'live', 'CONTAINER_RUNNING'),
    container('done-dead', 'done', 'CONTAINER_EXITED'),
    container('gone-dead', 'gone', 'CONTAINER_EXITED'),
    container('no-pod', undefined, 'CONTAINER_EXITED'),
  ];

  it('removes the exited containers of terminated and unknown pods only', async () => {
    const { runtime, removed } = fake(containers);
    await new AgentContainerReclaimer(runtime, { terminated: (uid) => states[uid] }, () => true, log).deleteAllUnusedContainers();
    expect(removed).toEqual(['done-dead', 'gone-dead']);
  });

  it('does nothing before every pod source is ready', async () => {
    const { runtime, removed } = fake(containers);
    await new AgentContainerReclaimer(runtime, { terminated: (uid) => states[uid] }, () => false, log).deleteAllUnusedContainers();
    expect(removed).toEqual([]);
  });
});

describe('CriImageStore', () => {
  it('marks pinned images, reports images used by any container, removes by id', async () => {
    const runtime = new FakeRuntime({ images: [image, 'knode.local/pause:3.10', 'example/other:1'] });
    const pauseId = (await runtime.listImages()).find((i) => i.repoTags.includes('knode.local/pause:3.10'))!.id;
    const store = new CriImageStore(
      { listImages: () => runtime.listImages(), removeImage: (spec) => runtime.removeImage(spec), imageFsInfo: () => runtime.imageFsInfo(), listContainers: async () => [container('c1', 'u', 'CONTAINER_EXITED', 'sha256:used')] },
      (tags) => tags.includes('knode.local/pause:3.10'),
    );
    const images = await store.listImages();
    expect(images.find((i) => i.id === pauseId)?.pinned).toBe(true);
    expect(images.filter((i) => i.pinned)).toHaveLength(1);
    expect(await store.imagesInUse()).toEqual(new Set(['sha256:used']));
  });
});

describe('AgentEviction.admit', () => {
  it('rejects a new BestEffort pod under memory pressure once, for good, with the kubelet status; admits others', async () => {
    const set: { pod: string; status: V1PodStatus }[] = [];
    const core = {} as CoreV1Api;
    const events: EventInput[] = [];
    const eviction = new AgentEviction({
      config: {} as never, runtime: {} as never, core, events: { record: (e) => void events.push(e) }, nodeName: 'n', rootDir: root, podLogsDir: root,
      pods: { desired: () => [], terminated: () => undefined, kill: () => undefined },
      sourcesReady: () => true, setStatus: (p, status) => set.push({ pod: p.metadata!.name!, status }), log, manageTaints: false,
    });
    const memory = { available: 10, capacity: 1000, time: 0 };
    eviction.manager = new EvictionManager(
      { thresholds: [{ signal: 'memory.available', value: { quantity: 100 }, gracePeriodMs: 0, hard: true }], pressureTransitionPeriodMs: 60_000, maxPodGracePeriodSeconds: 0, housekeepingIntervalMs: 10_000, memoryPollIntervalMs: 0 },
      { observations: new FakeObservations({ 'memory.available': memory }), podStats: new FakePodStats(), activePods: new FakeActivePods(), killer: new FakePodKiller(), conditions: eviction, logger: log },
    );
    await eviction.manager.synchronize();
    const desired = new Map([
      ['be', pod('be', 'be')],
      ['g', pod('g', 'g', { cpu: '100m', memory: '64Mi' })],
      ['old', pod('old', 'old')],
    ]);
    const admitted = eviction.admit(desired, (uid) => uid === 'old');
    expect([...admitted.keys()]).toEqual(['g', 'old']);
    expect(set).toEqual([{ pod: 'be', status: { phase: 'Failed', reason: 'Evicted', message: 'Pod was rejected: The node had condition: [MemoryPressure]. ', qosClass: 'BestEffort' } }]);
    // Stays rejected; no second status.
    expect([...eviction.admit(desired, () => false).keys()]).toEqual(['g', 'old']);
    expect(set).toHaveLength(1);
    expect(events).toEqual([{ involvedObject: { apiVersion: 'v1', kind: 'Pod', name: 'be', namespace: 'default', uid: 'be' }, type: 'Warning', reason: 'Evicted', message: 'The node had condition: [MemoryPressure]. ' }]);
    expect(eviction.pressure()).toEqual({ memory: true, disk: false, pid: false });
  });

  it('does not start an API pod that is already terminal when first seen (restart after an eviction)', () => {
    const eviction = new AgentEviction({
      config: {} as never, runtime: {} as never, core: {} as CoreV1Api, events: { record: () => undefined }, nodeName: 'n', rootDir: root, podLogsDir: root,
      pods: { desired: () => [], terminated: () => undefined, kill: () => undefined },
      sourcesReady: () => true, setStatus: () => undefined, log, manageTaints: false,
    });
    const failed = { ...pod('evicted', 'e'), status: { phase: 'Failed', reason: 'Evicted' } };
    const running = { ...pod('running', 'r'), status: { phase: 'Failed' } };
    // No manager yet (before start): everything else is admitted; a pod with a worker is kept even when Failed.
    expect([...eviction.admit(new Map([['e', failed], ['r', running], ['n', pod('new', 'n')]]), (uid) => uid === 'r').keys()]).toEqual(['r', 'n']);
  });
});
