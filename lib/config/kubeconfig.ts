/**
 * kubeconfig files (clientcmd v1 Config). The shape is validated first, so that a broken file
 * gets an error naming the field, then handed to @kubernetes/client-node. Relative certificate
 * paths are resolved against the kubeconfig's folder, as kubectl does.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { startApiFailover } from '../api-failover.js';
import type { Logger } from '../log.js';
import { readConfigDocument, validateConfig } from './load.js';

const cluster = z.object({
  server: z.string().refine((url) => /^https?:\/\/[^/]+/.test(url), 'must be an http(s) URL'),
  'certificate-authority': z.string().optional(),
  'certificate-authority-data': z.string().optional(),
  'insecure-skip-tls-verify': z.boolean().optional(),
  'tls-server-name': z.string().optional(),
  extensions: z.array(z.object({ name: z.string().min(1), extension: z.unknown() })).max(32).optional(),
});

/** Name of the cluster extension that lists more API servers (lib/api-failover.ts). */
export const failoverExtension = 'knode.io/failover';
const failoverServers = z.object({ servers: z.array(z.string().refine((url) => /^https?:\/\/[^/]+\/?$/.test(url), 'must be an http(s) URL without a path')).min(1).max(16) });

const user = z.object({
  token: z.string().optional(),
  tokenFile: z.string().optional(),
  'client-certificate': z.string().optional(),
  'client-certificate-data': z.string().optional(),
  'client-key': z.string().optional(),
  'client-key-data': z.string().optional(),
  username: z.string().optional(),
  password: z.string().optional(),
}).loose();

const context = z.object({ cluster: z.string().min(1), user: z.string().default(''), namespace: z.string().optional() });

const kubeconfigSchema = z
  .object({
    apiVersion: z.literal('v1', { error: 'unknown apiVersion (expected v1)' }).default('v1'),
    kind: z.literal('Config', { error: 'unknown kind (expected Config)' }).default('Config'),
    clusters: z.array(z.object({ name: z.string().min(1), cluster })).min(1, 'needs at least one cluster'),
    users: z.array(z.object({ name: z.string().min(1), user })).default([]),
    contexts: z.array(z.object({ name: z.string().min(1), context })).min(1, 'needs at least one context'),
    'current-context': z.string().default(''),
  })
  .superRefine((config, ctx) => {
    const current = config['current-context'] || config.contexts[0]!.name;
    const found = config.contexts.find((entry) => entry.name === current);
    if (!found) {
      ctx.addIssue({ code: 'custom', path: ['current-context'], message: `context "${current}" is not defined` });
      return;
    }
    if (!config.clusters.some((entry) => entry.name === found.context.cluster)) {
      ctx.addIssue({ code: 'custom', path: ['contexts'], message: `context "${current}" names cluster "${found.context.cluster}", which is not defined` });
    }
  });

const pathFields = ['certificate-authority', 'client-certificate', 'client-key', 'tokenFile'];

function resolvePaths(node: unknown, base: string): unknown {
  if (Array.isArray(node)) return node.map((item) => resolvePaths(item, base));
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(
    Object.entries(node).map(([key, value]) => [
      key,
      pathFields.includes(key) && typeof value === 'string' && !isAbsolute(value) ? resolve(base, value) : resolvePaths(value, base),
    ]),
  );
}

type KubeconfigData = z.output<typeof kubeconfigSchema>;

/** Reads and validates a kubeconfig file; relative paths come back absolute. */
export function readKubeconfig(file: string): KubeconfigData {
  const data = validateConfig(kubeconfigSchema, readConfigDocument(file), file);
  const resolved = resolvePaths(data, dirname(resolve(file))) as KubeconfigData;
  if (!resolved['current-context']) resolved['current-context'] = resolved.contexts[0]!.name;
  return resolved;
}

/**
 * Loads a kubeconfig file into a client-node KubeConfig. client-node is imported here, on
 * demand, because importing it costs ~0.4 s that short-lived commands should not pay. When the
 * current cluster lists more API servers (`knode.io/failover`), the KubeConfig points at a
 * loopback forwarder that fails over between them (lib/api-failover.ts).
 */
export async function loadKubeconfig(file: string, log?: Logger): Promise<KubeConfig> {
  const data = readKubeconfig(file);
  const { KubeConfig } = await import('../kube-client.js');
  const kubeConfig = new KubeConfig();
  try {
    // client-node reads the file itself, so every user credential it knows (token, tokenFile,
    // client certificates, exec and auth-provider plugins) works, with paths made absolute
    // against the file's folder; the validation above only gives a clear error first.
    kubeConfig.loadFromFile(file);
    if (!kubeConfig.getCurrentContext()) kubeConfig.setCurrentContext(data['current-context']);
  } catch (error) {
    throw new ConfigError(`config file "${file}": ${(error as Error).message}`, { cause: error });
  }
  const servers = failoverList(data, file);
  if (servers) await throughFailover(kubeConfig, servers, log);
  return kubeConfig;
}

/**
 * The API servers the current cluster's `knode.io/failover` extension lists (the cluster's own
 * `server` first), or undefined when it lists none:
 *
 *   clusters:
 *   - name: knode
 *     cluster:
 *       server: https://10.0.0.1:6443
 *       extensions:
 *       - name: knode.io/failover
 *         extension: { servers: [https://10.0.0.2:6443] }
 */
export function failoverList(data: KubeconfigData, file: string): URL[] | undefined {
  const context = data.contexts.find((entry) => entry.name === data['current-context']);
  const cluster = data.clusters.find((entry) => entry.name === context?.context.cluster)?.cluster;
  const extension = cluster?.extensions?.find((entry) => entry.name === failoverExtension);
  if (!cluster || !extension) return undefined;
  const parsed = failoverServers.safeParse(extension.extension);
  if (!parsed.success) throw new ConfigError(`config file "${file}": extension ${failoverExtension}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const primary = new URL(cluster.server);
  const urls = [primary, ...parsed.data.servers.map((server) => new URL(server))];
  const other = urls.find((url) => url.protocol !== primary.protocol);
  if (other) throw new ConfigError(`config file "${file}": extension ${failoverExtension}: ${other.href} does not use ${primary.protocol} as the cluster's server does`);
  return urls;
}

/** Points the current cluster at a loopback forwarder to all servers; TLS still verifies the first server's name. */
async function throughFailover(kubeConfig: KubeConfig, servers: URL[], log: Logger | undefined): Promise<void> {
  const defaultPort = servers[0]!.protocol === 'https:' ? 443 : 80;
  const targets = servers.map((url) => ({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || defaultPort) }));
  const failover = await startApiFailover({ targets, log });
  const current = kubeConfig.getCurrentCluster()!;
  const cluster = {
    ...current,
    server: `${servers[0]!.protocol}//127.0.0.1:${failover.port}`,
    ...(servers[0]!.protocol === 'https:' ? { tlsServerName: current.tlsServerName ?? targets[0]!.host } : {}),
  };
  kubeConfig.loadFromOptions({
    clusters: kubeConfig.clusters.map((entry) => (entry.name === current.name ? cluster : entry)),
    contexts: kubeConfig.contexts,
    users: kubeConfig.users,
    currentContext: kubeConfig.currentContext,
  });
  log?.info({ servers: servers.map((url) => url.href), via: cluster.server }, 'API servers reached through the local failover forwarder');
}
