import { describe, expect, it } from 'vitest';
import { SyncLoop, nextSyncAt } from '../../proxy/scheduler.js';
import { FakeClock } from '../helpers/fake-clock.js';

const periods = { minSyncPeriodMs: 1000, syncPeriodMs: 30_000 };

describe('sync scheduler', () => {
  it.each([
    ['first sync is immediate', { dirty: false }, 5, 5],
    ['idle: next periodic sync', { lastSyncAt: 0, dirty: false }, 100, 30_000],
    ['change soon after a sync waits for minSyncPeriod', { lastSyncAt: 0, dirty: true }, 100, 1000],
    ['change long after a sync runs now', { lastSyncAt: 0, dirty: true }, 5000, 5000],
  ])('%s', (_name, state, now, expected) => {
    expect(nextSyncAt(state, periods, now)).toBe(expected);
  });

  it('batches a burst of changes into at most one sync per minSyncPeriod and syncs every syncPeriod', async () => {
    const clock = new FakeClock(0);
    const syncs: number[] = [];
    const loop = new SyncLoop(periods, async () => void syncs.push(clock.now()), clock);
    loop.start();
    clock.advance(0);
    await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    expect(syncs).toEqual([0]);
    for (let t = 0; t < 10; t++) {
      clock.advance(50);
      loop.trigger();
      await new Promise((resolve) => setImmediate(resolve));
    }
    clock.advance(499);
    await new Promise((resolve) => setImmediate(resolve));
    expect(syncs).toEqual([0]);
    clock.advance(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(syncs).toEqual([0, 1000]);
    clock.advance(30_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(syncs).toEqual([0, 1000, 31_000]);
    await loop.stop();
    clock.advance(100_000);
    expect(syncs.length).toBe(3);
  });
});
