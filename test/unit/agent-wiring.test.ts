// The parts agent.ts wires: the desired set reaches the workers through admission and gives each
// pod its probes (pods/dispatcher.ts); after a relist, orphans and orphaned pod directories are
// cleaned only once the sources are ready, throttled (pods/housekeeping.ts); a mirror pod
// reconcile that fails is logged, not dropped (status/mirror-pods.ts MirrorPodSync).
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PodDispatcher } from '../../agent/pods/dispatcher.js';
import { Housekeeping } from '../../agent/pods/housekeeping.js';
import { AgentMetrics } from '../../agent/server/metrics.js';
import { PodConfig } from '../../agent/sources/pod-config.js';
import { MirrorPodSync } from '../../agent/status/mirror-pods.js';
import { ProbeManager } from '../../probes/index.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { capturingLog } from '../helpers/log-capture.js';
import { FakePodStatusProvider, FakeProber, RecordingProbeListener } from '../helpers/probe-fakes.js';

function pod(name: string, uid: string, liveness?: { successThreshold: number }): V1Pod {
  return {
    metadata: { name, namespace: 'default', uid },
    spec: { containers: [{ name: 'c', image: 'busybox', ...(liveness ? { livenessProbe: { exec: { command: ['true'] }, ...liveness } } : {}) }] },
  };
}

class RecordingWorkers {
  synced: string[][] = [];
  readonly known = new Set<string>();
  sync(desired: ReadonlyMap<string, V1Pod>): void {
    this.synced.push([...desired.keys()]);
    for (const uid of desired.keys()) this.known.add(uid);
  }
  get(uid: string): object | undefined {
    return this.known.has(uid) ? {} : undefined;
  }
}

describe('PodDispatcher', () => {
  const probeManager = () => new ProbeManager({ prober: new FakeProber(), listener: new RecordingProbeListener(), statusProvider: new FakePodStatusProvider(), registry: new Registry() });

  it('hands the admitted set to the workers and the probe manager, then reports', () => {
    const { log } = capturingLog();
    const workers = new RecordingWorkers();
    const probes = probeManager();
    const dispatched: number[] = [];
    const dispatcher = new PodDispatcher({
      workers: workers as never,
      probes,
      admit: (desired, known) => new Map([...desired].filter(([uid]) => uid !== 'rejected' || known(uid))),
      onDispatched: (n) => dispatched.push(n),
      log,
    });
    const config = new PodConfig(dispatcher);
    config.set('api', [pod('a', 'a'), pod('r', 'rejected')]);
    expect(workers.synced).toEqual([['a']]);
    expect(dispatched).toEqual([1]);
    config.set('api', []);
    expect(workers.synced.at(-1)).toEqual([]);
    expect(dispatched).toEqual([1, 0]);
    probes.stop();
  });

  it('runs a pod whose probes are invalid without them, and says so', () => {
    const { log, lines } = capturingLog();
    const workers = new RecordingWorkers();
    const probes = probeManager();
    const dispatcher = new PodDispatcher({ workers: workers as never, probes, onDispatched: () => undefined, log });
    dispatcher.onPodsChanged(new Map([['bad', pod('bad', 'bad', { successThreshold: 2 })]]));
    expect(workers.synced).toEqual([['bad']]);
    expect(lines().find((line) => line.msg === 'invalid probes: the pod runs without them')).toMatchObject({ pod: 'default/bad', err: { message: expect.stringContaining('successThreshold') } });
    probes.stop();
  });

  it('warns about a duplicate pod name from another source', () => {
    const { log, lines } = capturingLog();
    const dispatcher = new PodDispatcher({ workers: new RecordingWorkers() as never, probes: probeManager(), onDispatched: () => undefined, log });
    const config = new PodConfig(dispatcher);
    config.set('file', [pod('same', 'u1')]);
    config.set('api', [pod('same', 'u2')]);
    expect(lines().some((line) => line.msg === 'duplicate pod name from another source ignored')).toBe(true);
  });
});

describe('Housekeeping', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('cleans orphans and orphaned pod directories only when the sources are ready, at most once per period', async () => {
    dir = await mkdtemp(join(tmpdir(), 'housekeeping-'));
    for (const uid of ['orphan', 'desired', 'running']) await mkdir(join(dir, 'pods', uid), { recursive: true });
    const { log } = capturingLog();
    let ready = false;
    const cleaned: string[][] = [];
    const gc = vi.fn(async () => undefined);
    const clock = new FakeClock(1_000_000);
    const housekeeping = new Housekeeping({
      runtime: { garbageCollectNetwork: gc },
      workers: { podEvent: () => undefined, cleanOrphans: (uids) => (cleaned.push([...uids]), []), get: () => undefined, statuses: () => [] },
      desired: (uid) => uid === 'desired',
      sourcesReady: () => ready,
      metrics: new AgentMetrics(),
      rootDir: dir,
      periodMs: 30_000,
      clock,
      log,
    });
    const runtimeUids = new Set(['running']);
    housekeeping.onRelist(runtimeUids, 5);
    expect(cleaned).toEqual([]);
    expect(gc).not.toHaveBeenCalled();
    ready = true;
    housekeeping.onRelist(runtimeUids, 5);
    expect(cleaned).toEqual([['running']]);
    await vi.waitFor(async () => expect((await readdir(join(dir!, 'pods'))).sort()).toEqual(['desired', 'running']));
    expect(gc).toHaveBeenCalledTimes(1);
    housekeeping.onRelist(runtimeUids, 5); // within the period: orphans again, no second GC
    expect(cleaned).toHaveLength(2);
    expect(gc).toHaveBeenCalledTimes(1);
  });
});

describe('MirrorPodSync', () => {
  it('logs a failed reconcile instead of dropping it', async () => {
    const { log, lines } = capturingLog();
    const sync = new MirrorPodSync({
      manager: { reconcile: () => Promise.reject(new Error('api down')) },
      pods: () => [],
      mirrors: () => new Map(),
      node: () => undefined,
      log,
    });
    await sync.trigger();
    expect(lines().find((line) => line.msg === 'mirror pod reconcile failed')).toMatchObject({ err: { message: 'api down' } });
  });
});
