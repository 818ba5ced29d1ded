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
import { accessControl, type AccessSettings } from './auth/request.js';
import type { UserInfo } from './auth/authn.js';
import type { ClusterCa } from './auth/pki.js';
import { setCsrMinDuration } from './kinds-csr.js';
import { ensureClusterInfo } from './controllers/bootstrap-tokens.js';
import type { ApiServerOptions } from './api-server.js';

/** An HTTP(S) server with the API's handlers; upgraded sockets are tracked for stop(). */
function makeServer(apiOptions: ApiServerOptions, tls: TlsSettings | undefined, upgraded: Set<Duplex>): Server {
  const handler = createRequestHandler(apiOptions);
  const server: Server = tls
    ? createHttpsServer({ cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: false } : {}) }, handler)
    : createHttpServer(handler);
  const upgradeHandler = createUpgradeHandler(apiOptions);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    upgradeHandler(req, socket, head);
  });
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  return server;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

const urlOf = (tls: boolean, host: string, port: number) => `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;

export interface ControlPlaneOptions {
  storage: Storage;
  log: Logger;
  host: string;
  /** 0 picks a free port. */
  port: number;
  clusterCidr: string;
  serviceCidr: string;
  /** Serve TLS; with `ca`, client certificates signed by it authenticate (CN = user, O = groups). */
  tls?: TlsSettings;
  /** The admin bearer token (`system:masters`). Plain loopback HTTP without one: every request is the admin. */
  token?: string;
  /** Plain loopback HTTP where every request is the admin (default: without TLS and without a token). */
  loopbackOpen?: boolean;
  /** The cluster CA: the CSR signer and the cluster-info ConfigMap need it (absent: neither runs). */
  clusterCa?: ClusterCa;
  /** The shortest certificate the CSR signer issues, in seconds (default 600, as upstream). */
  csrMinDurationSeconds?: number;
  /** The URL other machines reach this API at, written into cluster-info (default: the secure listener's, else the main one's). */
  advertiseUrl?: string;
  /** --token-auth-file entries. */
  staticTokens?: ReadonlyMap<string, UserInfo>;
  /** A second listener, always TLS with authentication (knode up: the node address, for joins). */
  secure?: { host: string; port: number; tls: TlsSettings };
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

export interface TlsSettings {
  cert: string;
  key: string;
  ca?: string;
}

export interface RunningControlPlane {
  url: string;
  /** The second listener's URL, when `secure` was given. */
  secureUrl?: string;
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
  if (!isLoopback(options.host) && (!options.tls || !options.token || options.loopbackOpen))
    throw new Error(`refusing to serve plain HTTP without authentication on ${options.host}: only loopback addresses may; give TLS and a bearer token`);
  const serviceCidr = parseCidr4(options.serviceCidr);
  const clusterCidr = parseCidr4(options.clusterCidr);
  await storage.start();
  const cache = new WatchCache(storage, options.watchHistory ?? 10_000, options.watchHistoryBytes ?? defaultWatchCacheBytes);
  cache.start();
  const registry = new Registry(storage);
  registerAllocators(registry, serviceCidr);
  let ready = false;
  const access = (settings: AccessSettings) => accessControl(registry, { ...settings, adminToken: options.token, staticTokens: options.staticTokens });
  const resolutionMs = options.metricResolutionMs ?? 0;
  const scraper = resolutionMs > 0 ? new MetricsScraper({ registry, client: options.kubeletClient ?? {}, log, resolutionMs }) : undefined;
  const apiOptions: ApiServerOptions = {
    registry,
    cache,
    log,
    access: access({ loopbackAdmin: options.loopbackOpen ?? (!options.tls && !options.token) }),
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
  // Upgraded connections (exec/attach) leave the HTTP server's bookkeeping: ended at stop().
  const upgraded = new Set<Duplex>();
  const server = makeServer(apiOptions, options.tls, upgraded);
  const port = await listen(server, options.port, options.host);
  const url = urlOf(Boolean(options.tls), options.host, port);
  let secureServer: Server | undefined;
  let secureUrl: string | undefined;
  if (options.secure) {
    secureServer = makeServer({ ...apiOptions, access: access({ loopbackAdmin: false }), serverAddress: `${options.secure.host}:${options.secure.port}` }, options.secure.tls, upgraded);
    try {
      secureUrl = urlOf(true, options.secure.host, await listen(secureServer, options.secure.port, options.secure.host));
    } catch (error) {
      server.close();
      throw new Error(`cannot listen on ${options.secure.host}:${options.secure.port}`, { cause: error });
    }
  }
  try {
    await bootstrap(registry, firstServiceIp(serviceCidr), options.host, port);
  } catch (error) {
    server.close();
    secureServer?.close();
    throw new Error('control plane bootstrap failed', { cause: error });
  }
  if (options.clusterCa) {
    setCsrMinDuration(options.csrMinDurationSeconds ?? 600);
    try {
      await ensureClusterInfo(registry, options.advertiseUrl ?? secureUrl ?? url, options.clusterCa.certPem);
    } catch (error) {
      log.warn({ err: error }, 'cannot write the cluster-info ConfigMap');
    }
  }
  const csr = options.clusterCa ? { ca: options.clusterCa, maxSeconds: 365 * 86_400, minSeconds: options.csrMinDurationSeconds ?? 600 } : undefined;
  const controllers =
    options.controllers?.enabled === false ? { stop: async () => undefined } : startControllers(registry, cache, log, { clusterCidr, csr, ...options.controllers });
  scraper?.start();
  ready = true;
  log.info({ url, secureUrl }, 'control plane serving');
  let stopped = false;
  return {
    url,
    secureUrl,
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
      for (const each of [server, secureServer]) each?.closeAllConnections();
      for (const socket of upgraded) socket.destroy();
      await Promise.all([server, secureServer].map((each) => (each ? new Promise<void>((resolve) => each.close(() => resolve())) : undefined)));
      await storage.stop();
    },
  };
}
