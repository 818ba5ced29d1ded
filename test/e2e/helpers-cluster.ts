/**
 * A multi-node knode cluster on one machine for e2e tests, composed as `knode up` composes one
 * node (bin/up.ts, bin/up-config.ts) but with the control plane shared:
 *
 *   root netns:  control-plane stub on 127.0.0.1 (with its controllers: scheduler, node IPAM,
 *                EndpointSlices, ClusterIP/NodePort allocation), the Docker Engine
 *   knt-<id>-ul: the underlay, a bridge br0 joining every node's `ul0` (192.168.X.0/24)
 *   knt-<id>-uc: an underlay-side client (192.168.X.100) for NodePort checks
 *   knt-<id>-a, knt-<id>-b, …: one netns per node running `knode overlay`, `knode agent` and
 *                `knode proxy` as real processes (the built CLI, entered with `nsenter --net`:
 *                `ip netns exec` remounts /sys without the cgroup tree the agent uses), each
 *                with its own data dir in up's layout (configs, CNI conflist with knode's plugin
 *                and its launcher, subnet.env, CNI socket, static pod dir), and the control plane
 *                reached through a loopback bridge (../helpers/loopback-bridge.ts).
 *
 * Pods run in the one shared Docker Engine; their sandboxes are wired by the node's CNI plugin
 * into the node's netns, and every container carries the node's KNODE_RUNTIME_SCOPE label, which
 * is how stop() finds them. No netns has a default route (checked at start and at stop), no
 * interface is in the root netns, and pod/service/node addresses only exist inside the netns
 * (network safety rule, docs/architecture.md, "Testing").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { parse, stringify } from 'yaml';
import { CoreV1Api, KubeConfig, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { kubeletConfigText, tenthAddress, upLayout, writeUpConfigs, type UpLayout, type UpSettings } from '../../bin/up-config.js';
import { installCni } from '../../cni/install-command.js';
import { writeKubeconfig } from '../../controlplane/kubeconfig.js';
import { busyboxImage, busyboxSpec, ensureLocalImage, pauseSpec } from '../../cri/local-images.js';
import { run } from '../../lib/exec.js';
import { ensureKubeletPki } from '../../lib/kubelet-pki.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { removeAgentPods } from '../helpers/docker.js';
import { bridgeLoopbackInto, type LoopbackBridge } from '../helpers/loopback-bridge.js';
import { TestNetwork, testNetnsPrefix, type Netns } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

const knodeBin = fileURLToPath(new URL('../../bin/knode', import.meta.url));
const pluginEntry = fileURLToPath(new URL('../../dist/cni/plugin-main.js', import.meta.url));
export const clusterCidr = '10.244.0.0/16';
export const serviceCidr = '10.96.0.0/12';
const maxLog = 200_000;

export type Component = 'overlay' | 'agent' | 'proxy' | 'dns';

/** Why a cluster cannot be made here (undefined when it can). */
export function clusterUnavailable(): string | undefined {
  if (!existsSync(pluginEntry)) return 'dist/ missing: run `npm run build`';
  if (!existsSync('/usr/lib/cni/portmap')) return 'reference CNI plugins (portmap) missing in /usr/lib/cni';
  return undefined;
}

export interface ClusterNode {
  readonly role: string;
  readonly name: string;
  readonly netns: Netns;
  /** The node's address on the underlay (its InternalIP and VTEP address). */
  readonly underlayIp: string;
  readonly layout: UpLayout;
  /** "key=value" label on every container of this node's agent. */
  readonly scopeLabel: string;
  /** Starts a component process (again); resolves once it runs (not when it is ready). */
  start(component: Component): void;
  /** Signals a component and waits for it to exit (SIGKILL after 15 s). */
  stop(component: Component, signal?: NodeJS.Signals): Promise<void>;
  /** A component's output so far (the last ~200 KB). */
  logs(component: Component): string;
  /** App containers (not sandboxes) of a pod on this node, by the agent's labels. */
  containers(podName: string, options?: { all?: boolean }): Promise<Docker.ContainerInfo[]>;
}

export interface TestCluster {
  readonly controlPlane: TestControlPlane;
  /** Root-netns kubeconfig for kubectl (127.0.0.1 only). */
  readonly kubeconfig: string;
  readonly nodes: ClusterNode[];
  readonly underlay: Netns;
  /** A netns on the underlay (not a node) for NodePort traffic. */
  readonly underlayClient: Netns;
  readonly core: CoreV1Api;
  kubectl(...args: string[]): Promise<string>;
  /** Each component's exit status and last log lines, for failure messages. */
  diagnostics(): string;
  /** Components that exited without being stopped, e.g. ["agent on knt-…-a exited (code 1, signal null)"]. */
  unexpectedExits(): string[];
  /**
   * Adds a node later (a node that joins a running cluster): its netns on the underlay, its
   * files, and overlay + agent + proxy started as for the first nodes; resolves once it is Ready.
   */
  addNode(role: string): Promise<ClusterNode>;
  /**
   * Stops the control plane (API server and controllers) and starts it again on the same port and
   * data dir, as a restarted kube-apiserver + kube-controller-manager on their etcd; only with
   * `persistentControlPlane`. Resolves once it serves again; nodes keep running meanwhile.
   */
  restartControlPlane(options?: { downMs?: number }): Promise<void>;
  /** Stops every process and removes containers, netns, bridges and dirs. Idempotent. Throws if a netns gained a default route. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  docker: Docker;
  /** Node roles (short, letters/digits), default ["a", "b"]. */
  roles?: string[];
  /** KNODE_LOG_LEVEL of the components, default "info". */
  logLevel?: string;
  /**
   * Also run `knode dns` on every node (after the proxy, as `knode up` does), its upstream a
   * dnsmasq in the underlay-client netns started with these extra arguments (e.g.
   * `--address=/outside.test/192.0.2.10`); never a real resolver.
   */
  dns?: { dnsmasqArgs: string[] };
  /** Keep the control plane's state in a file store (fsync'ed per write) so that it can restart. */
  persistentControlPlane?: boolean;
}

interface Proc {
  child?: ChildProcess;
  output: string;
  exit?: string;
  /** Set by stop(): the exit that follows is expected. */
  stopping?: boolean;
}

/** The kubelet config `knode up` writes, with faster status/static-pod cycles and no eviction on a busy shared machine. */
function kubeletConfigFor(layout: UpLayout, settings: UpSettings): string {
  return stringify({
    ...(parse(kubeletConfigText(layout, settings)) as Record<string, unknown>),
    fileCheckFrequency: '2s',
    syncFrequency: '20s',
    nodeStatusUpdateFrequency: '2s',
    evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
  });
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

const nodeReady = (node: V1Node) => node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

interface NodeParts {
  node: ClusterNode;
  procs: Map<Component, Proc>;
}

interface NodeContext {
  net: TestNetwork;
  underlay: Netns;
  cp: TestControlPlane;
  docker: Docker;
  /** First three octets of the underlay /24. */
  prefix: string;
  logLevel: string;
  dirs: string[];
  bridges: LoopbackBridge[];
  /** True once the cluster is stopping: no component may start after that. */
  stopping: () => boolean;
  /** The upstream resolver's address for `knode dns` (a dnsmasq on the underlay), when DNS runs. */
  dnsUpstream?: string;
}

/**
 * Writes the node's files as `knode up` does (bin/up-config.ts: kubelet, kube-proxy and flannel
 * configs, the kubelet certificates, the knode conflist, the plugin launcher with the overlay's
 * socket) plus a kubeconfig
 * for the loopback bridge at the path those configs name.
 */
async function writeNodeFiles(layout: UpLayout, settings: UpSettings, bridgePort: number): Promise<void> {
  writeUpConfigs(layout, settings);
  await ensureKubeletPki(layout.kubeletPki, { servingNames: ['IP:127.0.0.1'], days: 2 });
  writeFileSync(layout.kubeletConfig, kubeletConfigFor(layout, settings));
  mkdirSync(layout.manifests, { recursive: true });
  installCni({ binDir: layout.cniBinDir, socket: layout.cniSocket, entry: pluginEntry });
  mkdirSync(dirname(layout.kubeconfig), { recursive: true });
  writeKubeconfig(layout.kubeconfig, { server: `http://127.0.0.1:${bridgePort}` });
}

/** The command lines `knode up` gives its children (bin/up.ts startAll), for one node. */
function componentArgs(layout: UpLayout, name: string, nodeIp: string): Record<Component, string[]> {
  const common = ['--kubeconfig', layout.kubeconfig, '--hostname-override', name];
  return {
    overlay: ['overlay', ...common, '--net-conf', layout.netConf, '--iface', 'ul0', '--subnet-file', layout.subnetFile, '--ip-masq'],
    agent: ['agent', ...common, '--config', layout.kubeletConfig, '--root-dir', layout.kubeletRoot, '--cni-conf-dir', layout.cniConfDir, '--cni-bin-dir', `${layout.cniBinDir},/usr/lib/cni`],
    proxy: ['proxy', ...common, '--config', layout.proxyConfig],
    dns: ['dns', ...common, '--kubelet-config', layout.kubeletConfig, '--bind-address', nodeIp, '--resolv-conf', join(layout.dataDir, 'resolv.conf')],
  };
}

/** Starts/stops the node's component processes inside its netns and keeps their output. */
function componentControl(netns: Netns, name: string, args: Record<Component, string[]>, env: NodeJS.ProcessEnv, procs: Map<Component, Proc>, stopping: () => boolean) {
  const start = (component: Component) => {
    if (stopping()) throw new Error(`not starting ${component} on ${name}: the cluster is stopping`);
    if (!netns.name.startsWith(testNetnsPrefix)) throw new Error(`refusing to run ${component} outside a test netns: ${netns.name}`);
    const proc: Proc = procs.get(component) ?? { output: '' };
    procs.set(component, proc);
    const current = proc.child;
    if (current && current.exitCode === null && current.signalCode === null) throw new Error(`${component} on ${name} is already running`);
    const child = spawn('nsenter', [`--net=${netns.path}`, '--', process.execPath, knodeBin, ...args[component]], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (chunk: Buffer) => (proc.output = (proc.output + chunk.toString()).slice(-maxLog));
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    child.once('error', (error) => (proc.output += `\n[spawn error] ${error.message}\n`));
    proc.exit = undefined;
    proc.stopping = false;
    child.once('exit', (code, signal) => (proc.exit = `exited (code ${code}, signal ${signal})`));
    proc.child = child;
  };
  const stop = async (component: Component, signal: NodeJS.Signals = 'SIGTERM') => {
    const proc = procs.get(component);
    const child = proc?.child;
    if (!proc || !child || child.exitCode !== null || child.signalCode !== null) return;
    proc.stopping = true;
    child.kill(signal);
    if (!(await waitExit(child, 15_000))) {
      child.kill('SIGKILL');
      await waitExit(child, 5_000);
    }
  };
  return { start, stop };
}

/** Makes one node: its netns on the underlay, its data dir in up's layout; nothing started yet. */
async function makeNode(ctx: NodeContext, role: string, index: number): Promise<NodeParts> {
  const netns = await ctx.net.node(role);
  const name = netns.name;
  const underlayIp = `${ctx.prefix}.${index + 1}`;
  const [, peer] = await ctx.net.link(netns, ctx.underlay, { aName: 'ul0', aAddress: `${underlayIp}/24` });
  await ctx.underlay.ip('link', 'set', peer, 'master', 'br0');
  await netns.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  const dir = await mkdtemp(join(tmpdir(), `knode-2n-${role}-`));
  ctx.dirs.push(dir);
  const layout = upLayout(dir);
  const bridge = await bridgeLoopbackInto(netns.name, ctx.cp.port);
  ctx.bridges.push(bridge);
  await writeNodeFiles(layout, { nodeName: name, clusterCidr, serviceCidr, clusterDns: tenthAddress(serviceCidr), listen: '127.0.0.1:6443' }, bridge.port);
  if (ctx.dnsUpstream) writeFileSync(join(layout.dataDir, 'resolv.conf'), `nameserver ${ctx.dnsUpstream}\n`);
  const scopeLabel = `io.knode.test=two-node-${ctx.net.id}-${role}`;
  const { KNODE_CNI_HOST_NETNS: _unused, ...inherited } = process.env;
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    KNODE_LOG_LEVEL: ctx.logLevel,
    KNODE_CNI_CACHE_DIR: layout.cniCacheDir,
    KNODE_POD_LOGS_DIR: layout.podLogs,
    KNODE_RUNTIME_SCOPE: scopeLabel,
    KNODE_NODE_IP: underlayIp,
  };
  const procs = new Map<Component, Proc>();
  const { start, stop } = componentControl(netns, name, componentArgs(layout, name, underlayIp), env, procs, ctx.stopping);
  const containers = async (podName: string, opts: { all?: boolean } = {}) =>
    (await ctx.docker.listContainers({ all: opts.all ?? false, filters: { label: [scopeLabel, `io.kubernetes.pod.name=${podName}`] } })).filter((c) => c.Labels['io.kubernetes.container.name'] !== 'POD');
  const node: ClusterNode = { role, name, netns, underlayIp, layout, scopeLabel, start, stop, logs: (c) => procs.get(c)?.output ?? '', containers };
  return { node, procs };
}

/** The first exited component of the node, as an error with its log (undefined while all run). */
function exitedComponent(parts: NodeParts, components: Component[]): Error | undefined {
  for (const component of components) {
    const proc = parts.procs.get(component);
    if (proc?.exit) return new Error(`${component} on ${parts.node.name} ${proc.exit}:\n${proc.output.slice(-3000)}`);
  }
  return undefined;
}

/** Polls like waitFor, but fails at once when one of the node's components exits. */
async function whileAlive(parts: NodeParts, components: Component[], what: string, probe: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  let dead: Error | undefined;
  await waitFor(what, async () => {
    dead = exitedComponent(parts, components);
    return dead !== undefined || (await probe());
  }, timeoutMs, 250);
  if (dead) throw dead;
}

/** Starts a node as `knode up` does: overlay + agent, then (lease written, node Ready) the proxy. */
async function startNode(parts: NodeParts, core: CoreV1Api, withDns: boolean): Promise<void> {
  const { node } = parts;
  node.start('overlay');
  node.start('agent');
  const both: Component[] = ['overlay', 'agent'];
  await whileAlive(parts, both, `the overlay lease on ${node.name}`, () => existsSync(node.layout.subnetFile) && statSync(node.layout.subnetFile).size > 0, 120_000);
  await whileAlive(parts, both, `${node.name} Ready`, async () => nodeReady(await core.readNode({ name: node.name })), 120_000);
  node.start('proxy');
  await whileAlive(parts, [...both, 'proxy'], `the proxy on ${node.name} healthy`, async () => {
    const result = await node.netns.exec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '3', 'http://127.0.0.1:10256/healthz'], { allowFailure: true, timeoutMs: 10_000 });
    return result.stdout.trim() === '200';
  }, 60_000);
  if (!withDns) return;
  node.start('dns');
  await whileAlive(parts, [...both, 'proxy', 'dns'], `the dns on ${node.name} ready`, async () => {
    const result = await node.netns.exec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '3', 'http://127.0.0.1:9153/ready'], { allowFailure: true, timeoutMs: 10_000 });
    return result.stdout.trim() === '200';
  }, 60_000);
}

/** dnsmasq in a test netns (no /etc/hosts, no resolv.conf: it answers only what `args` give it). */
async function startDnsmasq(netns: Netns, address: string, args: string[]): Promise<ChildProcess> {
  const child = spawn('nsenter', [`--net=${netns.path}`, '--', 'dnsmasq', '-k', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--no-poll', '--pid-file=', '--user=root', `--listen-address=${address}`, '--bind-interfaces', '--port=53', '--local-ttl=30', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-2000)));
  await waitFor('dnsmasq on the underlay', async () => {
    if (child.exitCode !== null) throw new Error(`dnsmasq exited: ${errors}`);
    const result = await netns.exec(['dig', `@${address}`, '+time=1', '+tries=1', '+short', 'version.bind', 'TXT', 'CH'], { allowFailure: true, timeoutMs: 5000 });
    return result.code === 0 && result.stdout.trim() !== '';
  }, 15_000);
  return child;
}

/** Makes the underlay, the control plane and the nodes (started in parallel); on failure removes everything. */
export async function startCluster(options: ClusterOptions): Promise<TestCluster> {
  const { docker } = options;
  const roles = options.roles ?? ['a', 'b'];
  const net = new TestNetwork();
  const prefix = `192.168.${100 + (parseInt(randomBytes(1).toString('hex'), 16) % 100)}`;
  const dirs: string[] = [];
  const bridges: LoopbackBridge[] = [];
  const parts: NodeParts[] = [];
  const created: Netns[] = [];
  let cp: TestControlPlane | undefined;
  let cpDataDir: string | undefined;
  let dnsmasq: ChildProcess | undefined;
  let stopped = false;

  const diagnostics = () =>
    parts
      .flatMap((p) => [...p.procs].map(([component, proc]) => `--- ${component} on ${p.node.name}: ${proc.exit ?? 'running'}\n${proc.output.slice(-4000)}`))
      .join('\n');

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const dirty: string[] = [];
    for (const netns of created) if (!(await netns.hasNoDefaultRoute().catch(() => true))) dirty.push(netns.name);
    await Promise.all(parts.flatMap((p) => (['dns', 'proxy', 'agent', 'overlay'] as const).map((c) => p.node.stop(c).catch(() => undefined))));
    if (dnsmasq && dnsmasq.exitCode === null) {
      dnsmasq.kill('SIGTERM');
      await waitExit(dnsmasq, 5000);
    }
    for (const p of parts) await removeAgentPods(docker, p.node.scopeLabel).catch(() => undefined);
    await Promise.all(bridges.map((b) => b.stop().catch(() => undefined)));
    await net.cleanup().catch(() => undefined);
    await cp?.stop().catch(() => undefined);
    cp = undefined;
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }).catch(() => undefined)));
    if (dirty.length > 0) throw new Error(`network safety: netns gained a default route during the test: ${dirty.join(', ')}`);
  };

  try {
    if (options.persistentControlPlane) {
      cpDataDir = await mkdtemp(join(tmpdir(), 'knode-2n-cp-'));
      dirs.push(cpDataDir);
    }
    const [controlPlane] = await Promise.all([
      startTestControlPlane({ clusterCidr, serviceCidr, ...(cpDataDir ? { storage: 'file' as const, dataDir: cpDataDir } : {}) }),
      ensureLocalImage(docker, pauseSpec),
      ensureLocalImage(docker, busyboxSpec),
    ]);
    cp = controlPlane;
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    const core = kc.makeApiClient(CoreV1Api);
    const underlay = await net.namespace('ul');
    created.push(underlay);
    await underlay.ip('link', 'add', 'br0', 'type', 'bridge');
    await underlay.ip('link', 'set', 'br0', 'up');
    const underlayClient = await net.namespace('uc');
    created.push(underlayClient);
    const [, clientPeer] = await net.link(underlayClient, underlay, { aName: 'ul0', aAddress: `${prefix}.100/24` });
    await underlay.ip('link', 'set', clientPeer, 'master', 'br0');
    if (options.dns) dnsmasq = await startDnsmasq(underlayClient, `${prefix}.100`, options.dns.dnsmasqArgs);
    const ctx: NodeContext = { net, underlay, cp, docker, prefix, logLevel: options.logLevel ?? 'info', dirs, bridges, stopping: () => stopped, dnsUpstream: options.dns ? `${prefix}.100` : undefined };
    for (const [index, role] of roles.entries()) {
      const made = await makeNode(ctx, role, index);
      parts.push(made);
      created.push(made.node.netns);
    }
    for (const netns of created) if (!(await netns.hasNoDefaultRoute())) throw new Error(`netns ${netns.name} has a default route`);
    await Promise.all(parts.map((p) => startNode(p, core, options.dns !== undefined)));
    // The kubectl config lives with the cluster (a restarted control plane writes its own anew).
    const kubeconfig = join(cpDataDir ?? (await mkdtemp(join(tmpdir(), 'knode-2n-kc-'))), 'kubectl.kubeconfig');
    if (!cpDataDir) dirs.push(dirname(kubeconfig));
    writeKubeconfig(kubeconfig, { server: cp.url });
    const port = cp.port;
    const restartControlPlane = async ({ downMs = 0 } = {}) => {
      if (!cpDataDir) throw new Error('restartControlPlane needs persistentControlPlane: true');
      if (stopped || !cp) throw new Error('the cluster is stopped');
      await cp.stop();
      cp = undefined;
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      cp = await startTestControlPlane({ clusterCidr, serviceCidr, storage: 'file', dataDir: cpDataDir, port });
      ctx.cp = cp;
    };
    const addNode = async (role: string): Promise<ClusterNode> => {
      if (stopped) throw new Error(`not adding node ${role}: the cluster is stopping`);
      const made = await makeNode(ctx, role, parts.length);
      parts.push(made);
      created.push(made.node.netns);
      if (!(await made.node.netns.hasNoDefaultRoute())) throw new Error(`netns ${made.node.netns.name} has a default route`);
      await startNode(made, core, options.dns !== undefined);
      return made.node;
    };
    return {
      get controlPlane() {
        if (!cp) throw new Error('the control plane is not running');
        return cp;
      },
      kubeconfig,
      get nodes() {
        return parts.map((p) => p.node);
      },
      underlay,
      underlayClient,
      core,
      kubectl: async (...args: string[]) => (await run(['kubectl', '--kubeconfig', kubeconfig, ...args], { timeoutMs: 30_000 })).stdout,
      diagnostics,
      addNode,
      restartControlPlane,
      unexpectedExits: () => parts.flatMap((p) => [...p.procs].filter(([, proc]) => proc.exit && !proc.stopping).map(([component, proc]) => `${component} on ${p.node.name} ${proc.exit}`)),
      stop,
    };
  } catch (error) {
    const detail = diagnostics();
    await stop().catch(() => undefined);
    throw new Error(`could not start the test cluster: ${error instanceof Error ? error.message : String(error)}\n${detail}`, { cause: error });
  }
}

/** A busybox httpd pod serving its own name on 8080 (port "http"), ready by probe, on `node` (by nodeSelector). */
export const webPod = (name: string, node: string): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels: { app: 'web' } },
  spec: {
    nodeSelector: { 'kubernetes.io/hostname': node },
    terminationGracePeriodSeconds: 1,
    containers: [
      {
        name: 'httpd',
        image: busyboxImage,
        command: ['sh', '-c', 'mkdir -p /tmp/w && echo "$POD_NAME" > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w'],
        env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
        ports: [{ name: 'http', containerPort: 8080 }],
        readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
      },
    ],
  },
});

/** Runs a shell script inside a pod's (first app) container through the Docker CLI; bounded by timeoutMs. */
export async function execInPod(node: ClusterNode, podName: string, script: string, timeoutMs = 60_000): Promise<string> {
  const [container] = await node.containers(podName);
  if (!container) throw new Error(`no running container of pod ${podName} on ${node.name}`);
  return (await run(['docker', 'exec', container.Id, 'sh', '-c', script], { timeoutMs })).stdout;
}
