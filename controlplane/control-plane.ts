/**
 * Assembles a control plane in one process: storage, watch cache, registry, the HTTP(S) API
 * server and the controllers. `startControlPlane` is what both `knode controlplane` and the
 * test helper use.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../lib/log.js';
import { createRequestHandler, createUpgradeHandler } from './api-server.js';
import type { KubeletClientConfig } from './kubelet-client.js';
import { podStreamProxy } from './pod-exec.js';
import { Registry } from './registry.js';
import { resources, type ResourceInfo, resourceNamed } from './resources.js';
import { ApiError } from './status.js';
import type { KObject, Storage } from './storage/types.js';
import { WatchCache, defaultWatchCacheBytes } from './watch-cache.js';
import { WatchBudget } from './watch-http.js';
import { parseCidr4, firstServiceIp } from './ipalloc.js';
import { registerAllocators } from './allocators.js';
import { podLogProxy } from './pod-log.js';
import { MetricsScraper } from './metrics-api.js';
import { isLoopback } from './security.js';
import { startControllers, type ControllerOptions } from './controllers/index.js';

export interface ControlPlaneOptions {
  storage: Storage;
  log: Logger;
  host: string;
  /** 0 picks a free port. */
  port: number;
  clusterCidr: string;
  serviceCidr: string;
  tls?: { cert: string; key: string };
  token?: string;
  /** Watch-cache window in events (default 10000) and in bytes (default 64 MiB). */
  watchHistory?: number;
  watchHistoryBytes?: number;
  /** Unread output per watcher (default 8 MiB) and of all watchers together (default 128 MiB). */
  watchBufferBytes?: number;
  watchTotalBufferBytes?: number;
  bookmarkIntervalMs?: number;
  controllers?: Partial<ControllerOptions> & { enabled?: boolean };
  /** Credentials for the kubelet API (pods/log, exec, attach): --kubelet-client-certificate etc. */
  kubeletClient?: KubeletClientConfig;
  /** --metric-resolution: how often every kubelet's /metrics/resource is scraped for metrics.k8s.io (0 or unset: no metrics.k8s.io; `knode controlplane` defaults to 15 s). Off by default here: an
   * in-process control plane (tests) must not dial node addresses it was not asked to. */
  metricResolutionMs?: number;
}

export interface RunningControlPlane {
  url: string;
  port: number;
  registry: Registry;
  storage: Storage;
  stop(): Promise<void>;
}

const byName = resourceNamed;

/** The namespaces and the `kubernetes` Service that exist in every cluster. */
async function bootstrap(registry: Registry, serviceIp: string, host: string, port: number): Promise<void> {
  const ensure = async (info: ResourceInfo, namespace: string | undefined, object: KObject) => {
    try {
      await registry.get(info, namespace, object.metadata.name as string);
      return; // kept from an earlier run
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 404)) throw error;
    }
    try {
      await registry.create(info, namespace, object);
    } catch (error) {
      if (!(error instanceof ApiError && error.reason === 'AlreadyExists')) throw error;
    }
  };
  for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) await ensure(byName('namespaces'), undefined, { metadata: { name } });
  await ensure(byName('services'), 'default', {
    metadata: { name: 'kubernetes', labels: { component: 'apiserver', provider: 'kubernetes' } },
    spec: { clusterIP: serviceIp, ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: port }] },
  });
  for (const name of ['default']) {
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) await ensure(byName('serviceaccounts'), ns, { metadata: { name } });
  }
  const address = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const subsets = [{ addresses: [{ ip: address }], ports: [{ name: 'https', port, protocol: 'TCP' }] }];
  await ensure(byName('endpoints'), 'default', { metadata: { name: 'kubernetes', labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } }, subsets });
  // The API server's own address may change between runs (the apiserver's endpoint reconciler
  // keeps both the Endpoints and the EndpointSlice of the `kubernetes` Service).
  await registry.mutate(byName('endpoints'), 'default', 'kubernetes', (endpoints) => ({ ...endpoints, subsets }));
  const slice = {
    addressType: 'IPv4',
    endpoints: [{ addresses: [address], conditions: { ready: true } }],
    ports: [{ name: 'https', port, protocol: 'TCP' }],
  };
  await ensure(byName('endpointslices'), 'default', { metadata: { name: 'kubernetes', labels: { 'kubernetes.io/service-name': 'kubernetes' } }, ...slice });
  await registry.mutate(byName('endpointslices'), 'default', 'kubernetes', (current) => ({ ...current, ...slice }));
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<RunningControlPlane> {
  const { storage, log } = options;
  if (!isLoopback(options.host) && (!options.tls || !options.token))
    throw new Error(`refusing to serve plain HTTP without authentication on ${options.host}: only loopback addresses may; give TLS and a bearer token`);
  const serviceCidr = parseCidr4(options.serviceCidr);
  const clusterCidr = parseCidr4(options.clusterCidr);
  await storage.start();
  const cache = new WatchCache(storage, options.watchHistory ?? 10_000, options.watchHistoryBytes ?? defaultWatchCacheBytes);
  cache.start();
  const registry = new Registry(storage);
  registerAllocators(registry, serviceCidr);
  let ready = false;
  const resolutionMs = options.metricResolutionMs ?? 0;
  const scraper = resolutionMs > 0 ? new MetricsScraper({ registry, client: options.kubeletClient ?? {}, log, resolutionMs }) : undefined;
  const apiOptions = {
    registry,
    cache,
    log,
    token: options.token,
    serverAddress: `${options.host}:${options.port}`,
    watch: {
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 30_000,
      maxBufferedBytes: options.watchBufferBytes ?? 8 * 1024 * 1024,
      budget: new WatchBudget(options.watchTotalBufferBytes ?? 128 * 1024 * 1024),
    },
    isReady: () => ready,
    podLogs: podLogProxy(registry, options.kubeletClient),
    podStreams: podStreamProxy(registry, options.kubeletClient),
    ...(scraper ? { metrics: scraper.store } : {}),
  };
  const handler = createRequestHandler(apiOptions);
  const server: Server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createHttpServer(handler);
  // Upgraded connections (exec/attach) leave the HTTP server's bookkeeping: ended at stop().
  const upgraded = new Set<Duplex>();
  const upgradeHandler = createUpgradeHandler(apiOptions);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    upgradeHandler(req, socket, head);
  });
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `${options.tls ? 'https' : 'http'}://${hostForUrl}:${port}`;
  try {
    await bootstrap(registry, firstServiceIp(serviceCidr), options.host, port);
  } catch (error) {
    server.close();
    throw new Error('control plane bootstrap failed', { cause: error });
  }
  const controllers =
    options.controllers?.enabled === false ? { stop: async () => undefined } : startControllers(registry, cache, log, { clusterCidr, ...options.controllers });
  scraper?.start();
  ready = true;
  log.info({ url }, 'control plane serving');
  let stopped = false;
  return {
    url,
    port,
    registry,
    storage,
    async stop() {
      if (stopped) return;
      stopped = true;
      ready = false;
      await controllers.stop();
      await scraper?.stop();
      cache.stop();
      server.closeAllConnections();
      for (const socket of upgraded) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await storage.stop();
    },
  };
}
