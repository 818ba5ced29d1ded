/**
 * A real knode control plane for tests, in this process.
 *
 *   const cp = await startTestControlPlane();
 *   // cp.url            http://127.0.0.1:<port>  (plain HTTP, no auth, loopback only)
 *   // cp.kubeconfigPath a kubeconfig for kubectl --kubeconfig / loadKubeconfig() / KubeConfig.loadFromFile()
 *   // cp.registry       direct access to the stored objects (optional; prefer the API)
 *   await cp.stop();     // closes watches and the server, removes the temp dir
 *
 * Options: `storage: 'memory' | 'file' | 'etcd'` (default memory; 'file' keeps state in `dataDir`,
 * or in a fresh temp dir, so that a control plane started again on that dir and the same `port`
 * is a restart; 'etcd' needs `etcdEndpoints` and uses `etcdPrefix` or a fresh prefix), `controllers: false` to run without the scheduler/endpointslice/IPAM/node
 * lifecycle controllers, `nodeMonitorGracePeriodMs` (default 40 000) to speed up node lifecycle,
 * `watchHistory` (events in the watch window; small values make 410 Gone easy to provoke),
 * `bookmarkIntervalMs`, `clusterCidr` (10.244.0.0/16), `serviceCidr` (10.96.0.0/12).
 * Namespaces default, kube-system, kube-public and kube-node-lease exist from the start.
 * `secure: true` serves TLS on loopback with authentication as on a node address (cluster CA,
 * admin token in the kubeconfig, CSR controllers, cluster-info); `cp.caPem`, `cp.ca`, `cp.adminToken`.
 */
import { networkInterfaces } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../lib/log.js';
import { startControlPlane } from '../../controlplane/control-plane.js';
import type { Registry } from '../../controlplane/registry.js';
import { MemoryStorage } from '../../controlplane/storage/memory.js';
import { EtcdStorage } from '../../controlplane/storage/etcd.js';
import type { Storage } from '../../controlplane/storage/types.js';
import { randomBytes } from 'node:crypto';
import { writeKubeconfig } from '../../controlplane/kubeconfig.js';
import { ensureCredentials } from '../../controlplane/security.js';
import type { ClusterCa } from '../../controlplane/auth/pki.js';

export interface TestControlPlaneOptions {
  storage?: 'memory' | 'file' | 'etcd';
  /** Listen on this loopback port (default 0: any free one); a restart keeps the port its clients know. */
  port?: number;
  etcdEndpoints?: string[];
  etcdPrefix?: string;
  dataDir?: string;
  controllers?: boolean;
  nodeMonitorGracePeriodMs?: number;
  resyncMs?: number;
  eventTtlMs?: number;
  watchHistory?: number;
  watchHistoryBytes?: number;
  watchBufferBytes?: number;
  watchTotalBufferBytes?: number;
  /** Require `Authorization: Bearer <token>` (loopback allows it without TLS). */
  token?: string;
  bookmarkIntervalMs?: number;
  clusterCidr?: string;
  serviceCidr?: string;
  /**
   * Serve TLS on loopback with authentication as on a node address: the cluster CA in the data
   * dir (client certificates of it authenticate), an admin token in the kubeconfig, the CSR
   * controllers and cluster-info. `csrMinDurationSeconds` (default 600) for rotation tests.
   */
  secure?: boolean;
  csrMinDurationSeconds?: number;
  /** Scrape every node's /metrics/resource for metrics.k8s.io this often (off when unset). */
  metricResolutionMs?: number;
}

export interface TestControlPlane {
  url: string;
  port: number;
  kubeconfigPath: string;
  registry: Registry;
  /** With `secure`: the cluster CA (PEM), the CA itself (to issue test certificates) and the admin token. */
  caPem?: string;
  ca?: ClusterCa;
  adminToken?: string;
  stop(): Promise<void>;
}

/** Loopback or an address of an interface of this network namespace: a dial that stays on the machine. */
export function isThisMachinesAddress(host: string): boolean {
  if (host === 'localhost' || host.startsWith('127.') || host === '::1') return true;
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((address) => address.address === host));
}

export async function startTestControlPlane(options: TestControlPlaneOptions = {}): Promise<TestControlPlane> {
  const tempDir = mkdtempSync(join(tmpdir(), 'knode-cp-'));
  const dataDir = options.dataDir ?? join(tempDir, 'data');
  const storage: Storage =
    options.storage === 'etcd'
      ? new EtcdStorage({ endpoints: options.etcdEndpoints ?? [], prefix: options.etcdPrefix ?? `/knode-test-${randomBytes(6).toString('hex')}` })
      : new MemoryStorage(options.storage === 'file' ? { dir: dataDir } : {});
  const credentials = options.secure ? await ensureCredentials(dataDir, ['127.0.0.1']) : undefined;
  const running = await startControlPlane({
    storage,
    log: createLogger('controlplane', process.env.KNODE_TEST_LOG_LEVEL ?? 'silent'),
    host: '127.0.0.1',
    port: options.port ?? 0,
    clusterCidr: options.clusterCidr ?? '10.244.0.0/16',
    serviceCidr: options.serviceCidr ?? '10.96.0.0/12',
    watchHistory: options.watchHistory,
    watchHistoryBytes: options.watchHistoryBytes,
    watchBufferBytes: options.watchBufferBytes,
    watchTotalBufferBytes: options.watchTotalBufferBytes,
    token: credentials?.token ?? options.token,
    ...(credentials
      ? { tls: { cert: credentials.cert, key: credentials.key, ca: credentials.caPem }, clusterCa: credentials.ca, csrMinDurationSeconds: options.csrMinDurationSeconds }
      : {}),
    bookmarkIntervalMs: options.bookmarkIntervalMs,
    // Network safety: this control plane runs in the test process's netns (the root one); a
    // kubelet address that exists only inside a test netns would leave through the default route.
    kubeletClient: { allowHost: isThisMachinesAddress },
    ...(options.metricResolutionMs !== undefined ? { metricResolutionMs: options.metricResolutionMs } : {}),
    controllers: {
      enabled: options.controllers ?? true,
      ...(options.nodeMonitorGracePeriodMs !== undefined ? { nodeMonitorGracePeriodMs: options.nodeMonitorGracePeriodMs } : {}),
      ...(options.resyncMs !== undefined ? { resyncMs: options.resyncMs } : {}),
      ...(options.eventTtlMs !== undefined ? { eventTtlMs: options.eventTtlMs } : {}),
    },
  });
  const kubeconfigPath = join(tempDir, 'kubeconfig');
  writeKubeconfig(kubeconfigPath, { server: running.url, token: credentials?.token, caPem: credentials?.caPem });
  return {
    caPem: credentials?.caPem,
    ca: credentials?.ca,
    adminToken: credentials?.token,
    url: running.url,
    port: running.port,
    kubeconfigPath,
    registry: running.registry,
    async stop() {
      await running.stop();
      rmSync(tempDir, { recursive: true, force: true });
    },
  };
}
