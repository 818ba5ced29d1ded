/**
 * Streaming watch over HTTP (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
 * one JSON `{"type":..,"object":..}` per line on a chunked response. Without a
 * resourceVersion (or "0") the current state is sent as ADDED events first. A resourceVersion
 * older than the watch cache window gets an ERROR event carrying a 410 Expired Status, which is
 * what kube-apiserver sends and what client-go/client-node informers react to by relisting.
 * Bookmarks go out when the client allows them. Output is bounded per watcher and for all
 * watchers together: a watcher that falls behind is closed (its client relists and watches
 * again, as when the cacher terminates a blocked watcher), the one holding most first when the
 * total is over (issue 25 item 2). A resourceVersion newer than the cache has seen waits up to
 * 3 s, then gets a 504 "Too large resource version" ERROR event, as from the cacher.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry, Selector } from './registry.js';
import { selectorMatches, withTypeMeta } from './registry.js';
import { storagePrefix, groupVersion, type ResourceInfo } from './resources.js';
import { gone, tooLargeResourceVersion } from './status.js';
import type { KObject } from './storage/types.js';
import { TooOldError, type WatchCache, type WatchEventType } from './watch-cache.js';
import { toTable, type IncludeObject } from './table.js';

export interface WatchRequest {
  info: ResourceInfo;
  namespace?: string;
  selector: Selector;
  resourceVersion?: string;
  allowBookmarks: boolean;
  timeoutSeconds?: number;
  table?: IncludeObject;
}

export interface WatchSettings {
  bookmarkIntervalMs: number;
  /** Drop a watcher whose unread output exceeds this. */
  maxBufferedBytes: number;
  /** Unread output of all watchers together; over it, the watchers holding most are dropped. */
  budget: WatchBudget;
  /** How long a watch from a resourceVersion the cache has not seen waits (cacher: 3 s). */
  futureRevisionWaitMs?: number;
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** setTimeout's largest delay: a longer timeoutSeconds is clamped, not fired at once. */
const maxTimerMs = 2 ** 31 - 1;

interface Buffered {
  held: number;
  close(): void;
}

/** The total of unread watch output, shared by every watcher of a server. */
export class WatchBudget {
  private readonly members = new Set<Buffered>();
  private used = 0;

  constructor(readonly limit: number) {}

  total(): number {
    return this.used;
  }

  join(member: Buffered): void {
    this.members.add(member);
  }

  leave(member: Buffered): void {
    if (!this.members.delete(member)) return;
    this.used -= member.held;
    member.held = 0;
  }

  /** Records what a member now holds; over the limit, closes the largest holders. */
  update(member: Buffered, held: number): void {
    if (!this.members.has(member)) return;
    this.used += held - member.held;
    member.held = held;
    while (this.used > this.limit) {
      let largest: Buffered | undefined;
      for (const candidate of this.members) if (!largest || candidate.held > largest.held) largest = candidate;
      if (!largest || largest.held === 0) break;
      this.leave(largest);
      largest.close();
    }
  }
}

export async function serveWatch(req: IncomingMessage, res: ServerResponse, request: WatchRequest, registry: Registry, cache: WatchCache, settings: WatchSettings): Promise<void> {
  const { info } = request;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();
  let closed = false;
  const cleanups: (() => void)[] = [];
  const member: Buffered = { held: 0, close: () => drop() };
  const close = () => {
    if (closed) return;
    closed = true;
    settings.budget.leave(member);
    for (const cleanup of cleanups) cleanup();
    res.end();
  };
  // A watcher that fell behind: its unread output is discarded with the connection.
  const drop = () => {
    close();
    res.destroy();
  };
  settings.budget.join(member);
  // The response's 'close' fires when the client goes away (or we end the stream).
  res.on('close', close);
  res.on('error', close);
  res.on('drain', () => settings.budget.update(member, res.writableLength));
  void req;

  const encode = (type: WatchEventType, object: KObject) => {
    const payload = request.table ? toTable(info.kind, [object], object.metadata.resourceVersion ?? '', request.table) : object;
    return `${JSON.stringify({ type, object: payload })}\n`;
  };
  const write = (line: string) => {
    if (closed) return;
    res.write(line);
    if (res.writableLength > settings.maxBufferedBytes) drop();
    else settings.budget.update(member, res.writableLength);
  };
  const send = (type: WatchEventType, object: KObject) => write(encode(type, object));
  const sendControl = (type: 'BOOKMARK' | 'ERROR', object: unknown) => write(`${JSON.stringify({ type, object })}\n`);

  let from: number;
  const rv = request.resourceVersion;
  const filter = {
    prefix: storagePrefix(info, request.namespace),
    matches: (object: KObject) => selectorMatches(request.selector, object),
  };
  if (rv === undefined || rv === '' || rv === '0') {
    const list = await registry.list(info, request.namespace, {});
    from = Number(list.metadata.resourceVersion);
    for (const item of list.items) {
      if (closed) return;
      if (!filter.matches(item)) continue;
      send('ADDED', item);
      // The initial state goes out at the client's pace; later events replay from `from`.
      if (res.writableLength > settings.maxBufferedBytes / 2) await drained(res);
    }
  } else {
    from = Number(rv);
    if (!Number.isInteger(from) || from < 0) {
      sendControl('ERROR', gone(`too old resource version: ${rv}`).toStatus());
      close();
      return;
    }
    if (from > cache.lastRevision() && !(await cache.waitFor(from, settings.futureRevisionWaitMs ?? 3000))) {
      sendControl('ERROR', tooLargeResourceVersion(from, cache.lastRevision()).toStatus());
      close();
      return;
    }
  }
  if (closed) return;
  try {
    cleanups.push(cache.add({ filter, send: (type, object) => send(type, withTypeMeta(info, object)) }, from));
  } catch (error) {
    if (!(error instanceof TooOldError)) throw error;
    sendControl('ERROR', gone(`too old resource version: ${from} (${error.oldest})`).toStatus());
    close();
    return;
  }
  if (request.allowBookmarks) {
    const timer = setInterval(() => {
      sendControl('BOOKMARK', { kind: info.kind, apiVersion: groupVersion(info), metadata: { resourceVersion: String(Math.max(cache.lastRevision(), from)) } });
    }, settings.bookmarkIntervalMs);
    timer.unref();
    cleanups.push(() => clearInterval(timer));
  }
  if (request.timeoutSeconds !== undefined && request.timeoutSeconds > 0) {
    const timer = setTimeout(close, Math.min(request.timeoutSeconds * 1000, maxTimerMs));
    timer.unref();
    cleanups.push(() => clearTimeout(timer));
  }
}
