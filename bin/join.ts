/**
 * `knode join --server https://HOST:6443 --token T --discovery-token-ca-cert-hash sha256:H`:
 * a node joins an existing cluster as kubeadm joins one. Discovery (bin/join-discovery.ts)
 * verifies the cluster CA before the token is sent anywhere; the config directory is written in
 * one rename (bin/join-config.ts); the node's client certificate is bootstrapped with the token
 * through a CSR (the agent's own TLS bootstrap, agent/certificates/bootstrap.ts); then the
 * components run in the foreground with `knode up`'s supervision and progress lines: agent
 * (--bootstrap-kubeconfig, rotating certificates) → overlay → Ready → proxy → dns. With
 * --systemd the units are installed and started by systemd/install.sh instead.
 *
 * Credentials: the agent and dns use the node's own certificate (system:node:<name> in
 * system:nodes), which the control plane's Node authorizer limits to the node's own Node, Lease
 * and pods plus reading Services and EndpointSlices; the proxy (system:kube-proxy) and the
 * overlay (system:knode:overlay:<name>) get narrower certificates of their own, requested by the
 * node (bin/join-credentials.ts). No component of a joined node holds the admin's credential,
 * nor the bootstrap token after the bootstrap.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig } from '../lib/kube-client.js';
import { formatToken, parseCaCertHash, parseToken } from '../lib/bootstrap-token.js';
import { optionalString, requiredString, type CommandOptions, type Runner } from '../lib/command-options.js';
import { ConfigError } from '../lib/errors.js';
import { writeFileAtomic } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
import { busyboxSpec, ensureLocalImage, pauseSpec } from '../cri/local-images.js';
import { installCni } from '../cni/install-command.js';
import { loadClientCert } from '../agent/certificates/bootstrap.js';
import { positiveSeconds } from '../agent/command.js';
import { discoverCluster } from './join-discovery.js';
import { ensureComponentCredential } from './join-credentials.js';
import { joinLayout, writeJoinConfig, type JoinLayout } from './join-config.js';
import { runtimeScopeFor, tenthAddress, type UpSettings } from './up-config.js';
import { Child, ComponentError, waitReady } from './up-supervisor.js';
import { checkDocker, enableForwarding, httpOk, nodeReady, pickInterface, startSupervised, supervise, writtenSince } from './up.js';
import { readPidFile } from './down.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

export interface JoinArguments {
  server: string;
  token: string;
  caHashes: string[];
  caPem?: string;
}

/** Flags checked before anything is fetched or written (one clear error each). */
export function joinArguments(options: CommandOptions): JoinArguments {
  const server = requiredString(options, 'server', '--server');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new ConfigError(`--server "${server}": expected https://HOST:PORT`);
  }
  if (url.protocol !== 'https:' || (url.pathname !== '/' && url.pathname !== '')) throw new ConfigError(`--server "${server}": expected https://HOST:PORT (TLS; no path)`);
  const tokenText = requiredString(options, 'token', '--token');
  if (!parseToken(tokenText)) throw new ConfigError('--token: malformed bootstrap token: expected [a-z0-9]{6}.[a-z0-9]{16} as printed by `knode token create`');
  const hashes = (optionalString(options, 'discoveryTokenCaCertHash') ?? '').split(',').map((h) => h.trim()).filter((h) => h !== '');
  const caHashes = hashes.map((hash) => {
    const parsed = parseCaCertHash(hash);
    if (!parsed) throw new ConfigError(`--discovery-token-ca-cert-hash "${hash}": expected sha256:<64 hex digits>`);
    return parsed;
  });
  const caFile = optionalString(options, 'caCert');
  let caPem: string | undefined;
  if (caFile) {
    try {
      caPem = readFileSync(caFile, 'utf8');
    } catch (error) {
      throw new ConfigError(`--ca-cert "${caFile}": cannot read it`, { cause: error });
    }
    if (!caPem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`--ca-cert "${caFile}": not a PEM certificate`);
  }
  if (caHashes.length === 0 && !caPem) throw new ConfigError('give --discovery-token-ca-cert-hash sha256:<hex> (printed by `knode token create --print-join-command`) or --ca-cert FILE');
  return { server: `${url.protocol}//${url.host}`, token: tokenText, caHashes, ...(caPem ? { caPem } : {}) };
}

function settingsFrom(options: CommandOptions): UpSettings {
  const serviceCidr = optionalString(options, 'serviceCidr') ?? '10.96.0.0/12';
  if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(serviceCidr)) throw new ConfigError(`--service-cidr "${serviceCidr}": expected an IPv4 CIDR`);
  return {
    nodeName: (optionalString(options, 'hostnameOverride') ?? hostname()).toLowerCase(),
    clusterCidr: optionalString(options, 'clusterCidr') ?? '10.244.0.0/16',
    serviceCidr,
    clusterDns: tenthAddress(serviceCidr),
    listen: '',
    proxyMode: optionalString(options, 'proxyMode') === 'nftables' ? 'nftables' : 'iptables',
  };
}

function nodeClient(layout: JoinLayout): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(layout.nodeKubeconfig);
  return kc.makeApiClient(CoreV1Api);
}

interface StartContext {
  layout: JoinLayout;
  settings: UpSettings;
  iface: string;
  address: string;
  endpoint: string;
  env: NodeJS.ProcessEnv;
  aborted: () => boolean;
  children: Child[];
  savePids: () => void;
}

async function startComponents(ctx: StartContext): Promise<void> {
  const { layout, settings, iface, address, aborted } = ctx;
  const spawnChild = (component: string, args: string[], childEnv: NodeJS.ProcessEnv = {}) => {
    const child = new Child(component, args, layout.logs, childEnv);
    child.start();
    ctx.children.push(child);
    ctx.savePids();
    return child;
  };
  const common = ['--kubeconfig', layout.nodeKubeconfig, '--hostname-override', settings.nodeName];
  const overlayArgs = ['--kubeconfig', layout.overlayKubeconfig, '--hostname-override', settings.nodeName];
  const binDirs = [layout.cniBinDir, '/usr/lib/cni', '/opt/cni/bin'].filter((dir) => existsSync(dir)).join(',');
  const overlayStart = Date.now() - 1000;
  const agent = spawnChild('agent', ['agent', ...common, '--bootstrap-kubeconfig', layout.bootstrapKubeconfig, '--cert-dir', layout.certDir, '--config', layout.kubeletConfig, '--root-dir', layout.kubeletRoot, '--container-runtime-endpoint', ctx.endpoint, '--cni-conf-dir', layout.cniConfDir, '--cni-bin-dir', binDirs], ctx.env);
  const overlay = spawnChild('overlay', ['overlay', ...overlayArgs, '--net-conf', layout.netConf, '--iface', iface, '--subnet-file', layout.subnetFile, '--ip-masq']);
  await waitReady(overlay, 'leased a subnet', async () => writtenSince(layout.subnetFile, overlayStart), 120_000, aborted);
  say(`✓ overlay ready (VXLAN over ${iface}, ${layout.subnetFile})`);
  const core = nodeClient(layout);
  await waitReady(agent, 'Ready', async () => nodeReady(await core.readNode({ name: settings.nodeName })), 120_000, aborted);
  say(`✓ agent ready (node ${settings.nodeName} Ready)`);
  const proxy = spawnChild('proxy', ['proxy', '--config', layout.proxyConfig]);
  await waitReady(proxy, 'healthy', () => httpOk('http://127.0.0.1:10256/healthz'), 60_000, aborted);
  say(`✓ proxy ready (${settings.proxyMode ?? 'iptables'}, /healthz on 127.0.0.1:10256)`);
  const dns = spawnChild('dns', ['dns', ...common, '--kubelet-config', layout.kubeletConfig, '--bind-address', address]);
  await waitReady(dns, 'ready', () => httpOk('http://127.0.0.1:9153/ready'), 60_000, aborted);
  say(`✓ dns ready (${settings.clusterDns} → ${address}:53)`);
}

/**
 * systemd/install.sh (systemd/ owns the units): the node's kubeconfig and name. The config files
 * join wrote under /etc/knode carry the units' names and install.sh keeps existing files, so the
 * units run with the join's kubelet settings and the proxy's and overlay's own credentials; the
 * agent gets --bootstrap-kubeconfig through /etc/default/knode-agent (rotation, re-bootstrap).
 */
async function installUnits(layout: JoinLayout, settings: UpSettings): Promise<void> {
  const defaults = '/etc/default/knode-agent';
  if (!existsSync(defaults)) writeFileAtomic(defaults, `KNODE_AGENT_ARGS=--bootstrap-kubeconfig=${layout.bootstrapKubeconfig} --cert-dir=${layout.certDir}\n`);
  const script = fileURLToPath(new URL('../../systemd/install.sh', import.meta.url));
  const child = spawn(script, ['--kubeconfig', layout.nodeKubeconfig, '--node-name', settings.nodeName], { stdio: 'inherit' });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve).once('error', () => resolve(-1)));
  if (code !== 0) throw new ComponentError('systemd', `${script} failed (exit ${code})`);
}

export const run: Runner = async (options, log) => {
  const args = joinArguments(options);
  const settings = settingsFrom(options);
  const layout = joinLayout(optionalString(options, 'dataDir'));
  if (options.systemd === true && layout.configDir !== '/etc/knode') throw new ConfigError('--systemd installs into /etc/knode and /var/lib/knode: it cannot be combined with --data-dir');
  const endpoint = optionalString(options, 'containerRuntimeEndpoint') ?? 'unix:///var/run/docker.sock';
  const previous = readPidFile(layout.pidFile);
  if (previous && previous.alive) throw new ComponentError('join', `already running in ${layout.dataDir} (pid ${previous.pid})`);
  const token = parseToken(args.token)!;
  say(`knode join: discovering the cluster at ${args.server} (token id ${token.id})`);
  // Nothing is written and the token is not sent before the CA is verified.
  const { caPem } = await discoverCluster({ server: args.server, token, caHashes: args.caHashes, ...(args.caPem ? { caPem: args.caPem } : {}), log });
  say(`✓ cluster CA verified (${args.caPem ? '--ca-cert' : 'pinned public key'}, cluster-info signed with token ${token.id})`);
  const docker = await checkDocker(endpoint);
  const { iface, address } = await pickInterface(optionalString(options, 'iface'));
  mkdirSync(layout.dataDir, { recursive: true, mode: 0o700 });
  writeJoinConfig(layout, settings, { server: args.server, token: formatToken(token), caPem });
  say(`✓ configuration written to ${layout.configDir}`);
  // KNODE_CSR_EXPIRATION_SECONDS (agent/command.ts) shortens the first certificate as the agent's later ones.
  const expiration = process.env.KNODE_CSR_EXPIRATION_SECONDS;
  const result = await loadClientCert({ kubeconfig: layout.nodeKubeconfig, bootstrapKubeconfig: layout.bootstrapKubeconfig, certDir: layout.certDir, nodeName: settings.nodeName, log: log.child({ part: 'bootstrap' }), timeoutMs: 300_000, ...(expiration ? { expirationSeconds: positiveSeconds('KNODE_CSR_EXPIRATION_SECONDS', expiration) } : {}) });
  say(`✓ node credential ${result === 'valid' ? 'still valid' : 'issued'} (system:node:${settings.nodeName}, ${join(layout.certDir, 'kubelet-client-current.pem')})`);
  const nodeKubeConfig = new KubeConfig();
  nodeKubeConfig.loadFromFile(layout.nodeKubeconfig);
  for (const credential of [
    { prefix: 'kube-proxy-client' as const, commonName: 'system:kube-proxy', kubeconfig: layout.proxyKubeconfig },
    { prefix: 'overlay-client' as const, commonName: `system:knode:overlay:${settings.nodeName}`, kubeconfig: layout.overlayKubeconfig },
  ]) {
    const got = await ensureComponentCredential({ credential, certDir: layout.certDir, server: args.server, caPem, nodeKubeConfig, log });
    say(`✓ ${credential.commonName} credential ${got === 'valid' ? 'still valid' : 'issued'} (${credential.kubeconfig})`);
  }
  if (options.systemd === true) {
    await installUnits(layout, settings);
    say('✓ systemd units installed and started');
    return undefined;
  }
  enableForwarding(log);
  installCni({ binDir: layout.cniBinDir, socket: layout.cniSocket });
  await ensureLocalImage(docker, pauseSpec);
  await ensureLocalImage(docker, busyboxSpec);
  mkdirSync(layout.manifests, { recursive: true });
  return runNode({ layout, settings, iface, address, endpoint, log });
};

async function runNode(params: { layout: JoinLayout; settings: UpSettings; iface: string; address: string; endpoint: string; log: Logger }) {
  const { layout } = params;
  const scope = process.env.KNODE_RUNTIME_SCOPE ?? runtimeScopeFor(layout.dataDir);
  const env = { KNODE_CNI_CACHE_DIR: layout.cniCacheDir, KNODE_POD_LOGS_DIR: layout.podLogs, KNODE_RUNTIME_SCOPE: scope, KNODE_NODE_IP: params.address };
  const supervised = await startSupervised(layout, `node ${params.settings.nodeName}: data dir ${layout.dataDir}, overlay interface ${params.iface} (${params.address})`, (aborted, children, savePids) =>
    startComponents({ ...params, env, aborted, children, savePids }),
  );
  if (!supervised) return undefined;
  say('');
  say(`knode joined: node ${params.settings.nodeName} is Ready. Logs: ${layout.logs}; containers labelled ${scope}`);
  say('Ctrl-C stops the components (pods keep running); `knode join` again resumes with the same identity.');
  return supervise(supervised.children, layout);
}
