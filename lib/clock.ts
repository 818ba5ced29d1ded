/**
 * The one clock of knode's components: the wall time and one-shot timers, so that policy that
 * depends on time (back-off, probe periods, eviction grace, status resend) takes `now` from a
 * narrow interface a test can drive (docs/architecture.md, conventions: pure policy with `now`).
 * The fake clock lives in test/helpers/fake-clock.ts.
 */

export interface TimerHandle {
  /** Opaque; only meant to be given back to clearTimer. */
  readonly id: number;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls callback once after delayMs (never earlier; a negative delay is 0). */
  setTimer(callback: () => void, delayMs: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

/** The wall clock. Timers are unref'd: no component is kept alive by a timer alone. */
class RealClock implements Clock {
  private nextId = 1;
  private readonly timers = new Map<number, NodeJS.Timeout>();

  now(): number {
    return Date.now();
  }

  setTimer(callback: () => void, delayMs: number): TimerHandle {
    const id = this.nextId++;
    const timer = setTimeout(() => {
      this.timers.delete(id);
      callback();
    }, Math.max(0, delayMs));
    timer.unref();
    this.timers.set(id, timer);
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    const timer = this.timers.get(handle.id);
    if (timer !== undefined) clearTimeout(timer);
    this.timers.delete(handle.id);
  }
}

export const systemClock: Clock = new RealClock();
