/**
 * The runtime pod cache (agent/pods/pod-cache.ts) and the pod workers reading it: a periodic
 * sync of a steady pod makes no runtime call, a change the PLEG relist shows is inspected alone,
 * a relist that began before the agent's own change is never used, and a new cache (a restarted
 * agent) rebuilds the pods from the runtime without duplicating anything.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { V1Container, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { FakeRuntime, type FakeCall } from '../helpers/fake-runtime.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { kubeLabels, type PodSandboxConfig } from '../../cri/runtime.js';
import { createLogger } from '../../lib/log.js';
import { Backoff } from '../../agent/pods/backoff.js';
import { PodWorkers } from '../../agent/pods/workers.js';
import { Pleg } from '../../agent/pods/pleg.js';
import { RuntimePodCache, groupByPod, markingChanges } from '../../agent/pods/pod-cache.js';
import type { PodWorkerDeps } from '../../agent/pods/worker.js';

const root = mkdtempSync(join(tmpdir(), 'knode-pod-cache-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const image = 'knode.local/busybox:1';
const log = createLogger('test', 'silent');

/** A sandbox with one running container of pod `uid`, made directly in the runtime. */
async function runtimePod(runtime: FakeRuntime, uid: string): Promise<{ sandbox: string; container: string }> {
  const config: PodSandboxConfig = { metadata: { name: `p-${uid}`, namespace: 'default', uid, attempt: 0 }, labels: { [kubeLabels.podUid]: uid } };
  const sandbox = await runtime.runPodSandbox(config);
  const container = await runtime.createContainer(sandbox, { metadata: { name: 'app', attempt: 0 }, image: { image }, labels: { [kubeLabels.podUid]: uid, [kubeLabels.containerName]: 'app' } }, config);
  await runtime.startContainer(container);
  return { sandbox, container };
}

async function relist(runtime: FakeRuntime, cache: RuntimePodCache): Promise<void> {
  const token = cache.beginRelist();
  cache.update(token, groupByPod(await runtime.listPodSandbox(), await runtime.listContainers()));
}

const inspections = (calls: readonly FakeCall[]) => calls.filter((c) => c.method === 'podSandboxStatus' || c.method === 'containerStatus').map((c) => `${c.method} ${String(c.args[0]).slice(0, 8)}`);

describe('runtime pod cache', () => {
  it('answers from the relist, inspecting a sandbox or container only when its state changed', async () => {
    const runtime = new FakeRuntime({ images: [image] });
    const cache = new RuntimePodCache();
    const { sandbox, container } = await runtimePod(runtime, 'u1');
    expect(await cache.read(runtime, 'u1')).toBeUndefined(); // no relist yet: the caller reads the runtime
    await relist(runtime, cache);
    let from = runtime.calls.length;
    const first = (await cache.read(runtime, 'u1'))!;
    expect(first.sandboxes.map((s) => s.id)).toEqual([sandbox]);
    expect(first.containers.map((c) => [c.id, c.state])).toEqual([[container, 'CONTAINER_RUNNING']]);
    expect(inspections(runtime.calls.slice(from))).toEqual([`podSandboxStatus ${sandbox.slice(0, 8)}`, `containerStatus ${container.slice(0, 8)}`]);
    from = runtime.calls.length;
    expect(await cache.read(runtime, 'u1')).toEqual(first);
    expect(runtime.calls.slice(from)).toEqual([]);
    // The container exits: until a relist shows it, the cache still says running.
    runtime.exitContainer(container, 3);
    expect((await cache.read(runtime, 'u1'))!.containers[0]!.state).toBe('CONTAINER_RUNNING');
    await relist(runtime, cache);
    from = runtime.calls.length;
    const exited = (await cache.read(runtime, 'u1'))!;
    expect(exited.containers.map((c) => [c.state, c.exitCode])).toEqual([['CONTAINER_EXITED', 3]]);
    expect(inspections(runtime.calls.slice(from))).toEqual([`containerStatus ${container.slice(0, 8)}`]);
    // A pod the relist does not show has nothing.
    expect(await cache.read(runtime, 'other')).toEqual({ sandboxes: [], containers: [] });
  });

  it('does not serve a pod from a relist that began before the agent changed it', async () => {
    const runtime = new FakeRuntime({ images: [image] });
    const cache = new RuntimePodCache();
    await runtimePod(runtime, 'u1');
    const token = cache.beginRelist();
    const pods = groupByPod(await runtime.listPodSandbox(), await runtime.listContainers());
    // A worker starts a container while that relist is under way.
    const started = await runtimePod(runtime, 'u2');
    cache.markChanged('u2');
    cache.update(token, pods);
    expect(await cache.read(runtime, 'u2')).toBeUndefined();
    expect(await cache.read(runtime, 'u1')).toBeDefined();
    await relist(runtime, cache);
    expect((await cache.read(runtime, 'u2'))!.containers.map((c) => c.id)).toEqual([started.container]);
    // A relist that finishes after a newer one changes nothing.
    cache.update(token, new Map());
    expect((await cache.read(runtime, 'u2'))!.containers).toHaveLength(1);
  });

  it('marks the pod changed once a changing runtime call settles, also when it fails', async () => {
    const runtime = new FakeRuntime({ images: [image] });
    const cache = new RuntimePodCache();
    await relist(runtime, cache);
    const marked = markingChanges(runtime, () => cache.markChanged('u1'));
    await marked.listContainers();
    await marked.containerStatus('x').catch(() => undefined);
    expect(await cache.read(runtime, 'u1')).toBeDefined();
    runtime.failNext('runPodSandbox');
    await expect(marked.runPodSandbox({ metadata: { name: 'p', namespace: 'default', uid: 'u1', attempt: 0 } })).rejects.toThrow();
    expect(await cache.read(runtime, 'u1')).toBeUndefined();
  });

  it('forgets the statuses of what the runtime no longer has', async () => {
    const runtime = new FakeRuntime({ images: [image] });
    const cache = new RuntimePodCache();
    const { sandbox } = await runtimePod(runtime, 'u1');
    await relist(runtime, cache);
    await cache.read(runtime, 'u1');
    expect(cache.size).toBe(2);
    await runtime.removePodSandbox(sandbox);
    await relist(runtime, cache);
    expect(cache.size).toBe(0);
    expect(await cache.read(runtime, 'u1')).toEqual({ sandboxes: [], containers: [] });
  });
});

describe('pod workers over the runtime pod cache', () => {
  function harness(runtime = new FakeRuntime({ images: [image] })) {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const statuses = new Map<string, V1PodStatus>();
    const reports = { count: 0 };
    const cache = new RuntimePodCache();
    const deps: PodWorkerDeps = {
      runtime, clock, restartBackoff: new Backoff(clock), imageBackoff: new Backoff(clock), rootDir: join(root, 'root'), log,
      runtimeConfig: {
        nodeName: 'node-1', podLogsDir: join(root, 'logs'), clusterDomain: 'cluster.local', clusterDNS: ['10.96.0.10'],
        hostDNS: { servers: ['1.1.1.1'], searches: [], options: [] }, cgroupDriver: 'cgroupfs', cgroupRoot: '', cgroupsPerQOS: true,
        cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: -1,
      },
      objects: async () => ({ configMap: () => undefined, secret: () => undefined }),
      node: () => ({ hostIP: '10.0.0.1', memoryCapacityBytes: 8 * 2 ** 30 }),
      onStatus: (pod, status) => {
        reports.count++;
        statuses.set(pod.metadata!.uid!, status);
      },
      onTerminated: () => undefined,
      resyncMs: 3_600_000,
      podCache: cache,
    };
    const workers = new PodWorkers(deps);
    const pleg = new Pleg(runtime, { onPodChanged: (uid) => workers.podEvent(uid) }, log, 1000, cache);
    /** Runs `action` and waits for the next status report. */
    const synced = async (action: () => unknown) => {
      const before = reports.count;
      await action();
      await until(() => reports.count > before, 'a pod sync');
      // Further syncs asked for meanwhile (a PLEG event) finish too.
      await new Promise((resolve) => setTimeout(resolve, 20));
    };
    return { runtime, workers, pleg, cache, statuses, synced };
  }

  const pod = (n: number, containers: V1Container[]): V1Pod => ({
    metadata: { name: `p${n}`, namespace: 'default', uid: `cache-uid-${n}` },
    spec: { restartPolicy: 'Always', terminationGracePeriodSeconds: 1, containers },
  });
  const app = (name: string): V1Container => ({ name, image, imagePullPolicy: 'IfNotPresent', command: ['sleep', '3600'] });

  it('a periodic sync of a steady pod makes no runtime call; an exit shows at the next relist and restarts the container', async () => {
    const h = harness();
    const p = pod(1, [app('web'), app('side')]);
    const uid = p.metadata!.uid!;
    await h.synced(() => h.workers.sync(new Map([[uid, p]])));
    await until(() => h.statuses.get(uid)?.phase === 'Running', 'Running');
    await h.synced(() => h.pleg.relist());
    // A resync (no event): nothing asked of the runtime.
    let from = h.runtime.calls.length;
    await h.synced(() => h.workers.syncAll());
    expect(h.runtime.calls.slice(from)).toEqual([]);
    expect(h.statuses.get(uid)?.containerStatuses?.every((c) => c.state?.running)).toBe(true);
    // The web container exits: the relist (one list of each kind) wakes the worker, which inspects that container alone.
    const web = [...h.runtime.containers.values()].find((c) => c.status.metadata.name === 'web')!;
    h.runtime.exitContainer(web.id, 1);
    from = h.runtime.calls.length;
    await h.synced(() => h.pleg.relist());
    await until(() => h.statuses.get(uid)?.containerStatuses?.find((c) => c.name === 'web')?.restartCount === 1, 'web restarted');
    const calls = h.runtime.calls.slice(from);
    expect(calls.slice(0, 3).map((c) => c.method)).toEqual(['listPodSandbox', 'listContainers', 'containerStatus']);
    expect(calls[2]!.args[0]).toBe(web.id);
    // No list by the pod's label: the worker never read the runtime itself.
    expect(calls.filter((c) => (c.args[0] as { labelSelector?: unknown } | undefined)?.labelSelector)).toEqual([]);
    expect([...h.runtime.containers.values()].filter((c) => c.status.state === 'CONTAINER_RUNNING').map((c) => c.status.metadata.name).sort()).toEqual(['side', 'web']);
    await h.workers.stop();
  });

  it('pod workers share one answer of the runtime network status (each worker wraps the runtime)', async () => {
    const h = harness();
    const [a, b] = [pod(3, [app('web')]), pod(4, [app('web')])];
    await h.synced(() => h.workers.sync(new Map([[a.metadata!.uid!, a]])));
    await h.synced(() => h.workers.sync(new Map([[a.metadata!.uid!, a], [b.metadata!.uid!, b]])));
    await until(() => h.statuses.get(b.metadata!.uid!)?.phase === 'Running', 'Running');
    expect(h.runtime.calls.filter((c) => c.method === 'status')).toHaveLength(1);
    await h.workers.stop();
  });

  it('a restarted agent (a new cache) adopts the running pod from the runtime, without a duplicate', async () => {
    const first = harness();
    const p = pod(2, [app('web')]);
    const uid = p.metadata!.uid!;
    await first.synced(() => first.workers.sync(new Map([[uid, p]])));
    await until(() => first.statuses.get(uid)?.phase === 'Running', 'Running');
    await first.workers.stop();
    const containers = [...first.runtime.containers.keys()];
    // Before its first relist: read from the runtime.
    const second = harness(first.runtime);
    await second.synced(() => second.workers.sync(new Map([[uid, p]])));
    expect(second.statuses.get(uid)?.phase).toBe('Running');
    await second.workers.stop();
    // After its first relist: from the relist.
    const third = harness(first.runtime);
    await third.pleg.relist();
    const from = first.runtime.calls.length;
    await third.synced(() => third.workers.sync(new Map([[uid, p]])));
    expect(third.statuses.get(uid)?.phase).toBe('Running');
    expect(first.runtime.calls.slice(from).map((c) => c.method).sort()).toEqual(['containerStatus', 'podSandboxStatus']);
    expect([...first.runtime.containers.keys()]).toEqual(containers);
    expect(first.runtime.sandboxes.size).toBe(1);
    await third.workers.stop();
  });
});

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
