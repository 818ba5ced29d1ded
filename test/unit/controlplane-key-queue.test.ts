/**
 * The controllers' work queue (controlplane/controllers/queue.ts, every workload controller's
 * through wiring.ts QueuedController): a failing reconcile is logged once per attempt (an `err`
 * object, the key, the attempt) and retried with a growing, capped back-off, never dropped, as
 * client-go's rate-limited workqueue does (AddRateLimited, ItemExponentialFailureRateLimiter);
 * success resets the back-off; a key added while waiting is processed once.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KeyQueue } from '../../controlplane/controllers/queue.js';
import type { Logger } from '../../lib/log.js';

function fakeLog() {
  const warn = vi.fn();
  return { log: { warn, info: vi.fn(), debug: vi.fn(), error: vi.fn() } as unknown as Logger, warn };
}

describe('KeyQueue', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('retries a failing key with growing back-off, logs each failure, and stops retrying once it succeeds', async () => {
    const { log, warn } = fakeLog();
    const calls: number[] = [];
    let failures = 4;
    const queue = new KeyQueue(async (key) => {
      expect(key).toBe('ns/a');
      calls.push(Date.now());
      if (failures-- > 0) throw new Error('conflict', { cause: new Error('409') });
    }, log);
    const start = Date.now();
    queue.add('ns/a');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(5);
    // 200, 400, 800, 1600 ms after each failure (100·2^attempt; fake clock, plus the queue's yield).
    const gaps = calls.slice(1).map((t, i) => t - calls[i]!);
    gaps.forEach((gap, i) => expect(gap - 200 * 2 ** i, `gap ${i}`).toSatisfy((extra: number) => extra >= 0 && extra < 10));
    expect(calls[0]! - start).toBeLessThan(10);
    expect(warn).toHaveBeenCalledTimes(4);
    expect(warn.mock.calls.map(([fields]) => (fields as { attempt: number }).attempt)).toEqual([1, 2, 3, 4]);
    for (const [fields, message] of warn.mock.calls) {
      expect((fields as { err: unknown }).err).toBeInstanceOf(Error);
      expect(fields).toMatchObject({ key: 'ns/a' });
      expect(message).toBe('reconcile failed, will retry');
    }
    // Success reset the back-off: the next failure waits the first step again.
    failures = 1;
    queue.add('ns/a');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(7);
    expect(calls[6]! - calls[5]! - 200).toSatisfy((extra: number) => extra >= 0 && extra < 10);
    expect(warn.mock.calls.at(-1)![0]).toMatchObject({ attempt: 1 });
    await queue.stop();
  });

  it('caps the back-off and keeps retrying a key that always fails', async () => {
    const { log, warn } = fakeLog();
    let calls = 0;
    const queue = new KeyQueue(async () => {
      calls++;
      throw new Error('always');
    }, log);
    queue.add('k');
    await vi.advanceTimersByTimeAsync(60_000);
    // 200+400+…+3200 (≈6 s), then every 5 s: well over a dozen attempts, none dropped.
    expect(calls).toBeGreaterThan(12);
    expect(warn).toHaveBeenCalledTimes(calls);
    await queue.stop();
    const stoppedAt = calls;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toBe(stoppedAt);
  });

  it('processes a key added many times while it waits once, and a failing key does not hold up others', async () => {
    const { log } = fakeLog();
    const seen: string[] = [];
    const queue = new KeyQueue(async (key) => {
      seen.push(key);
      if (key === 'bad') throw new Error('bad');
    }, log);
    for (let i = 0; i < 5; i++) queue.add('x');
    queue.add('bad');
    queue.add('y');
    await vi.advanceTimersByTimeAsync(0);
    expect(seen).toEqual(['x', 'bad', 'y']);
    await vi.advanceTimersByTimeAsync(250);
    expect(seen).toEqual(['x', 'bad', 'y', 'bad']);
    await queue.stop();
  });
});
