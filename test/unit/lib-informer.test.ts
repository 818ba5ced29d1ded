/**
 * The one retry policy of lib/informer.ts: exponential from 1 s, doubling to 30 s, with up to
 * 20 % jitter, reset when a watch connects.
 */
import { describe, expect, it } from 'vitest';
import { RetryBackoff } from '../../lib/informer.js';

describe('RetryBackoff', () => {
  it('doubles from 1 s to the 30 s cap without jitter at random() = 0', () => {
    const backoff = new RetryBackoff(1000, 30_000, () => 0);
    expect(Array.from({ length: 7 }, () => backoff.next())).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    backoff.reset();
    expect(backoff.next()).toBe(1000);
  });

  it('adds at most 20 % jitter and never exceeds the cap', () => {
    const backoff = new RetryBackoff(1000, 30_000, () => 0.999);
    const delays = Array.from({ length: 8 }, () => backoff.next());
    expect(delays[0]).toBeGreaterThan(1000);
    expect(delays[0]).toBeLessThanOrEqual(1200);
    expect(Math.max(...delays)).toBeLessThanOrEqual(30_000);
  });
});
