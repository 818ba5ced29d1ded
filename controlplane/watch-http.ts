/**
 * Streaming watch over HTTP (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
 * one JSON `{"type":..,"object":..}` per line on a chunked response. Without a
 * resourceVersion (or "0") the current state is sent as ADDED events first. A resourceVersion
 * older than the watch cache window gets an ERROR event carrying a 410 Expired Status, which is
 * what kube-apiserver sends and what client-go/client-node informers react to by relisting.
 * Bookmarks go out when the client allows them; a watcher that does not read is dropped.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry, Selector } from './registry.js';
import { selectorMatches, withTypeMeta } from './registry.js';
import { storagePrefix, groupVersion, type ResourceInfo } from './resources.js';
import { gone } from './status.js';
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
}

export async function serveWatch(req: IncomingMessage, res: ServerResponse, request: WatchRequest, registry: Registry, cache: WatchCache, settings: WatchSettings): Promise<void> {
  const { info } = request;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();
  let closed = false;
  const cleanups: (() => void)[] = [];
  const close = () => {
    if (closed) return;
    closed = true;
    for (const cleanup of cleanups) cleanup();
    res.end();
  };
  // The response's 'close' fires when the client goes away (or we end the stream).
  res.on('close', close);
  res.on('error', close);
  void req;

  const encode = (type: WatchEventType | 'BOOKMARK' | 'ERROR', object: unknown) => {
    let payload = object;
    if (request.table && (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED')) {
      const typed = object as KObject;
      payload = toTable(info.kind, [typed], typed.metadata.resourceVersion ?? '', request.table);
    }
    return `${JSON.stringify({ type, object: payload })}\n`;
  };
  const send = (type: WatchEventType | 'BOOKMARK' | 'ERROR', object: unknown) => {
    if (closed) return;
    res.write(encode(type, object));
    if (res.writableLength > settings.maxBufferedBytes) close();
  };

  let from: number;
  const rv = request.resourceVersion;
  const filter = {
    prefix: storagePrefix(info, request.namespace),
    matches: (object: KObject) => selectorMatches(request.selector, object),
  };
  if (rv === undefined || rv === '' || rv === '0') {
    const list = await registry.list(info, request.namespace, {});
    from = Number(list.metadata.resourceVersion);
    for (const item of list.items) if (filter.matches(item)) send('ADDED', item);
  } else {
    from = Number(rv);
    if (!Number.isInteger(from) || from < 0) {
      send('ERROR', gone(`too old resource version: ${rv}`).toStatus());
      close();
      return;
    }
  }
  if (closed) return;
  try {
    cleanups.push(cache.add({ filter, send: (type, object) => send(type, withTypeMeta(info, object)) }, from));
  } catch (error) {
    if (!(error instanceof TooOldError)) throw error;
    send('ERROR', gone(`too old resource version: ${from} (${error.oldest})`).toStatus());
    close();
    return;
  }
  if (request.allowBookmarks) {
    const timer = setInterval(() => {
      send('BOOKMARK', { kind: info.kind, apiVersion: groupVersion(info), metadata: { resourceVersion: String(Math.max(cache.lastRevision(), from)) } });
    }, settings.bookmarkIntervalMs);
    timer.unref();
    cleanups.push(() => clearInterval(timer));
  }
  if (request.timeoutSeconds !== undefined && request.timeoutSeconds > 0) {
    const timer = setTimeout(close, request.timeoutSeconds * 1000);
    timer.unref();
    cleanups.push(() => clearTimeout(timer));
  }
}
