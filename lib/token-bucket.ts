/**
 * A token bucket (client-go's flowcontrol.NewTokenBucketRateLimiter, golang.org/x/time/rate):
 * `qps` tokens a second, at most `burst` saved up; each request takes one, waiting for it when
 * the bucket is empty. Waiters are served in order (a reservation moves the bucket's time
 * forward, so the n-th waiter of an empty bucket waits n/qps). qps 0 means no limit, as
 * client-go treats a zero QPS (no rate limiter). The clock is lib/clock's.
 */
import { systemClock, type Clock } from './clock.js';

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly qps: number,
    private readonly burst: number,
    private readonly clock: Clock = systemClock,
  ) {
    this.tokens = Math.max(1, burst);
    this.last = clock.now();
  }

  /** Reserves one token; the delay (ms) before it may be used. Pure bookkeeping, no waiting. */
  reserve(): number {
    if (this.qps <= 0) return 0;
    const now = this.clock.now();
    const capacity = Math.max(1, this.burst);
    this.tokens = Math.min(capacity, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.qps) * 1000);
  }

  /** Takes a token only when one is there now (client-go TryAccept). */
  tryTake(): boolean {
    if (this.qps <= 0) return true;
    const now = this.clock.now();
    this.tokens = Math.min(Math.max(1, this.burst), this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Waits for a token. */
  take(): Promise<void> {
    const delay = this.reserve();
    if (delay === 0) return Promise.resolve();
    return new Promise((resolve) => this.clock.setTimer(resolve, delay));
  }
}
