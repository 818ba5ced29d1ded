/**
 * `knode up`: a whole single-node cluster in the foreground, made of the very same components an
 * operator runs one by one (controlplane, overlay, agent, proxy, dns), each a supervised child process
 * of this `knode` executable with its own config under DATA_DIR (bin/up-config.ts) and its log in
 * DATA_DIR/logs/<component>.log. Start order: control plane (/readyz) → overlay + agent (the
 * overlay's lease is the Node's spec.podCIDR, so it needs the agent's Node registration, as
 * flannel's DaemonSet needs the kubelet) → proxy (/healthz) → dns (/ready). SIGTERM/SIGINT stops them in reverse
 * order. The agent leaves its pods running on stop (as the kubelet does), so `knode up` again
 * resumes the same cluster: the control plane's file storage is in DATA_DIR and the agent adopts
 * its containers. `knode down --purge` removes everything (bin/down.ts).
 */
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { V1Node } from '@kubernetes/client-node';
import { CoreV1Api, KubeConfig } from '../lib/kube-client.js';
import { optionalString, type Runner, type Stoppable } from '../lib/command-options.js';
import { ConfigError } from '../lib/errors.js';
import { writeFileAtomic } from '../lib/fs.js';
import { IpRunner } from '../lib/ip/runner.js';
import type { Logger } from '../lib/log.js';
import { busyboxSpec, ensureLocalImage, pauseSpec } from '../cri/local-images.js';
import { installCni } from '../cni/install-command.js';
import { ensureKubeletPki } from '../lib/kubelet-pki.js';
import { chooseInterface, examplePodText, runtimeScopeFor, tenthAddress, upLayout, writeUpConfigs, type UpLayout, type UpSettings } from './up-config.js';
import { Child, ComponentError, waitReady } from './up-supervisor.js';
import { readPidFile } from './down.js';
import { isLoopback } from '../controlplane/security.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

function socketOf(endpoint: string): string {
  return endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : endpoint;
}

export async function checkDocker(endpoint: string): Promise<Docker> {
  const socketPath = socketOf(endpoint);
  const docker = new Docker({ socketPath, timeout: 10_000 });
  try {
    await docker.ping();
  } catch (error) {
    throw new ComponentError('agent', `Docker Engine not reachable at ${socketPath}: start dockerd or pass --container-runtime-endpoint`, { cause: error });
  }
  return docker;
}

export async function pickInterface(wanted: string | undefined): Promise<{ iface: string; address: string }> {
  const ip = new IpRunner();
  const routes = wanted ? '' : (await ip.ip(['-4', '-o', 'route', 'show', 'default'])).stdout;
  const shown = await ip.ip(['-4', '-o', 'addr', 'show', 'up']);
  if (shown.code !== 0) throw new ComponentError('overlay', `cannot list interfaces: ${shown.stderr.trim()}`);
  const addresses = shown.stdout;
  const filtered = wanted ? addresses.split('\n').filter((line) => line.split(/\s+/)[1] === wanted).join('\n') : addresses;
  const chosen = chooseInterface(routes, filtered);
  if (!chosen) {
    throw new ComponentError('overlay', wanted ? `interface "${wanted}" is not up or has no IPv4 address` : 'no interface for the overlay: no default route and no UP interface with an IPv4 address (pass --iface)');
  }
  return chosen;
}

/** Node prerequisite that kubeadm checks too: pods reach other nodes and the outside by forwarding. */
export function enableForwarding(log: Logger): void {
  try {
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  } catch (error) {
    log.warn({ err: error }, 'could not set net.ipv4.ip_forward=1');
  }
}

/**
 * Installs the CNI plugin, ensures the local images and creates the static pod directory. Returns
 * the example pod's manifest when the directory is new: it is written once the overlay has its
 * lease, so that its first CNI ADD does not fail (and back off) for want of subnet.env.
 */
async function prepareNode(layout: UpLayout, docker: Docker): Promise<string | undefined> {
  installCni({ binDir: layout.cniBinDir, socket: layout.cniSocket });
  await ensureLocalImage(docker, pauseSpec);
  const busybox = await ensureLocalImage(docker, busyboxSpec);
  const fresh = !existsSync(layout.manifests);
  mkdirSync(layout.manifests, { recursive: true });
  // A fresh readiness signal for this run (rewritten by the control plane when it serves).
  rmSync(layout.kubeconfig, { force: true });
  return fresh ? examplePodText(busybox) : undefined;
}

/** subnet.env written by this run's overlay (a previous run's file stays valid for the plugin meanwhile). */
export function writtenSince(file: string, sinceMs: number): boolean {
  try {
    return statSync(file).mtimeMs >= sinceMs;
  } catch {
    return false;
  }
}

function kubeClient(layout: UpLayout): { kc: KubeConfig; core: CoreV1Api } {
  const kc = new KubeConfig();
  kc.loadFromFile(layout.kubeconfig);
  return { kc, core: kc.makeApiClient(CoreV1Api) };
}

export const nodeReady = (node: V1Node) => node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

export async function httpOk(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  await response.text();
  return response.ok;
}

function describeNode(node: V1Node, pods: number): string {
  const ip = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? '?';
  return `node ${node.metadata?.name}: ${nodeReady(node) ? 'Ready' : 'NotReady'}, InternalIP ${ip}, podCIDR ${node.spec?.podCIDR ?? '?'}, ${pods} pod(s)`;
}

interface Started {
  children: Child[];
  core: CoreV1Api;
}

async function startAll(layout: UpLayout, settings: UpSettings, env: NodeJS.ProcessEnv, extra: { iface: string; address: string; endpoint: string; examplePod?: string }, aborted: () => boolean, children: Child[], savePids: () => void): Promise<Started> {
  const spawnChild = (component: string, args: string[], childEnv: NodeJS.ProcessEnv = {}) => {
    const child = new Child(component, args, layout.logs, childEnv);
    child.start();
    children.push(child);
    savePids();
    return child;
  };
  // Other machines join through the node address: TLS with authentication there, plain HTTP stays on loopback.
  const listenHost = settings.listen.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const secure = isLoopback(listenHost) ? ['--secure-listen', `${extra.address}:${settings.listen.replace(/^.*:/, '')}`] : [];
  const cp = spawnChild('controlplane', ['controlplane', '--data-dir', layout.controlplaneDir, '--listen', settings.listen, ...secure, '--store', 'file', '--cluster-cidr', settings.clusterCidr, '--service-cidr', settings.serviceCidr, '--kubelet-client-certificate', join(layout.kubeletPki, 'client.crt'), '--kubelet-client-key', join(layout.kubeletPki, 'client.key')]);
  let core: CoreV1Api | undefined;
  await waitReady(cp, 'ready', async () => {
    if (!existsSync(layout.kubeconfig)) return false;
    const client = kubeClient(layout);
    const server = client.kc.getCurrentCluster()?.server ?? '';
    // /readyz over plain HTTP (loopback); with TLS the token-authenticated API itself.
    const ok = server.startsWith('http://') ? await httpOk(`${server}/readyz`) : (await client.core.listNode({ limit: 1 }), true);
    if (ok) core = client.core;
    return ok;
  }, 60_000, aborted);
  say(`✓ control plane ready (${kubeClient(layout).kc.getCurrentCluster()?.server}${secure.length > 0 ? `, joins at https://${secure[1]}` : ''}, storage ${layout.controlplaneDir})`);
  const common = ['--kubeconfig', layout.kubeconfig, '--hostname-override', settings.nodeName];
  const overlayStart = Date.now() - 1000;
  const overlay = spawnChild('overlay', ['overlay', ...common, '--net-conf', layout.netConf, '--iface', extra.iface, '--subnet-file', layout.subnetFile, '--ip-masq']);
  const binDirs = [layout.cniBinDir, '/usr/lib/cni', '/opt/cni/bin'].filter((dir) => existsSync(dir)).join(',');
  const agent = spawnChild('agent', ['agent', ...common, '--config', layout.kubeletConfig, '--root-dir', layout.kubeletRoot, '--container-runtime-endpoint', extra.endpoint, '--cni-conf-dir', layout.cniConfDir, '--cni-bin-dir', binDirs], env);
  await waitReady(overlay, 'leased a subnet', async () => writtenSince(layout.subnetFile, overlayStart), 120_000, aborted);
  say(`✓ overlay ready (VXLAN over ${extra.iface}, ${layout.subnetFile})`);
  if (extra.examplePod) {
    writeFileAtomic(join(layout.manifests, 'hello.yaml'), extra.examplePod);
    say(`  example static pod written to ${join(layout.manifests, 'hello.yaml')}`);
  }
  await waitReady(agent, 'Ready', async () => nodeReady(await core!.readNode({ name: settings.nodeName })), 120_000, aborted);
  say(`✓ agent ready (node ${settings.nodeName} Ready)`);
  const proxy = spawnChild('proxy', ['proxy', '--config', layout.proxyConfig]);
  await waitReady(proxy, 'healthy', () => httpOk('http://127.0.0.1:10256/healthz'), 60_000, aborted);
  say(`✓ proxy ready (${settings.proxyMode ?? 'iptables'}, /healthz on 127.0.0.1:10256)`);
  // Cluster DNS on the node's address; it publishes itself as this node's kube-dns endpoint (dns/publish.ts).
  const dns = spawnChild('dns', ['dns', ...common, '--kubelet-config', layout.kubeletConfig, '--bind-address', extra.address]);
  await waitReady(dns, 'ready', () => httpOk('http://127.0.0.1:9153/ready'), 60_000, aborted);
  say(`✓ dns ready (${settings.clusterDns} → ${extra.address}:53, zone cluster.local)`);
  return { children, core: core! };
}

function printSummary(layout: UpLayout, node: V1Node, pods: number, scope: string): void {
  say('');
  say(`knode is up. Kubeconfig: ${layout.kubeconfig}`);
  say(`  export KUBECONFIG=${layout.kubeconfig}; kubectl get pods -A`);
  say(`  ${describeNode(node, pods)}`);
  say(`  static pods: ${layout.manifests}   logs: ${layout.logs}   containers labelled ${scope}`);
  say('Ctrl-C stops the components (pods keep running); `knode up` again resumes; `knode down --purge` removes everything.');
}

/** Stops children in reverse start order; the pid file goes last. */
export async function stopAll(children: Child[], layout: UpLayout): Promise<void> {
  for (const child of [...children].reverse()) await child.stop();
  rmSync(layout.pidFile, { force: true });
}

function settingsFrom(options: Parameters<Runner>[0]): UpSettings {
  const serviceCidr = optionalString(options, 'serviceCidr') ?? '10.96.0.0/12';
  if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(serviceCidr)) throw new ConfigError(`--service-cidr "${serviceCidr}": expected an IPv4 CIDR`);
  return {
    nodeName: (optionalString(options, 'hostnameOverride') ?? hostname()).toLowerCase(),
    clusterCidr: optionalString(options, 'clusterCidr') ?? '10.244.0.0/16',
    serviceCidr,
    clusterDns: tenthAddress(serviceCidr),
    listen: optionalString(options, 'listen') ?? '127.0.0.1:6443',
    proxyMode: optionalString(options, 'proxyMode') === 'nftables' ? 'nftables' : 'iptables',
  };
}

export const run: Runner = async (options, log) => {
  const layout = upLayout(optionalString(options, 'dataDir') ?? '/var/lib/knode');
  const settings = settingsFrom(options);
  const endpoint = optionalString(options, 'containerRuntimeEndpoint') ?? 'unix:///var/run/docker.sock';
  mkdirSync(layout.dataDir, { recursive: true, mode: 0o700 });
  const previous = readPidFile(layout.pidFile);
  if (previous && previous.alive) throw new ComponentError('up', `already running in ${layout.dataDir} (pid ${previous.pid}); stop it with \`knode down --data-dir ${layout.dataDir}\``);
  const docker = await checkDocker(endpoint);
  const { iface, address } = await pickInterface(optionalString(options, 'iface'));
  enableForwarding(log);
  writeUpConfigs(layout, settings);
  // One cluster CA (the control plane's): it signs the API's serving certificate, the kubelet's and the CSRs of joining nodes.
  await ensureKubeletPki(layout.kubeletPki, { servingNames: ['IP:127.0.0.1', `IP:${address}`, `DNS:${settings.nodeName}`], caDir: join(layout.controlplaneDir, 'pki') });
  const examplePod = await prepareNode(layout, docker);
  const scope = process.env.KNODE_RUNTIME_SCOPE ?? runtimeScopeFor(layout.dataDir);
  const agentEnv = { KNODE_CNI_CACHE_DIR: layout.cniCacheDir, KNODE_POD_LOGS_DIR: layout.podLogs, KNODE_RUNTIME_SCOPE: scope, KNODE_NODE_IP: address };
  const supervised = await startSupervised(layout, `knode up: data dir ${layout.dataDir}, node ${settings.nodeName}, overlay interface ${iface} (${address})`, (aborted, children, savePids) =>
    startAll(layout, settings, agentEnv, { iface, address, endpoint, examplePod }, aborted, children, savePids),
  );
  if (!supervised) return undefined;
  const { started, children } = supervised;
  const node = await started.core.readNode({ name: settings.nodeName });
  const pods = (await started.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${settings.nodeName}` })).items.length;
  printSummary(layout, node, pods, scope);
  return supervise(children, layout);
};

/**
 * Starts a node's components with the pid file kept current and Ctrl-C/SIGTERM while starting
 * as a clean stop (every component stopped, undefined returned); a failure stops what started
 * and is thrown. Shared by `knode up` and `knode join`.
 */
export async function startSupervised<T>(
  layout: UpLayout,
  banner: string,
  start: (aborted: () => boolean, children: Child[], savePids: () => void) => Promise<T>,
): Promise<{ started: T; children: Child[] } | undefined> {
  const children: Child[] = [];
  const savePids = () => writeFileAtomic(layout.pidFile, JSON.stringify({ pid: process.pid, children: children.map((c) => ({ component: c.component, pid: c.pid })) }) + '\n');
  savePids();
  let interrupted = false;
  const onSignal = () => (interrupted = true);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(banner);
    return { started: await start(() => interrupted, children, savePids), children };
  } catch (error) {
    await stopAll(children, layout);
    if (interrupted) {
      say('interrupted: every component stopped');
      return undefined;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** done rejects when a child ends on its own (after stopping the others), stop() ends them all. */
export function supervise(children: Child[], layout: UpLayout): Stoppable {
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= stopAll(children, layout));
  const done = new Promise<void>((_resolve, reject) => {
    for (const child of children) {
      void child.exited.then(async () => {
        if (child.expectedExit || stopping) return;
        const failure = await child.failure();
        await stop();
        reject(failure);
      });
    }
  });
  return { stop, done };
}
