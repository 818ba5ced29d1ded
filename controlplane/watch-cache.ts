/**
 * Watch cache and broadcaster (the role of k8s.io/apiserver/pkg/storage/cacher): keeps a
 * bounded window of the most recent storage events. A watch that resumes from a
 * resourceVersion the window still covers gets every later event; an older one gets a
 * `410 Gone` "too old resource version" (clients then relist). Each watcher filters by prefix
 * and selectors; an object that stops matching a selector is sent as DELETED, one that starts
 * matching as ADDED (the cacher does the same). The window is bounded both in events and in
 * bytes (the JSON size of each event's object), so large objects cannot make it grow without
 * bound (issue 25 item 2; the cacher sizes its window too).
 */
import type { KObject, Storage, StoredEvent } from './storage/types.js';

export interface WatchFilter {
  prefix: string;
  matches(object: KObject): boolean;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Watcher {
  filter: WatchFilter;
  send(type: WatchEventType, object: KObject): void;
}

interface Registered {
  watcher: Watcher;
  /** Events at or below this revision are already known to the watcher. */
  from: number;
}

export class TooOldError extends Error {
  constructor(readonly requested: number, readonly oldest: number) {
    super(`too old resource version: ${requested} (${oldest})`);
    this.name = 'TooOldError';
  }
}

/** Default byte budget of the watch window (all kinds together). */
export const defaultWatchCacheBytes = 64 * 1024 * 1024;

export class WatchCache {
  private readonly history: StoredEvent[] = [];
  private readonly sizes: number[] = [];
  private bytes = 0;
  private floor = 0;
  private readonly watchers = new Set<Registered>();
  private readonly waiters = new Set<{ revision: number; wake: () => void }>();
  private last = 0;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly storage: Storage,
    private readonly capacity = 10_000,
    private readonly maxBytes = defaultWatchCacheBytes,
  ) {}

  start(): void {
    this.floor = this.storage.revision();
    this.last = this.floor;
    this.unsubscribe = this.storage.subscribe((event) => this.onEvent(event));
  }

  stop(): void {
    this.unsubscribe?.();
    this.watchers.clear();
    for (const waiter of this.waiters) waiter.wake();
    this.waiters.clear();
  }

  /**
   * Resolves true once the cache has seen `revision`, false after `timeoutMs` (the cacher's
   * waitUntilFreshAndBlock, which gives up after 3 s with "Too large resource version").
   */
  async waitFor(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.last >= revision) return true;
    await new Promise<void>((resolve) => {
      const waiter = {
        revision,
        wake: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, timeoutMs);
      timer.unref();
      this.waiters.add(waiter);
    });
    return this.last >= revision;
  }

  /** The oldest resourceVersion a watch can resume from. */
  oldestResumable(): number {
    return this.floor;
  }

  /** The revision of the newest event the cache has seen: safe for bookmarks. */
  lastRevision(): number {
    return this.last;
  }

  watcherCount(): number {
    return this.watchers.size;
  }

  /** Events and bytes the window holds now. */
  windowSize(): { events: number; bytes: number } {
    return { events: this.history.length, bytes: this.bytes };
  }

  /**
   * Registers a watcher that gets every matching event after `fromRevision`. Replays history
   * synchronously before returning, so no event falls between replay and live delivery.
   */
  add(watcher: Watcher, fromRevision: number): () => void {
    if (fromRevision < this.floor) throw new TooOldError(fromRevision, this.floor);
    for (const event of this.history) if (event.revision > fromRevision) this.deliver(watcher, event);
    const registered = { watcher, from: fromRevision };
    this.watchers.add(registered);
    return () => this.watchers.delete(registered);
  }

  private onEvent(event: StoredEvent): void {
    const size = JSON.stringify(event.object).length;
    this.history.push(event);
    this.sizes.push(size);
    this.bytes += size;
    if (event.revision > this.last) this.last = event.revision;
    while (this.history.length > this.capacity || this.bytes > this.maxBytes) {
      const dropped = this.history.shift();
      if (!dropped) break;
      this.bytes -= this.sizes.shift() ?? 0;
      this.floor = dropped.revision;
    }
    for (const { watcher, from } of this.watchers) if (event.revision > from) this.deliver(watcher, event);
    for (const waiter of this.waiters) if (waiter.revision <= this.last) waiter.wake();
  }

  private deliver(watcher: Watcher, event: StoredEvent): void {
    if (!event.key.startsWith(watcher.filter.prefix)) return;
    const now = watcher.filter.matches(event.object);
    const before = event.previous ? watcher.filter.matches(event.previous) : false;
    if (event.type === 'ADDED') {
      if (now) watcher.send('ADDED', event.object);
    } else if (event.type === 'DELETED') {
      if (before || now) watcher.send('DELETED', event.object);
    } else if (now && before) watcher.send('MODIFIED', event.object);
    else if (now) watcher.send('ADDED', event.object);
    else if (before) watcher.send('DELETED', event.object);
  }
}
