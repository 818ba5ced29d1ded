/**
 * `knode token create|list|delete --kubeconfig ADMIN`: bootstrap tokens as `kubeadm token`
 * manages them (https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-token/): a
 * Secret `bootstrap-token-<id>` of type bootstrap.kubernetes.io/token in kube-system, usages
 * authentication and signing, extra group system:bootstrappers:kubeadm:default-node-token,
 * TTL 24h by default (0: never expires). `create --print-join-command` prints the
 * `knode join` line: the server and the CA hash come from the cluster-info ConfigMap, which
 * names the address other machines reach.
 */
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import {
  bootstrapTokenSecretType,
  caCertHash,
  clusterInfoName,
  clusterInfoNamespace,
  defaultNodeTokenGroup,
  formatToken,
  generateToken,
  parseToken,
  readTokenSecret,
  tokenSecretName,
  tokenSecretObject,
  type TokenSecretFields,
} from '../lib/bootstrap-token.js';
import { optionalString, requireKubeconfig, type CommandOptions, type Runner } from '../lib/command-options.js';
import { parseDuration, formatDuration } from '../lib/duration.js';
import { ConfigError } from '../lib/errors.js';
import { loadKubeconfig } from '../lib/config/kubeconfig.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

function ttlMs(options: CommandOptions): number {
  const text = optionalString(options, 'ttl') ?? '24h';
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    // the parser's own message is replaced by one naming the flag and the accepted forms
    throw new ConfigError(`--ttl "${text}": expected a duration such as 24h, 30m or 0 (never expires)`);
  }
  if (ms < 0 || ms > 10 * 365 * 86_400_000) throw new ConfigError(`--ttl "${text}": must be between 0 and 10 years`);
  return ms;
}

/** The server and CA other machines use, from cluster-info (kubeadm reads its own kubeconfig's). */
export async function joinTarget(core: CoreV1Api): Promise<{ server: string; caHash: string }> {
  const cm = await core.readNamespacedConfigMap({ name: clusterInfoName, namespace: clusterInfoNamespace });
  const config = parseYaml(cm.data?.kubeconfig ?? '') as { clusters?: { cluster?: { server?: string; 'certificate-authority-data'?: string } }[] } | null;
  const cluster = config?.clusters?.[0]?.cluster;
  if (!cluster?.server || !cluster['certificate-authority-data']) throw new Error('the cluster-info ConfigMap in kube-public has no server or CA (is the control plane serving TLS?)');
  if (!cluster.server.startsWith('https://')) throw new Error(`the control plane is reachable only at ${cluster.server}: start it with a TLS address other machines reach (knode up listens on the node address)`);
  return { server: cluster.server, caHash: caCertHash(Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8')) };
}

async function create(core: CoreV1Api, options: CommandOptions, given: string | undefined): Promise<void> {
  const ttl = ttlMs(options);
  const token = given !== undefined ? parseToken(given) : generateToken();
  if (!token) throw new ConfigError(`token "${given}": expected the format [a-z0-9]{6}.[a-z0-9]{16}`);
  const fields: TokenSecretFields = {
    ...token,
    description: optionalString(options, 'description'),
    expiration: ttl === 0 ? undefined : new Date(Date.now() + ttl).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    usages: ['authentication', 'signing'],
    extraGroups: [defaultNodeTokenGroup],
  };
  // Checked first so that a token of a cluster without TLS is not left behind.
  const target = options.printJoinCommand === true ? await joinTarget(core) : undefined;
  await core.createNamespacedSecret({ namespace: 'kube-system', body: tokenSecretObject(fields) as V1Secret });
  if (target) say(`knode join --server ${target.server} --token ${formatToken(token)} --discovery-token-ca-cert-hash ${target.caHash}`);
  else say(formatToken(token));
}

function row(fields: TokenSecretFields, now: number): string[] {
  const expires = fields.expiration ? Date.parse(fields.expiration) : undefined;
  const ttl = expires === undefined ? '<forever>' : expires <= now ? '<invalid>' : formatDuration(Math.round((expires - now) / 1000) * 1000).replace(/(\d+h)?(\d+m)?\d+s$/, (all, h: string | undefined, m: string | undefined) => h ?? m ?? all);
  return [formatToken(fields), ttl, fields.expiration ?? '<never>', fields.usages.join(','), fields.description || '<none>', fields.extraGroups.join(',') || '<none>'];
}

async function list(core: CoreV1Api): Promise<void> {
  const secrets = await core.listNamespacedSecret({ namespace: 'kube-system', fieldSelector: `type=${bootstrapTokenSecretType}` });
  const now = Date.now();
  const rows = [['TOKEN', 'TTL', 'EXPIRES', 'USAGES', 'DESCRIPTION', 'EXTRA GROUPS']];
  for (const secret of secrets.items) {
    const fields = readTokenSecret(secret as never);
    if (fields) rows.push(row(fields, now));
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) say(r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 3))).join(''));
}

async function remove(core: CoreV1Api, ids: string[]): Promise<void> {
  if (ids.length === 0) throw new ConfigError('token delete: name the token(s) or token id(s) to delete');
  for (const text of ids) {
    const id = parseToken(text)?.id ?? (/^[a-z0-9]{6}$/.test(text) ? text : undefined);
    if (!id) throw new ConfigError(`token "${text}": expected a token id ([a-z0-9]{6}) or a token`);
    try {
      await core.deleteNamespacedSecret({ name: tokenSecretName(id), namespace: 'kube-system' });
    } catch (error) {
      if ((error as { code?: number }).code === 404) throw new Error(`bootstrap token "${id}" not found`, { cause: error });
      throw error;
    }
    say(`bootstrap token "${id}" deleted`);
  }
}

export const run: Runner = async (options) => {
  const args = Array.isArray(options.args) ? options.args : [];
  const [action, ...rest] = args;
  if (action !== 'create' && action !== 'list' && action !== 'delete') throw new ConfigError(`token: expected create, list or delete, not "${action ?? ''}"`);
  if (action === 'create' && rest.length > 1) throw new ConfigError('token create: at most one token');
  const kubeconfig = requireKubeconfig(options);
  const { CoreV1Api } = await import('../lib/kube-client.js');
  const core = (await loadKubeconfig(kubeconfig)).makeApiClient(CoreV1Api);
  if (action === 'create') await create(core, options, rest[0]);
  else if (action === 'list') await list(core);
  else await remove(core, rest);
};



