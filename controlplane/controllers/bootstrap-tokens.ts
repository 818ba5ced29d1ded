/**
 * The two bootstrap-token controllers of kube-controller-manager (pkg/controller/bootstrap):
 * - bootstrapsigner: the `cluster-info` ConfigMap in kube-public carries, for every valid token
 *   with `usage-bootstrap-signing: "true"`, `jws-kubeconfig-<token-id>`: a detached JWS of its
 *   `kubeconfig` (lib/bootstrap-token.ts); stale signatures are removed. The control plane
 *   writes cluster-info itself (kubeadm's bootstrap-token phase does) with the server URL other
 *   machines reach and the cluster CA.
 * - tokencleaner: deletes token Secrets once their `expiration` has passed.
 * (https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/)
 */
import { stringify } from 'yaml';
import type { Logger } from '../../lib/log.js';
import { bootstrapTokenSecretType, clusterInfoName, clusterInfoNamespace, jwsKeyPrefix, readTokenSecret, signDetached, tokenExpired } from '../../lib/bootstrap-token.js';
import type { Registry } from '../registry.js';
import { resourceNamed, storagePrefix } from '../resources.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';
import { isRecord } from '../util.js';
import type { WatchCache } from '../watch-cache.js';
import type { Controller } from './controller.js';
import { DelayedKeys } from './delayed.js';
import { KeyQueue } from './queue.js';

const secrets = resourceNamed('secrets');
const configmaps = resourceNamed('configmaps');

/** The kubeconfig kubeadm puts into cluster-info: one cluster, no users. */
function clusterInfoKubeconfig(server: string, caPem: string): string {
  return stringify({
    apiVersion: 'v1',
    clusters: [{ cluster: { 'certificate-authority-data': Buffer.from(caPem).toString('base64'), server }, name: '' }],
    contexts: null,
    'current-context': '',
    kind: 'Config',
    preferences: {},
    users: null,
  });
}

/** Creates or refreshes cluster-info (server and CA); signatures are the signer's business. */
export async function ensureClusterInfo(registry: Registry, server: string, caPem: string): Promise<void> {
  const kubeconfig = clusterInfoKubeconfig(server, caPem);
  try {
    await registry.mutate(configmaps, clusterInfoNamespace, clusterInfoName, (current) => ({ ...current, data: { ...(isRecord(current.data) ? current.data : {}), kubeconfig } }));
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 404)) throw error;
    await registry.create(configmaps, clusterInfoNamespace, { metadata: { name: clusterInfoName }, data: { kubeconfig } });
  }
}

/** The data of cluster-info with exactly the signatures of `tokens` (pure). */
export function signedClusterInfoData(data: Record<string, unknown>, tokens: { id: string; secret: string }[]): Record<string, unknown> {
  const content = typeof data.kubeconfig === 'string' ? data.kubeconfig : '';
  const next: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) if (!key.startsWith(jwsKeyPrefix)) next[key] = value;
  if (content === '') return next;
  for (const token of tokens) next[`${jwsKeyPrefix}${token.id}`] = signDetached(content, token);
  return next;
}

async function tokenSecrets(registry: Registry): Promise<KObject[]> {
  const list = await registry.list(secrets, 'kube-system', { fieldSelector: `type=${bootstrapTokenSecretType}` });
  return list.items;
}

async function signClusterInfo(registry: Registry, now: Date): Promise<void> {
  const tokens = (await tokenSecrets(registry))
    .filter((s) => !s.metadata.deletionTimestamp)
    .map((s) => readTokenSecret(s))
    .filter((t) => t !== undefined && t.usages.includes('signing') && !tokenExpired(t, now)) as { id: string; secret: string }[];
  try {
    await registry.mutate(configmaps, clusterInfoNamespace, clusterInfoName, (current) => {
      const data = isRecord(current.data) ? current.data : {};
      return { ...current, data: signedClusterInfoData(data, tokens) };
    });
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 404)) throw error;
  }
}

async function cleanToken(registry: Registry, name: string, now: Date, later: DelayedKeys): Promise<void> {
  let secret: KObject;
  try {
    secret = await registry.get(secrets, 'kube-system', name);
  } catch (error) {
    if (error instanceof ApiError && error.code === 404) return;
    throw error;
  }
  if (secret.type !== bootstrapTokenSecretType) return;
  const data = isRecord(secret.data) ? secret.data : {};
  const expiration = typeof data.expiration === 'string' ? Buffer.from(data.expiration, 'base64').toString('utf8') : undefined;
  if (expiration === undefined) return;
  if (tokenExpired({ expiration }, now)) {
    try {
      await registry.delete(secrets, 'kube-system', name, { preconditions: { uid: secret.metadata.uid } });
    } catch (error) {
      if (!(error instanceof ApiError && (error.code === 404 || error.code === 409))) throw error;
    }
    return;
  }
  later.add(name, Date.parse(expiration) - now.getTime() + 1000);
}

export function startBootstrapTokenControllers(registry: Registry, cache: WatchCache, log: Logger): Controller {
  const signer = new KeyQueue(() => signClusterInfo(registry, new Date()), log);
  const delayed = new DelayedKeys((key) => {
    cleaner.add(key);
    signer.add('cluster-info');
  });
  const cleaner: KeyQueue = new KeyQueue((name) => cleanToken(registry, name, new Date(), delayed), log);
  const from = cache.lastRevision();
  const offs = [
    cache.add({ filter: { prefix: storagePrefix(secrets, 'kube-system'), matches: () => true }, send: (type, secret) => {
      if (secret.type !== bootstrapTokenSecretType) return;
      signer.add('cluster-info');
      if (type !== 'DELETED') cleaner.add(secret.metadata.name as string);
    } }, from),
    cache.add({ filter: { prefix: storagePrefix(configmaps, clusterInfoNamespace), matches: (cm) => cm.metadata.name === clusterInfoName }, send: (type) => {
      if (type !== 'DELETED') signer.add('cluster-info');
    } }, from),
  ];
  signer.add('cluster-info');
  tokenSecrets(registry).then(
    (items) => items.forEach((s) => cleaner.add(s.metadata.name as string)),
    (error: unknown) => log.warn({ err: error }, 'cannot list bootstrap token Secrets'),
  );
  return {
    async stop() {
      for (const off of offs) off();
      delayed.stop();
      await Promise.all([signer.stop(), cleaner.stop()]);
    },
  };
}
