/**
 * `knode controlplane`: the API server stub with its controllers (issue 3). Reads its flags,
 * opens the storage, serves, writes DATA_DIR/admin.kubeconfig and returns a Stoppable for a
 * clean SIGTERM shutdown.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from '../lib/command-options.js';
import { optionalString } from '../lib/command-options.js';
import { notifyReady } from '../lib/sd-notify.js';
import { ConfigError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { startControlPlane } from './control-plane.js';
import { parseCidr4 } from './ipalloc.js';
import { loadKubeletClientConfig } from './kubelet-client.js';
import { parseDuration } from '../lib/duration.js';
import { writeKubeconfig } from './kubeconfig.js';
import { ensureCredentials, parseListen, servingMode, servingNames } from './security.js';
import { MemoryStorage } from './storage/memory.js';
import type { Storage } from './storage/types.js';
import { EtcdStorage } from './storage/etcd.js';
import { parseTokenAuthFile } from './auth/authn.js';

/** The URL for cluster-info: a wildcard listen is advertised on the node's first non-loopback address. */
function advertiseUrl(address: { host: string; port: number }): string | undefined {
  let host = address.host;
  if (host === '0.0.0.0' || host === '::') host = servingNames(host).find((n) => n.startsWith('IP:') && n !== 'IP:127.0.0.1')?.slice(3) ?? '';
  if (host === '' || address.port === 0) return undefined;
  return `https://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

function readTokenFile(file: string | undefined) {
  if (!file) return undefined;
  try {
    return parseTokenAuthFile(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(`--token-auth-file "${file}": ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** --csr-min-duration: the shortest certificate the CSR signer issues (upstream: 10 min, fixed). */
function minDuration(text: string | undefined): number {
  if (text === undefined) return 600;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (error) {
    throw new ConfigError(`--csr-min-duration "${text}": ${error instanceof Error ? error.message : String(error)}`);
  }
  if (ms < 1000 || ms > 600_000) throw new ConfigError(`--csr-min-duration "${text}": must be between 1s and 10m`);
  return Math.round(ms / 1000);
}

function checkCidr(flag: string, value: string): string {
  try {
    parseCidr4(value);
  } catch (error) {
    throw new ConfigError(`${flag} "${value}": ${error instanceof Error ? error.message : String(error)}`);
  }
  return value;
}

function openStorage(kind: string, dataDir: string, endpoints: string | undefined, repair: boolean, log: Logger): Storage {
  if (repair && kind !== 'file') throw new ConfigError(`--repair applies to --store file, not "${kind}"`);
  if (kind === 'memory') return new MemoryStorage();
  if (kind === 'file') return new MemoryStorage({ dir: join(dataDir, 'store'), repair, log });
  if (kind === 'etcd') {
    if (!endpoints) throw new ConfigError('--store etcd needs --etcd-endpoints');
    return new EtcdStorage({ endpoints: endpoints.split(',').map((e) => e.trim()).filter((e) => e !== ''), log });
  }
  throw new ConfigError(`--store "${kind}": expected memory, file or etcd`);
}

export const run: Runner = async (options, log) => {
  const listen = parseListen(optionalString(options, 'listen') ?? '127.0.0.1:6443');
  const dataDir = optionalString(options, 'dataDir') ?? '/var/lib/knode/controlplane';
  const clusterCidr = checkCidr('--cluster-cidr', optionalString(options, 'clusterCidr') ?? '10.244.0.0/16');
  const serviceCidr = checkCidr('--service-cidr', optionalString(options, 'serviceCidr') ?? '10.96.0.0/12');
  const kubeletClient = loadKubeletClientConfig({
    certificate: optionalString(options, 'kubeletClientCertificate'),
    key: optionalString(options, 'kubeletClientKey'),
    certificateAuthority: optionalString(options, 'kubeletCertificateAuthority'),
  });
  const resolution = optionalString(options, 'metricResolution') ?? '15s';
  let metricResolutionMs: number;
  try {
    metricResolutionMs = parseDuration(resolution);
  } catch (error) {
    throw new ConfigError(`--metric-resolution "${resolution}": ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  // metrics-server refuses a resolution under 10 s (its default 15 s); knode allows 1 s for tests, 0 turns the API off.
  if (metricResolutionMs !== 0 && (metricResolutionMs < 1000 || metricResolutionMs > 3_600_000)) throw new ConfigError(`--metric-resolution "${resolution}": expected 0 (off) or between 1s and 1h`);
  const storage = openStorage(optionalString(options, 'store') ?? 'file', dataDir, optionalString(options, 'etcdEndpoints'), options.repair === true, log);
  const secureListen = optionalString(options, 'secureListen');
  const secure = secureListen ? parseListen(secureListen) : undefined;
  if (secure && !servingMode(listen.host).tls && secure.port === listen.port && secure.host === listen.host) throw new ConfigError('--secure-listen must differ from --listen');
  const staticTokens = readTokenFile(optionalString(options, 'tokenAuthFile'));
  const csrMinDurationSeconds = minDuration(optionalString(options, 'csrMinDuration'));
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const mode = servingMode(listen.host);
  // The cluster CA and the admin token exist in every mode: the CSR signer and the
  // bootstrap-signer's cluster-info need the CA even when the API is plain loopback HTTP.
  const credentials = await ensureCredentials(dataDir, [listen.host, ...(secure ? [secure.host] : [])]);
  const tls = { cert: credentials.cert, key: credentials.key, ca: credentials.caPem };
  const running = await startControlPlane({
    storage,
    log,
    host: listen.host,
    port: listen.port,
    clusterCidr,
    serviceCidr,
    tls: mode.tls ? tls : undefined,
    token: credentials.token,
    loopbackOpen: !mode.tls,
    staticTokens,
    secure: secure ? { ...secure, tls } : undefined,
    kubeletClient,
    clusterCa: credentials.ca,
    advertiseUrl: secure ? advertiseUrl(secure) : mode.tls ? advertiseUrl(listen) : undefined,
    csrMinDurationSeconds,
    metricResolutionMs,
  });
  const kubeconfig = join(dataDir, 'admin.kubeconfig');
  // A wildcard listen is reached through loopback by local clients.
  const server = running.url.replace('://0.0.0.0:', '://127.0.0.1:').replace('://[::]:', '://[::1]:');
  writeKubeconfig(kubeconfig, { server, token: mode.tls ? credentials.token : undefined, caPem: mode.tls ? credentials.caPem : undefined });
  log.info({ url: running.url, secureUrl: running.secureUrl, kubeconfig, store: optionalString(options, 'store') ?? 'file' }, 'control plane ready');
  // kube-apiserver sends READY=1 once it serves (genericapiserver's daemon.SdNotify).
  await notifyReady(log, `serving ${running.url}`);
  return { stop: () => running.stop() };
};
