/**
 * Watch cache and broadcaster (the role of k8s.io/apiserver/pkg/storage/cacher): keeps a
 * bounded window of the most recent storage events. A watch that resumes from a
 * resourceVersion the window still covers gets every later event; an older one gets a
 * `410 Gone` "too old resource version" (clients then relist). Each watcher filters by prefix
 * and selectors; an object that stops matching a selector is sent as DELETED, one that starts
 * matching as ADDED (the cacher does the same).
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

export class WatchCache {
  private readonly history: StoredEvent[] = [];
  private floor = 0;
  private readonly watchers = new Set<Registered>();
  private last = 0;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly storage: Storage,
    private readonly capacity = 10_000,
  ) {}

  start(): void {
    this.floor = this.storage.revision();
    this.last = this.floor;
    this.unsubscribe = this.storage.subscribe((event) => this.onEvent(event));
  }

  stop(): void {
    this.unsubscribe?.();
    this.watchers.clear();
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
    this.history.push(event);
    if (event.revision > this.last) this.last = event.revision;
    if (this.history.length > this.capacity) {
      const dropped = this.history.shift() as StoredEvent;
      this.floor = dropped.revision;
    }
    for (const { watcher, from } of this.watchers) if (event.revision > from) this.deliver(watcher, event);
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
