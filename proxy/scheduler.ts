/**
 * When to sync, as kube-proxy's BoundedFrequencyRunner (pkg/util/async): changes are batched
 * so that syncs are at least `minSyncPeriod` apart, and a sync happens at least every
 * `syncPeriod` even without changes. The decision is pure (`nextSyncAt`); `SyncLoop` carries it
 * out with an injected clock, so tests drive it with a fake one.
 */

export interface SchedulerState {
  /** When the last sync started (ms), or undefined before the first one. */
  lastSyncAt?: number;
  /** A change arrived since the last sync started. */
  dirty: boolean;
}

export interface SyncPeriods {
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

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { cancel(): void };
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(timer) };
  },
};

/** A clock for tests: time moves only through advance(). */
export class FakeClock implements Clock {
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 0;
  constructor(private current = 0) {}
  now(): number {
    return this.current;
  }
  setTimeout(fn: () => void, ms: number): { cancel(): void } {
    const id = this.nextId++;
    this.timers.push({ at: this.current + Math.max(0, ms), fn, id });
    return { cancel: () => (this.timers = this.timers.filter((timer) => timer.id !== id)) };
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.current + ms;
    for (;;) {
      const due = this.timers.filter((timer) => timer.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((timer) => timer !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
    }
    this.current = end;
  }
}
const _clockCheck: Clock = new FakeClock();
void _clockCheck;

/**
 * Runs `sync` according to nextSyncAt. One sync at a time; changes during a sync mark the
 * state dirty again so that another sync follows (after minSyncPeriod).
 */
export class SyncLoop {
  private state: SchedulerState = { dirty: false };
  private timer?: { cancel(): void };
  private running = false;
  private stopped = true;
  private current: Promise<void> = Promise.resolve();

  constructor(
    private readonly periods: SyncPeriods,
    private readonly sync: () => Promise<void>,
    private readonly clock: Clock = realClock,
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
    this.timer?.cancel();
    await this.current;
  }

  private schedule(): void {
    if (this.stopped || this.running) return;
    this.timer?.cancel();
    const delay = Math.max(0, nextSyncAt(this.state, this.periods, this.clock.now()) - this.clock.now());
    this.timer = this.clock.setTimeout(() => this.fire(), delay);
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
