import { describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { EvictionManager, type EvictionManagerConfig } from '../../eviction/manager.js';
import {
  FakeActivePods,
  FakeClock,
  FakeConditionSink,
  FakeContainerReclaimer,
  FakeImageReclaimer,
  FakeObservations,
  FakePodKiller,
  FakePodStats,
  makePod,
} from '../helpers/eviction-fakes.js';
import type { Observations, Threshold } from '../../eviction/types.js';

const Mi = 2 ** 20;
const Gi = 2 ** 30;
const silent = createLogger('eviction-test', 'silent');

function setup(thresholds: Threshold[], observations: Observations, options: { dedicatedImageFs?: boolean; transitionMs?: number; maxGrace?: number } = {}) {
  const clock = new FakeClock(0);
  const obs = new FakeObservations(observations, options.dedicatedImageFs ?? false);
  const pods = new FakeActivePods([
    makePod({ name: 'guaranteed', containers: [{ name: 'c', requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '1', memory: '1Gi' } }] }),
    makePod({ name: 'besteffort', terminationGracePeriodSeconds: 30 }),
    makePod({ name: 'static', annotations: { 'kubernetes.io/config.source': 'file' } }),
  ]);
  const stats = new FakePodStats(
    new Map([
      ['guaranteed', { containers: [{ name: 'c', memoryWorkingSetBytes: 900 * Mi, rootfsUsedBytes: 10 * Mi }] }],
      ['besteffort', { containers: [{ name: 'c', memoryWorkingSetBytes: 300 * Mi, rootfsUsedBytes: 200 * Mi }] }],
      ['static', { containers: [{ name: 'c', memoryWorkingSetBytes: 2 * Gi, rootfsUsedBytes: 2 * Gi }] }],
    ]),
  );
  const killer = new FakePodKiller(pods);
  const sink = new FakeConditionSink();
  const images = new FakeImageReclaimer(100 * Mi);
  const containers = new FakeContainerReclaimer();
  const config: EvictionManagerConfig = {
    thresholds,
    pressureTransitionPeriodMs: options.transitionMs ?? 60_000,
    maxPodGracePeriodSeconds: options.maxGrace ?? 0,
    housekeepingIntervalMs: 10_000,
    memoryPollIntervalMs: 0,
  };
  const manager = new EvictionManager(config, {
    observations: obs,
    podStats: stats,
    activePods: pods,
    killer,
    conditions: sink,
    imageReclaimer: images,
    containerReclaimer: containers,
    clock,
    logger: silent,
  });
  return { manager, clock, obs, pods, killer, sink, images, containers };
}

const memHard: Threshold = { signal: 'memory.available', value: { quantity: 100 * Mi }, gracePeriodMs: 0, hard: true };
const diskHard: Threshold = { signal: 'nodefs.available', value: { percentage: 0.1 }, gracePeriodMs: 0, hard: true };
const mem = (available: number): Observations => ({ 'memory.available': { available, capacity: 8 * Gi, time: 0 } });
const disk = (available: number): Observations => ({ 'nodefs.available': { available, capacity: 10 * Gi, time: 0 }, 'imagefs.available': { available, capacity: 10 * Gi, time: 0 } });

describe('EvictionManager.synchronize (fakes, test clock)', () => {
  it('memory: evicts one pod per sync, BestEffort first, critical never; MemoryPressure held then cleared', async () => {
    const t = setup([memHard], mem(80 * Mi));
    const first = await t.manager.synchronize();
    expect(first.evicted?.pod.metadata?.name).toBe('besteffort');
    expect(t.killer.evictions).toHaveLength(1);
    expect(t.killer.evictions[0]!.gracePeriodSeconds).toBe(1);
    expect(t.killer.evictions[0]!.status.reason).toBe('Evicted');
    expect(t.images.calls).toBe(0); // no node-level reclaim for memory
    expect(t.sink.last).toEqual(['MemoryPressure']);
    expect(t.manager.admit(makePod({ name: 'new-be' }))).toMatchObject({ admit: false, reason: 'Evicted' });

    t.clock.advance(10_000);
    await t.manager.synchronize();
    expect(t.killer.evictions.map((e) => e.pod.metadata?.name)).toEqual(['besteffort', 'guaranteed']);

    t.clock.advance(10_000);
    await t.manager.synchronize();
    // Only the static pod is left: it is never evicted.
    expect(t.killer.evictions).toHaveLength(2);

    t.obs.current = mem(4 * Gi);
    t.clock.advance(10_000);
    await t.manager.synchronize();
    expect(t.sink.last).toEqual(['MemoryPressure']);
    t.clock.advance(50_000); // 60 s after the last time it was observed
    await t.manager.synchronize();
    expect(t.sink.last).toEqual([]);
    expect(t.manager.admit(makePod({ name: 'new-be' }))).toEqual({ admit: true });
  });

  it('disk: reclaims dead containers and images first; no eviction when that is enough', async () => {
    const t = setup([diskHard], disk(500 * Mi));
    t.obs.next = [disk(500 * Mi), disk(2 * Gi)]; // observe(), then observe() after reclaim
    const result = await t.manager.synchronize();
    expect(result.reclaimed).toBe(true);
    expect(t.containers.calls).toBe(1);
    expect(t.images.calls).toBe(1);
    expect(t.killer.evictions).toHaveLength(0);
    expect(t.sink.last).toEqual(['DiskPressure']);
  });

  it('disk: evicts by disk usage when reclaim is not enough', async () => {
    const t = setup([diskHard], disk(500 * Mi));
    const result = await t.manager.synchronize();
    expect(t.images.calls).toBe(1);
    expect(result.evicted?.pod.metadata?.name).toBe('besteffort');
    expect(result.evicted?.status.message).toBe(
      'The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi, available: 500Mi. Container c was using 200Mi, request is 0, has larger consumption of ephemeral-storage. ',
    );
  });

  it('nodefs with a dedicated imagefs: no image reclaim for nodefs', async () => {
    const t = setup([diskHard], disk(500 * Mi), { dedicatedImageFs: true });
    await t.manager.synchronize();
    expect(t.images.calls).toBe(0);
    expect(t.killer.evictions).toHaveLength(1);
  });

  it('soft threshold: waits for the grace period, then uses min(pod grace, evictionMaxPodGracePeriod)', async () => {
    const soft: Threshold = { signal: 'memory.available', value: { quantity: 1 * Gi }, gracePeriodMs: 30_000, hard: false };
    const t = setup([soft], mem(900 * Mi), { maxGrace: 20 });
    await t.manager.synchronize();
    expect(t.killer.evictions).toHaveLength(0);
    expect(t.sink.last).toEqual(['MemoryPressure']);
    t.clock.advance(30_000);
    await t.manager.synchronize();
    expect(t.killer.evictions.map((e) => [e.pod.metadata?.name, e.gracePeriodSeconds])).toEqual([['besteffort', 20]]);
  });

  it('start() syncs on its own and stop() waits for the running sync', async () => {
    const t = setup([memHard], mem(80 * Mi));
    t.manager.start();
    const deadline = Date.now() + 5000;
    while (t.killer.evictions.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await t.manager.stop();
    expect(t.killer.evictions).toHaveLength(1);
  });

  it('the fast memory poll triggers a sync between housekeeping intervals', async () => {
    const t = setup([memHard], mem(4 * Gi));
    const manager = new EvictionManager(
      { thresholds: [memHard], pressureTransitionPeriodMs: 60_000, maxPodGracePeriodSeconds: 0, housekeepingIntervalMs: 3_600_000, memoryPollIntervalMs: 20 },
      { observations: t.obs, podStats: new FakePodStats(new Map()), activePods: t.pods, killer: t.killer, conditions: t.sink, clock: t.clock, logger: silent },
    );
    manager.start();
    try {
      const deadline = Date.now() + 5000;
      while (t.sink.history.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(t.sink.last).toEqual([]);
      t.obs.current = mem(50 * Mi);
      while (t.killer.evictions.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(t.sink.last).toEqual(['MemoryPressure']);
      expect(t.killer.evictions).toHaveLength(1);
    } finally {
      await manager.stop();
    }
  });
});
