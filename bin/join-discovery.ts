/**
 * Token-based discovery, as kubeadm join does it (cmd/kubeadm/app/discovery/token/token.go;
 * docs "kubeadm join: discovery"): the `cluster-info` ConfigMap in kube-public is fetched
 * anonymously over TLS *without* trusting the server yet (no token is sent), its kubeconfig must
 * carry a detached JWS made with the bootstrap token (so the server knows the token), and the CA
 * inside must match a pinned `sha256:` public key hash (or the CA given with --ca-cert). Only then
 * is the CA trusted: cluster-info is fetched again over TLS verified with it, and must be the
 * same. The token leaves this machine only after all of this, inside the bootstrap kubeconfig.
 */
import { request } from 'node:https';
import { parse } from 'yaml';
import { caCertHash, caMatchesHash, clusterInfoName, clusterInfoNamespace, jwsKeyPrefix, verifyDetached, type BootstrapToken } from '../lib/bootstrap-token.js';
import { ConfigError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';

const maxBody = 1 << 20;

interface DiscoveryOptions {
  /** https://HOST:PORT */
  server: string;
  token: BootstrapToken;
  /** Pins `sha256:<hex>`; at least one, unless caPem is given. */
  caHashes: string[];
  /** A CA given with --ca-cert: trusted from the start. */
  caPem?: string;
  log: Logger;
  /** How long to retry an unreachable server (kubeadm: discovery timeout 5 min). */
  timeoutMs?: number;
}

class DiscoveryError extends ConfigError {}

/** GET of cluster-info, anonymous; `ca` undefined means "do not verify the server yet". */
function fetchClusterInfo(server: string, ca: string | undefined): Promise<{ status: number; body: string }> {
  const url = new URL(`/api/v1/namespaces/${clusterInfoNamespace}/configmaps/${clusterInfoName}`, server);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers: { accept: 'application/json' }, timeout: 10_000, ...(ca ? { ca } : { rejectUnauthorized: false }) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBody) req.destroy(new Error(`cluster-info response larger than ${maxBody} bytes`));
        else chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

interface ClusterInfo {
  kubeconfig: string;
  signatures: Record<string, string>;
}

function parseClusterInfo(body: string, server: string): ClusterInfo {
  let configMap: { data?: Record<string, unknown> };
  try {
    configMap = JSON.parse(body) as { data?: Record<string, unknown> };
  } catch (error) {
    throw new DiscoveryError(`${server}: the cluster-info ConfigMap is not JSON`, { cause: error });
  }
  const data = configMap.data ?? {};
  const kubeconfig = data.kubeconfig;
  if (typeof kubeconfig !== 'string' || kubeconfig === '') throw new DiscoveryError(`${server}: the cluster-info ConfigMap has no kubeconfig`);
  const signatures = Object.fromEntries(Object.entries(data).filter(([key, value]) => key.startsWith(jwsKeyPrefix) && typeof value === 'string')) as Record<string, string>;
  return { kubeconfig, signatures };
}

/** The CA of the (first) cluster of cluster-info's kubeconfig. */
function caOf(kubeconfig: string, server: string): string {
  let doc: { clusters?: { cluster?: Record<string, unknown> }[] };
  try {
    doc = parse(kubeconfig, { maxAliasCount: 10 }) as typeof doc;
  } catch (error) {
    throw new DiscoveryError(`${server}: the kubeconfig in cluster-info cannot be parsed`, { cause: error });
  }
  const data = doc?.clusters?.[0]?.cluster?.['certificate-authority-data'];
  if (typeof data !== 'string' || data === '') throw new DiscoveryError(`${server}: the kubeconfig in cluster-info has no certificate-authority-data`);
  return Buffer.from(data, 'base64').toString('utf8');
}

async function fetchWithRetry(options: DiscoveryOptions, ca: string | undefined): Promise<string> {
  const deadline = Date.now() + (options.timeoutMs ?? 300_000);
  for (let attempt = 1; ; attempt++) {
    try {
      const { status, body } = await fetchClusterInfo(options.server, ca);
      if (status === 200) return body;
      // 401/403: anonymous access to cluster-info is off; 404: no cluster-info (not a kubeadm-like control plane).
      if (status === 401 || status === 403 || status === 404) throw new DiscoveryError(`${options.server}: GET cluster-info answered HTTP ${status}: the control plane does not publish kube-public/cluster-info to anonymous clients`);
      throw new Error(`HTTP ${status}`);
    } catch (error) {
      if (error instanceof DiscoveryError) throw error;
      if (Date.now() > deadline) throw new DiscoveryError(`${options.server}: cannot fetch cluster-info: ${(error as Error).message}`, { cause: error });
      options.log.info({ server: options.server, attempt, err: error }, 'cluster-info not reachable yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * attempt, 5000)));
    }
  }
}

/** Runs discovery; returns the trusted CA (PEM). Throws a DiscoveryError that names the problem. */
export async function discoverCluster(options: DiscoveryOptions): Promise<{ caPem: string }> {
  const { server, token, log } = options;
  if (!options.caPem && options.caHashes.length === 0) throw new DiscoveryError('give --discovery-token-ca-cert-hash sha256:<hex> (printed by `knode token create --print-join-command`) or --ca-cert FILE');
  const insecure = parseClusterInfo(await fetchWithRetry(options, options.caPem), server);
  const signature = insecure.signatures[`${jwsKeyPrefix}${token.id}`];
  if (!signature) throw new DiscoveryError(`token id "${token.id}" is invalid for this cluster or it has expired: create a new one with \`knode token create --print-join-command\` on the control plane`);
  if (!verifyDetached(signature, insecure.kubeconfig, token)) throw new DiscoveryError(`failed to verify the JWS signature of the cluster-info received from ${server}: the token does not match, can't trust this API server`);
  const caPem = options.caPem ?? caOf(insecure.kubeconfig, server);
  if (!options.caPem) {
    let matches = false;
    try {
      matches = caMatchesHash(caPem, options.caHashes);
    } catch (error) {
      throw new DiscoveryError(`${server}: the CA in cluster-info is not a PEM certificate`, { cause: error });
    }
    if (!matches) throw new DiscoveryError(`cluster CA found in the cluster-info ConfigMap is invalid: its public key hash is ${caCertHash(caPem)}, and none of the pinned ones (${options.caHashes.join(', ')}) matches; the join stopped before sending the token`);
  }
  log.info({ server }, 'cluster-info signature and CA verified; requesting it again over TLS verified with that CA');
  const secure = parseClusterInfo(await fetchWithRetry(options, caPem), server);
  if (secure.kubeconfig !== insecure.kubeconfig) throw new DiscoveryError(`${server}: cluster-info changed between the unverified and the verified request`);
  return { caPem };
}
