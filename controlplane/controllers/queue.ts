/**
 * A deduplicating work queue with one worker (like client-go's workqueue with a single
 * goroutine): a key added while it waits is processed once; a key added while it is being
 * processed runs again afterwards; a failure is retried with a capped backoff.
 */
import type { Logger } from '../../lib/log.js';

export class KeyQueue {
  private readonly pending = new Set<string>();
  private readonly retries = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly handle: (key: string) => Promise<void>,
    private readonly log: Logger,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    this.pending.add(key);
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
      if (this.pending.size > 0 && !this.stopped) this.add([...this.pending][0] as string);
    });
  }

  private async drain(): Promise<void> {
    // Yield once so that a burst of events collapses into one pass.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.pending.size > 0 && !this.stopped) {
      const key = this.pending.values().next().value as string;
      this.pending.delete(key);
      try {
        await this.handle(key);
        this.retries.delete(key);
      } catch (error) {
        const attempt = (this.retries.get(key) ?? 0) + 1;
        this.retries.set(key, attempt);
        const delay = Math.min(100 * 2 ** attempt, 5_000);
        this.log.warn({ err: error, key, attempt }, 'reconcile failed, will retry');
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          this.add(key);
        }, delay);
        timer.unref();
        this.timers.add(timer);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await this.running;
  }
}
