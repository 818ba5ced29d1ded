/**
 * A Kubernetes node for e2e tests, shaped like a real one: a test network namespace (the node's
 * "host" network) in which the built `knode agent` PROCESS runs, so the CNI plugins it executes,
 * the pod bridge they create and every probe/hook it sends live in the node netns, as the kubelet
 * probes from the node's network namespace (https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/).
 *
 *   const cp = await startTestControlPlane();
 *   const node = await startAgentNode({ controlPlane: cp, name: 'probes' });
 *   // node.nodeName, node.netns, node.subnet, node.scopeLabel, node.containers(podName), node.logs()
 *   await node.stop();   // agent, its containers (by scope label), pod cgroups, bridge, netns, dirs
 *
 * - Docker is reached through its unix socket (not bound to a netns); every container the agent
 *   creates carries the `KNODE_RUNTIME_SCOPE` label (cri/docker: scopeLabels), which is how
 *   stop() finds them.
 * - The control plane on the root 127.0.0.1 is reached through a loopback bridge
 *   (../helpers/loopback-bridge.ts) and a kubeconfig for the bridged port.
 * - CNI: the reference bridge + host-local plugins with a temp dataDir; pods get a default route
 *   to the bridge gateway in the node netns, and the node netns has NO default route (checked at
 *   start and stop), so nothing leaves it (network safety rule, docs/architecture.md, "Testing").
 * - The agent is entered with `nsenter --net` rather than `ip netns exec`: the latter remounts
 *   /sys without the cgroup hierarchy, which the agent reads and cleans up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { parse, stringify } from 'yaml';
import { writeKubeconfig } from '../../controlplane/kubeconfig.js';
import { failoverExtension } from '../../lib/config/kubeconfig.js';
import type { TestControlPlane } from '../helpers/controlplane.js';
import { removeAgentPods } from '../helpers/docker.js';
import { bridgeLoopbackInto, type LoopbackBridge } from '../helpers/loopback-bridge.js';
import { TestNetwork, testNetnsPrefix, type Netns } from '../helpers/netns.js';

export const cniBinDir = '/usr/lib/cni';
const knodeBin = fileURLToPath(new URL('../../bin/knode', import.meta.url));
const builtCli = fileURLToPath(new URL('../../dist/bin/knode.js', import.meta.url));

/** Why an agent node cannot be made here (undefined when it can): the CLI must be built, CNI installed. */
export async function agentNodeUnavailable(): Promise<string | undefined> {
  if (!existsSync(builtCli)) return 'dist/ missing: run `npm run build`';
  const plugins = await Promise.all(['bridge', 'host-local'].map((p) => stat(join(cniBinDir, p)).then(() => true, () => false)));
  if (plugins.includes(false)) return `reference CNI plugins missing in ${cniBinDir}`;
  return undefined;
}

export interface AgentNodeOptions {
  controlPlane: Pick<TestControlPlane, 'port'>;
  /** More control-plane ports (root loopback) for the kubeconfig's failover list (lib/api-failover.ts). */
  failoverPorts?: number[];
  docker: Docker;
  /** Short role name for the node/netns (letters/digits), default "node". */
  name?: string;
  /** Extra/overriding KubeletConfiguration fields. */
  kubeletConfig?: Record<string, unknown>;
  /** Agent log level (KNODE_LOG_LEVEL), default "info" so logs() says what happened. */
  logLevel?: string;
  /**
   * A container runtime of the node's own (say a dockerd started in its netns), made once the
   * netns exists and before the agent starts; replaces `docker` and the default endpoint.
   */
  runtime?: (netns: Netns, dir: string) => Promise<{ docker: Docker; endpoint: string }>;
}

export interface AgentNode {
  readonly nodeName: string;
  readonly netns: Netns;
  /** Pod subnet (host-local range) of this node, e.g. 10.231.17.0/24. */
  readonly subnet: string;
  /** "key=value" label on every container of this node. */
  readonly scopeLabel: string;
  readonly dir: string;
  readonly staticPodPath: string;
  /** Kubelet API port (127.0.0.1 inside the netns). */
  readonly kubeletPort: number;
  /** The agent's stdout+stderr so far (the last ~200 KB). */
  logs(): string;
  /** Running app containers (not sandboxes) of a pod, by the agent's labels. */
  containers(podName: string, options?: { all?: boolean }): Promise<Docker.ContainerInfo[]>;
  /** Makes the index-th control plane (0: controlPlane, then failoverPorts) unreachable from the node: its port refuses. */
  cutControlPlane(index: number): Promise<void>;
  /** Kills the agent process (SIGKILL by default) and starts it again with the same flags. */
  restartAgent(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the agent and removes everything the node made. Idempotent, never throws. */
  stop(): Promise<void>;
}

const maxLog = 200_000;

function kubeletConfigYaml(staticPodPath: string, port: number, extra: Record<string, unknown>): string {
  return stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    staticPodPath,
    fileCheckFrequency: '2s',
    syncFrequency: '20s',
    nodeStatusUpdateFrequency: '2s',
    address: '127.0.0.1',
    port,
    authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
    authorization: { mode: 'AlwaysAllow' },
    // A busy shared test machine must not evict the test's pods or collect its images.
    evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    ...extra,
  });
}

function spawnAgent(netns: Netns, args: string[], env: NodeJS.ProcessEnv, onOutput: (text: string) => void): ChildProcess {
  if (!netns.name.startsWith(testNetnsPrefix)) throw new Error(`refusing to run the agent outside a test netns: ${netns.name}`);
  const child = spawn('nsenter', [`--net=${netns.path}`, '--', process.execPath, knodeBin, 'agent', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (chunk: Buffer) => onOutput(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => onOutput(chunk.toString()));
  return child;
}

async function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Makes the node and starts its agent; on any failure everything made so far is removed. */
export async function startAgentNode(options: AgentNodeOptions): Promise<AgentNode> {
  const id = randomBytes(4).toString('hex');
  const role = options.name ?? 'node';
  const nodeName = `knt-${role}-${id}`;
  const scopeLabel = `io.knode.test=agent-node-${role}-${id}`;
  const subnet = `10.${200 + (parseInt(id.slice(0, 2), 16) % 50)}.${parseInt(id.slice(2, 4), 16)}.0/24`;
  let { docker } = options;
  const net = new TestNetwork();
  const dir = await mkdtemp(join(tmpdir(), `knode-e2e-${role}-`));
  const bridges: LoopbackBridge[] = [];
  let child: ChildProcess | undefined;
  let output = '';
  let stopped = false;

  const containers = async (podName: string, opts: { all?: boolean } = {}) =>
    (await docker.listContainers({ all: opts.all ?? false, filters: { label: [scopeLabel, `io.kubernetes.pod.name=${podName}`] } })).filter((c) => c.Labels['io.kubernetes.container.name'] !== 'POD');

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      if (!(await waitExit(child, 15_000))) {
        child.kill('SIGKILL');
        await waitExit(child, 5_000);
      }
    }
    try {
      await removeAgentPods(docker, scopeLabel);
    } catch {
      // best effort: the engine may be gone
    }
    await Promise.all(bridges.map((bridge) => bridge.stop().catch(() => undefined)));
    await net.cleanup().catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };

  try {
    const netns = await net.node(role);
    if (!(await netns.hasNoDefaultRoute())) throw new Error(`node netns ${netns.name} has a default route`);
    const staticPodPath = join(dir, 'manifests');
    for (const sub of ['net.d', 'manifests', 'root', 'pod-logs', 'cni-cache']) await mkdir(join(dir, sub), { recursive: true });
    await writeFile(
      join(dir, 'net.d', '10-bridge.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: `knt${id}`,
        // isGateway: pods route via the bridge address in the node netns, which has no default route.
        plugins: [{ type: 'bridge', bridge: `kb${id}`, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet }]] } }],
      }),
    );
    let endpointArgs: string[] = [];
    if (options.runtime) {
      const runtime = await options.runtime(netns, dir);
      docker = runtime.docker;
      endpointArgs = ['--container-runtime-endpoint', runtime.endpoint];
    }
    const kubeletPort = 20_000 + Math.floor(Math.random() * 20_000);
    await writeFile(join(dir, 'kubelet.yaml'), kubeletConfigYaml(staticPodPath, kubeletPort, options.kubeletConfig ?? {}));
    for (const port of [options.controlPlane.port, ...(options.failoverPorts ?? [])]) bridges.push(await bridgeLoopbackInto(netns.name, port));
    writeKubeconfig(join(dir, 'kubeconfig'), { server: `http://127.0.0.1:${bridges[0]!.port}` });
    if (bridges.length > 1) {
      const extension = { servers: bridges.slice(1).map((bridge) => `http://127.0.0.1:${bridge.port}`) };
      const config = parse(await readFile(join(dir, 'kubeconfig'), 'utf8')) as { clusters: { cluster: Record<string, unknown> }[] };
      config.clusters[0]!.cluster.extensions = [{ name: failoverExtension, extension }];
      await writeFile(join(dir, 'kubeconfig'), stringify(config), { mode: 0o600 });
    }
    const args = [
      '--kubeconfig', join(dir, 'kubeconfig'), '--config', join(dir, 'kubelet.yaml'), '--hostname-override', nodeName,
      '--root-dir', join(dir, 'root'), '--cni-conf-dir', join(dir, 'net.d'), '--cni-bin-dir', cniBinDir, ...endpointArgs,
    ];
    const { KNODE_CNI_HOST_NETNS: _unused, ...inherited } = process.env;
    const env: NodeJS.ProcessEnv = {
      ...inherited,
      KNODE_LOG_LEVEL: options.logLevel ?? 'info',
      KNODE_CNI_CACHE_DIR: join(dir, 'cni-cache'),
      KNODE_POD_LOGS_DIR: join(dir, 'pod-logs'),
      KNODE_RUNTIME_SCOPE: scopeLabel,
      // The gateway address the bridge plugin gives the node side (first of the subnet).
      KNODE_NODE_IP: subnet.replace(/\.0\/24$/, '.1'),
    };
    const launch = () => {
      child = spawnAgent(netns, args, env, (text) => (output = (output + text).slice(-maxLog)));
      child.once('error', (error) => (output += `\n[spawn error] ${error.message}\n`));
    };
    launch();
    return {
      nodeName,
      netns,
      subnet,
      scopeLabel,
      dir,
      staticPodPath,
      kubeletPort,
      logs: () => output,
      containers,
      restartAgent: async (signal = 'SIGKILL') => {
        if (child && child.exitCode === null && child.signalCode === null) {
          child.kill(signal);
          await waitExit(child, 30_000);
        }
        output += `\n[test] agent restarted after ${signal}\n`;
        launch();
      },
      cutControlPlane: async (index) => {
        await bridges[index]?.stop();
      },
      stop: async () => {
        const clean = await netns.hasNoDefaultRoute().catch(() => true);
        await stop();
        if (!clean) throw new Error(`node netns ${netns.name} gained a default route during the test`);
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
