/**
 * A small real HTTP server with Kubernetes list/watch semantics for one collection
 * (/api/v1/configmaps), for tests of list+watch clients (lib/informer.ts) that need to steer
 * what the API server does: events with resourceVersions, a history that can be compacted
 * (a watch from before it gets a 410 "Expired" ERROR event, as kube-apiserver sends), failing
 * requests (HTTP 500), watches ended cleanly or cut. Loopback only.
 *
 *   const server = await startListWatchServer();
 *   server.put('a', { k: 'v' });         // ADDED / MODIFIED to open watches
 *   server.remove('a');                  // DELETED
 *   server.failNext = 2;                 // the next two requests get HTTP 500
 *   server.compact(); server.endWatches();
 *   server.requests                      // what clients asked for
 */
import { createServer, type ServerResponse } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';

export interface TestObject {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: { name: string; namespace: string; resourceVersion: string; labels?: Record<string, string> };
  data: Record<string, string>;
}

export interface SeenRequest {
  watch: boolean;
  resourceVersion?: string;
  fieldSelector?: string;
  labelSelector?: string;
  status: number;
}

interface HistoryEntry {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: TestObject;
}

export interface ListWatchServer {
  readonly url: string;
  readonly requests: SeenRequest[];
  readonly openWatches: number;
  failNext: number;
  kubeConfig(): KubeConfig;
  /** Creates or changes an object; `quiet` keeps it from open watches (they see it only by history). */
  put(name: string, data: Record<string, string>, quiet?: boolean): TestObject;
  remove(name: string, quiet?: boolean): void;
  /** Forgets the history: a watch from an older resourceVersion gets 410. */
  compact(): void;
  /** Ends open watches as the server's timeout does (clean end of the stream). */
  endWatches(): void;
  /** Cuts open watches (connection reset). */
  cutWatches(): void;
  /** Holds list requests until the returned function is called. */
  holdLists(): () => void;
  close(): Promise<void>;
}

export async function startListWatchServer(): Promise<ListWatchServer> {
  const objects = new Map<string, TestObject>();
  const history: Array<HistoryEntry & { rv: number }> = [];
  const watches = new Set<ServerResponse>();
  const requests: SeenRequest[] = [];
  let rv = 100;
  let oldest = rv;
  let held: Promise<void> = Promise.resolve();

  const send = (response: ServerResponse, entry: { type: string; object: unknown }) => response.write(`${JSON.stringify(entry)}\n`);
  const record = (type: HistoryEntry['type'], object: TestObject, quiet: boolean) => {
    history.push({ type, object, rv });
    if (!quiet) for (const watch of watches) send(watch, { type, object });
  };

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const watch = url.searchParams.get('watch') === 'true';
    const seen: SeenRequest = { watch, status: 200 };
    for (const key of ['resourceVersion', 'fieldSelector', 'labelSelector'] as const) {
      const value = url.searchParams.get(key);
      if (value !== null) seen[key] = value;
    }
    requests.push(seen);
    if (url.pathname !== '/api/v1/configmaps') {
      seen.status = 404;
      response.writeHead(404).end();
      return;
    }
    if (server.failNext > 0) {
      server.failNext--;
      seen.status = 500;
      response.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 500, reason: 'InternalError' }));
      return;
    }
    if (!watch) {
      void held.then(() => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ kind: 'ConfigMapList', apiVersion: 'v1', metadata: { resourceVersion: String(rv) }, items: [...objects.values()] }));
      });
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    const from = Number(seen.resourceVersion ?? '0');
    if (from < oldest) {
      send(response, { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 410, reason: 'Expired', message: `too old resource version: ${from} (${oldest})` } });
      response.end();
      return;
    }
    response.flushHeaders();
    for (const entry of history.filter((e) => e.rv > from)) send(response, entry);
    watches.add(response);
    response.on('close', () => watches.delete(response));
  }) as ReturnType<typeof createServer> & { failNext: number };
  server.failNext = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  return {
    url,
    requests,
    get openWatches() {
      return watches.size;
    },
    get failNext() {
      return server.failNext;
    },
    set failNext(count: number) {
      server.failNext = count;
    },
    kubeConfig() {
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromOptions({
        clusters: [{ name: 'test', server: url, skipTLSVerify: true }],
        users: [{ name: 'test' }],
        contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
        currentContext: 'test',
      });
      return kubeConfig;
    },
    put(name, data, quiet = false) {
      rv++;
      const existed = objects.has(name);
      const object: TestObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', resourceVersion: String(rv) }, data };
      objects.set(name, object);
      record(existed ? 'MODIFIED' : 'ADDED', object, quiet);
      return object;
    },
    remove(name, quiet = false) {
      const object = objects.get(name);
      if (!object) return;
      rv++;
      objects.delete(name);
      record('DELETED', { ...object, metadata: { ...object.metadata, resourceVersion: String(rv) } }, quiet);
    },
    compact() {
      history.length = 0;
      oldest = rv;
    },
    endWatches() {
      for (const watch of watches) watch.end();
    },
    cutWatches() {
      for (const watch of watches) watch.socket?.destroy();
    },
    holdLists() {
      let release!: () => void;
      held = new Promise((resolve) => (release = resolve));
      return () => {
        held = Promise.resolve();
        release();
      };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
