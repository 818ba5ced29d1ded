/**
 * When to sync, as kube-proxy's BoundedFrequencyRunner (pkg/util/async): changes are batched
 * so that syncs are at least `minSyncPeriod` apart, and a sync happens at least every
 * `syncPeriod` even without changes. The decision is pure (`nextSyncAt`); `SyncLoop` carries it
 * out with an injected clock (lib/clock.ts), so tests drive it with a fake one.
 */
import { systemClock, type Clock, type TimerHandle } from '../lib/clock.js';

interface SchedulerState {
  /** When the last sync started (ms), or undefined before the first one. */
  lastSyncAt?: number;
  /** A change arrived since the last sync started. */
  dirty: boolean;
}

interface SyncPeriods {
  minSyncPeriodMs: number;
  syncPeriodMs: number;
}

/** The time (ms) at which the next sync should start. */
export function nextSyncAt(state: SchedulerState, periods: SyncPeriods, now: number): number {
  if (state.lastSyncAt === undefined) return now;
  const periodic = state.lastSyncAt + periods.syncPeriodMs;
  if (!state.dirty) return periodic;
  return Math.min(periodic, Math.max(now, state.lastSyncAt + periods.minSyncPeriodMs));
}

/**
 * Runs `sync` according to nextSyncAt. One sync at a time; changes during a sync mark the
 * state dirty again so that another sync follows (after minSyncPeriod).
 */
export class SyncLoop {
  private state: SchedulerState = { dirty: false };
  private timer?: TimerHandle;
  private running = false;
  private stopped = true;
  private current: Promise<void> = Promise.resolve();

  constructor(
    private readonly periods: SyncPeriods,
    private readonly sync: () => Promise<void>,
    private readonly clock: Clock = systemClock,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  /** Something changed: sync soon (but not before minSyncPeriod since the last sync). */
  trigger(): void {
    this.state.dirty = true;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.clock.clearTimer(this.timer);
    await this.current;
  }

  private schedule(): void {
    if (this.stopped || this.running) return;
    if (this.timer) this.clock.clearTimer(this.timer);
    const delay = Math.max(0, nextSyncAt(this.state, this.periods, this.clock.now()) - this.clock.now());
    this.timer = this.clock.setTimer(() => this.fire(), delay);
  }

  private fire(): void {
    if (this.stopped || this.running) return;
    this.running = true;
    this.state = { lastSyncAt: this.clock.now(), dirty: false };
    this.current = this.sync()
      .catch(() => undefined) // the sync reports its own errors; the loop keeps going
      .finally(() => {
        this.running = false;
        this.schedule();
      });
  }
}
