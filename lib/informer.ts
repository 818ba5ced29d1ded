/**
 * The one informer helper of knode's components (docs/architecture.md, "shared rules in lib/"):
 * list + watch of one resource, as client-go's reflector + informer, built on client-node's
 * ListWatch.
 *
 * - One ListWatch for the informer's whole life: its cache survives watch failures, so the relist
 *   after an outage reports, per object, what was deleted or changed meanwhile (the ListWatch diffs
 *   the new list against the cache; unchanged objects, same resourceVersion, raise no event).
 * - "410 Gone" (HTTP status or a watch ERROR event) is handled by the ListWatch itself: it drops
 *   the resourceVersion and relists at once. A watch the server ends normally is re-opened from the
 *   last resourceVersion at once. Any other failure (list or watch) stops the ListWatch; this helper
 *   starts it again after a back-off — the one retry policy (RetryBackoff).
 * - Consumers pick per-object handlers (onAdd/onUpdate/onDelete, for trackers such as the proxy's)
 *   and/or onItems, the complete set after the first list and after every change (never a set in
 *   the middle of applying a list). `whenSynced()` resolves after the first complete list: the
 *   proxy waits for both its caches before its first sync, as kube-proxy waits for
 *   `cache.WaitForCacheSync`.
 * - Field and label selectors go to both the list and the watch (the list function receives them).
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { ListWatch, Watch } from './kube-client.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import type { Logger } from './log.js';

/**
 * Exponential back-off with jitter: 1 s, 2 s, 4 s … capped at 30 s, each up to 20 % longer
 * (client-go's reflector uses an exponential back-off of 800 ms to 30 s with jitter).
 */
export class RetryBackoff {
  private delayMs: number;

  constructor(
    readonly initialMs = 1000,
    readonly maxMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {
    this.delayMs = initialMs;
  }

  /** The delay before the next attempt; the one after it doubles (up to the cap). */
  next(): number {
    const delay = this.delayMs * (1 + 0.2 * this.random());
    this.delayMs = Math.min(this.delayMs * 2, this.maxMs);
    return Math.min(delay, this.maxMs);
  }

  reset(): void {
    this.delayMs = this.initialMs;
  }
}

interface ListResult<T> {
  metadata?: { resourceVersion?: string };
  items: T[];
}

interface Selectors {
  fieldSelector?: string;
  labelSelector?: string;
}

interface InformerHandlers<T> {
  /** A new object (from the first list, a relist or the watch). */
  onAdd?(object: T): void;
  /** An object whose resourceVersion changed. */
  onUpdate?(object: T): void;
  /** An object deleted (from the watch, or missing from a relist). */
  onDelete?(object: T): void;
  /** The complete current set, after the first list and after every change. */
  onItems?(items: T[]): void;
}

export interface InformerOptions<T extends KubernetesObject> extends InformerHandlers<T>, Selectors {
  kubeConfig: KubeConfig;
  /** API path of the collection, e.g. /api/v1/pods. */
  path: string;
  /** The list call (typed client); it is given the informer's selectors. */
  list: (selectors: Selectors) => Promise<ListResult<T>>;
  /** What is watched, for log lines. */
  what: string;
  log: Logger;
  backoff?: RetryBackoff;
  clock?: Clock;
}

type ListWatchList<T> = { metadata: { resourceVersion: string }; items: T[] } & KubernetesObject;

export class Informer<T extends KubernetesObject> {
  private readonly listWatch: ListWatch<T>;
  private readonly backoff: RetryBackoff;
  private readonly clock: Clock;
  private retryTimer?: TimerHandle;
  private stopped = true;
  private synced = false;
  /** A list was received and is being applied to the cache: no set is emitted until it is. */
  private applying = false;
  private readonly syncedPromise: Promise<void>;
  private resolveSynced!: () => void;

  constructor(private readonly options: InformerOptions<T>) {
    this.backoff = options.backoff ?? new RetryBackoff();
    this.clock = options.clock ?? systemClock;
    this.syncedPromise = new Promise((resolve) => (this.resolveSynced = resolve));
    const selectors: Selectors = {
      ...(options.fieldSelector !== undefined ? { fieldSelector: options.fieldSelector } : {}),
      ...(options.labelSelector !== undefined ? { labelSelector: options.labelSelector } : {}),
    };
    const list = async (): Promise<ListWatchList<T>> => {
      const result = await options.list(selectors);
      this.listReceived();
      return result as unknown as ListWatchList<T>;
    };
    this.listWatch = new ListWatch<T>(options.path, new Watch(options.kubeConfig), list, false, options.labelSelector, options.fieldSelector);
    this.listWatch.on('add', (object: T) => this.handle(options.onAdd, object));
    this.listWatch.on('update', (object: T) => this.handle(options.onUpdate, object));
    this.listWatch.on('delete', (object: T) => this.handle(options.onDelete, object));
    this.listWatch.on('error', (error: unknown) => this.failed(error));
  }

  /**
   * Starts listing and watching; resolves once the first list is in and its watch is open, or
   * once that failed (then it keeps retrying in the background: wait with whenSynced()).
   */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    await this.run();
    // The set of a list is emitted right after the ListWatch applied it (see listReceived).
    await new Promise((resolve) => setImmediate(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) this.clock.clearTimer(this.retryTimer);
    this.retryTimer = undefined;
    await this.listWatch.stop();
  }

  /** Whether a first list has been received and applied. */
  get hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves after the first complete list (never, if the informer stops before one). */
  whenSynced(): Promise<void> {
    return this.syncedPromise;
  }

  /** The current set (empty before the first list). */
  list(): T[] {
    return [...this.listWatch.list()];
  }

  private handle(handler: ((object: T) => void) | undefined, object: T): void {
    if (this.stopped) return;
    // The watch delivers: whatever failed before has recovered.
    this.backoff.reset();
    handler?.call(this.options, object);
    if (!this.applying) this.emitItems();
  }

  private emitItems(): void {
    if (this.stopped || !this.synced) return;
    this.options.onItems?.(this.list());
  }

  /**
   * The ListWatch applies a list synchronously in the continuation of our list call, before any
   * I/O callback: a setImmediate queued now runs once the cache holds the whole list.
   */
  private listReceived(): void {
    this.backoff.reset();
    this.applying = true;
    setImmediate(() => {
      this.applying = false;
      if (this.stopped) return;
      if (!this.synced) {
        this.synced = true;
        this.resolveSynced();
      }
      this.emitItems();
    });
  }

  private async run(): Promise<void> {
    try {
      // Re-watches from the last resourceVersion, or lists first when there is none (yet).
      await this.listWatch.start();
      // The ListWatch opens its watch after a list even when it was stopped during the list.
      if (this.stopped) await this.listWatch.stop();
    } catch (error) {
      // The ListWatch reports list and watch failures through 'error'; this is anything else
      // (e.g. credentials that cannot be loaded).
      this.failed(error);
    }
  }

  private failed(error: unknown): void {
    if (this.stopped || this.retryTimer) return;
    const delayMs = Math.round(this.backoff.next());
    const { log, what } = this.options;
    log.warn({ err: error, what, retryInMs: delayMs }, 'list/watch failed; retrying after a back-off');
    this.retryTimer = this.clock.setTimer(() => {
      this.retryTimer = undefined;
      if (!this.stopped) void this.run();
    }, delayMs);
  }
}
