/** Keys to hand back after a delay (client-go's AddAfter): one pending timer per key, the earliest wins. */
export class DelayedKeys {
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private stopped = false;

  constructor(private readonly ready: (key: string) => void) {}

  add(key: string, delayMs: number): void {
    if (this.stopped) return;
    const delay = Math.max(0, Math.min(delayMs, 2 ** 31 - 1));
    const at = Date.now() + delay;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.ready(key);
    }, delay);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  stop(): void {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
