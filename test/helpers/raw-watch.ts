/**
 * A raw Kubernetes watch over plain HTTP for tests that check watch streams event by event
 * (order, gaps, duplicates, delivery delay): every event is kept with the time it arrived.
 *
 *   const watch = await openRawWatch('http://127.0.0.1:6443', '/api/v1/namespaces/default/configmaps', '123');
 *   watch.events        // [{ type, name, resourceVersion, data, at }]
 *   watch.closed        // the server ended the stream
 *   watch.close();
 *
 * And `apiRequest`, a JSON request with a deadline that never throws on an HTTP status.
 */
import { request as httpRequest, type ClientRequest } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface RawWatchEvent {
  type: string;
  name: string;
  resourceVersion: number;
  data: Record<string, string> | undefined;
  /** performance.now() when the event's line arrived. */
  at: number;
}

export interface RawWatch {
  readonly events: RawWatchEvent[];
  readonly closed: boolean;
  close(): void;
}

interface WatchObject {
  metadata?: { name?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

export function openRawWatch(server: string, path: string, resourceVersion: string): Promise<RawWatch> {
  const url = new URL(`${path}?watch=true&allowWatchBookmarks=false&resourceVersion=${encodeURIComponent(resourceVersion)}`, server);
  const events: RawWatchEvent[] = [];
  let closed = false;
  let request: ClientRequest | undefined;
  return new Promise((resolve, reject) => {
    request = httpRequest(url, { method: 'GET' }, (response) => {
      if (response.statusCode !== 200) {
        reject(new Error(`watch ${url.href}: HTTP ${response.statusCode}`));
        response.resume();
        return;
      }
      let buffer = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        const at = performance.now();
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (!line) continue;
          const event = JSON.parse(line) as { type: string; object: WatchObject };
          events.push({ type: event.type, name: event.object.metadata?.name ?? '', resourceVersion: Number(event.object.metadata?.resourceVersion), data: event.object.data, at });
        }
      });
      response.on('end', () => (closed = true));
      response.on('error', () => (closed = true));
      resolve({
        events,
        get closed() {
          return closed;
        },
        close: () => request?.destroy(),
      });
    });
    request.on('error', (error) => {
      closed = true;
      reject(error);
    });
    request.end();
  });
}

export interface ApiResponse {
  status: number;
  body: { metadata?: { name?: string; resourceVersion?: string }; items?: WatchObject[]; data?: Record<string, string> } & Record<string, unknown>;
}

/** One JSON request; status 0 when it failed at the transport (refused, reset, deadline). */
export function apiRequest(server: string, method: string, path: string, body?: unknown, timeoutMs = 15_000): Promise<ApiResponse> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve) => {
    const request = httpRequest(new URL(path, server), { method, timeout: timeoutMs, headers: payload ? { 'content-type': 'application/json' } : {} }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        try {
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as ApiResponse['body'] });
        } catch {
          resolve({ status: response.statusCode ?? 0, body: { text } });
        }
      });
      response.on('error', () => resolve({ status: 0, body: {} }));
    });
    request.on('timeout', () => request.destroy(new Error('deadline')));
    request.on('error', () => resolve({ status: 0, body: {} }));
    request.end(payload);
  });
}
