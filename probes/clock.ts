/**
 * Time for probe workers: a narrow clock with one-shot timers, the real one over the Node timers
 * and a test clock that only moves when a test advances it (table-driven worker tests).
 */

export interface TimerHandle {
  /** Opaque; only meant to be given back to clearTimer. */
  readonly id: number;
}

export interface ProbeClock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimer(callback: () => void, delayMs: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

/** The wall clock. Timers are unref'd: probe workers never keep a process alive on their own. */
export class RealClock implements ProbeClock {
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

interface PendingTimer {
  id: number;
  due: number;
  callback: () => void;
}

/**
 * A clock that stands still until advance(): due timers fire in order of their due time, and
 * the promise queue is drained after each one so that async probe results land before the
 * next timer (a probe that resolves immediately behaves as if it took no time).
 */
export class TestClock implements ProbeClock {
  private nextId = 1;
  private pending: PendingTimer[] = [];

  constructor(private current = 0) {}

  now(): number {
    return this.current;
  }

  setTimer(callback: () => void, delayMs: number): TimerHandle {
    const id = this.nextId++;
    this.pending.push({ id, due: this.current + Math.max(0, delayMs), callback });
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    this.pending = this.pending.filter((timer) => timer.id !== handle.id);
  }

  /** Number of timers waiting to fire. */
  get pendingTimers(): number {
    return this.pending.length;
  }

  /** Moves time forward by ms, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    await flushPromises();
    for (;;) {
      this.pending.sort((a, b) => a.due - b.due || a.id - b.id);
      const next = this.pending[0];
      if (next === undefined || next.due > target) break;
      this.pending.shift();
      this.current = next.due;
      next.callback();
      await flushPromises();
    }
    this.current = target;
  }
}

/** Lets queued promise callbacks (several hops deep) run. */
export async function flushPromises(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

const _realClock: ProbeClock = new RealClock();
const _testClock: ProbeClock = new TestClock();
void _realClock;
void _testClock;
