/**
 * The one informer helper: list + watch of one resource through client-node's ListWatch, which
 * relists by itself on "410 Gone" (it resets the resourceVersion); on any other watch error the
 * ListWatch stops, and this helper starts a new one after a back-off (the one retry policy:
 * exponential from 1 s, doubling to 30 s, with jitter, reset once a watch connects; like
 * client-go's reflector back-off manager). Consumers get the complete current set of objects
 * after every change, never a half-filled cache.
 */
import { KubeConfig, ListWatch, Watch, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from './log.js';

/** Exponential back-off with jitter: 1 s, 2 s, 4 s … capped at 30 s, each up to 20 % longer. */
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

interface InformerOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** API path of the collection, e.g. /api/v1/pods. */
  path: string;
  /** The list call (typed client), with the same selectors as below. */
  list: () => Promise<ListResult<T>>;
  fieldSelector?: string;
  labelSelector?: string;
  /** The complete current set, after the first list and after every change. */
  onItems(items: T[]): void;
  /** What is watched, for log lines. */
  what: string;
  log: Logger;
  backoff?: RetryBackoff;
}

export class Informer<T extends KubernetesObject> {
  private current?: ListWatch<T>;
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;
  private synced = false;
  private readonly backoff: RetryBackoff;

  constructor(private readonly options: InformerOptions<T>) {
    this.backoff = options.backoff ?? new RetryBackoff();
  }

  /** Starts; resolves once the first list is in (or failed, then it keeps retrying). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.current?.stop();
    this.current = undefined;
  }

  /** Whether a first list has been received. */
  get hasSynced(): boolean {
    return this.synced;
  }

  private emit(informer: ListWatch<T>): void {
    // A new ListWatch fills its cache item by item: only a complete list is a set.
    if (this.stopped || this.current !== informer || informer.latestResourceVersion() === '') return;
    this.synced = true;
    this.options.onItems([...informer.list()]);
  }

  private retry(informer: ListWatch<T>): void {
    const delayMs = Math.round(this.backoff.next());
    this.retryTimer = setTimeout(() => {
      informer.stop().then(
        () => this.connect(),
        () => this.connect(),
      );
    }, delayMs);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const { kubeConfig, path, fieldSelector, labelSelector, log, what } = this.options;
    const informer: ListWatch<T> = new ListWatch<T>(
      path,
      new Watch(kubeConfig),
      async () => {
        const list = await this.options.list();
        // After a (re)list the cache is complete once the ListWatch has applied it: emit then.
        setImmediate(() => this.emit(informer));
        return list as unknown as { metadata: { resourceVersion: string }; items: T[] } & KubernetesObject;
      },
      false,
      labelSelector,
      fieldSelector,
    );
    this.current = informer;
    informer.on('change', () => this.emit(informer));
    informer.on('connect', () => this.backoff.reset());
    informer.on('error', (error: unknown) => {
      if (this.stopped || this.current !== informer) return;
      log.warn({ err: error, what }, 'watch failed; restarting after a back-off');
      this.retry(informer);
    });
    try {
      await informer.start();
      this.emit(informer);
    } catch (error) {
      // The ListWatch reports a failed list through 'error' as well; that handler retries.
      log.warn({ err: error, what }, 'initial list failed; retrying');
    }
  }
}
