/**
 * The fake of lib/clock.ts: time stands still until a test moves it. advance() moves it
 * synchronously (due timers fire in order of their due time); tick() does the same but drains
 * the promise queue after each timer, so async work a timer starts lands before the next one
 * (a probe that resolves at once behaves as if it took no time).
 */
import type { Clock, TimerHandle } from '../../lib/clock.js';

interface PendingTimer {
  id: number;
  due: number;
  callback: () => void;
}

export class FakeClock implements Clock {
  private nextId = 1;
  private pending: PendingTimer[] = [];

  constructor(public time = 0) {}

  now(): number {
    return this.time;
  }

  set(ms: number): void {
    this.time = ms;
  }

  setTimer(callback: () => void, delayMs: number): TimerHandle {
    const id = this.nextId++;
    this.pending.push({ id, due: this.time + Math.max(0, delayMs), callback });
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    this.pending = this.pending.filter((timer) => timer.id !== handle.id);
  }

  /** Number of timers waiting to fire. */
  get pendingTimers(): number {
    return this.pending.length;
  }

  private nextDue(target: number): PendingTimer | undefined {
    this.pending.sort((a, b) => a.due - b.due || a.id - b.id);
    const next = this.pending[0];
    if (next === undefined || next.due > target) return undefined;
    this.pending.shift();
    return next;
  }

  /** Moves time forward by ms, firing every timer that falls due on the way. */
  advance(ms: number): void {
    const target = this.time + ms;
    for (let next = this.nextDue(target); next; next = this.nextDue(target)) {
      this.time = next.due;
      next.callback();
    }
    this.time = target;
  }

  /** advance(), letting queued promise callbacks run before and after each timer. */
  async tick(ms: number): Promise<void> {
    const target = this.time + ms;
    await flushPromises();
    for (let next = this.nextDue(target); next; next = this.nextDue(target)) {
      this.time = next.due;
      next.callback();
      await flushPromises();
    }
    this.time = target;
  }
}

/** Lets queued promise callbacks (several hops deep) run. */
export async function flushPromises(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
