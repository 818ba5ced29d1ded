/**
 * A bench node: `knode agent` (the built CLI, a child process) with a static pod directory, its
 * kubelet API on 127.0.0.1 (anonymous, AlwaysAllow) and pods wired by the reference bridge +
 * host-local plugins into a `knt-bench-*` netns of their own (KNODE_CNI_HOST_NETNS), against a
 * control plane on loopback. `stop()` removes the agent, its containers, the netns and the files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { knodeCommand } from './knode-process.js';
import { openSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { writeKubeconfig } from '../../controlplane/kubeconfig.js';
import { startControlPlane } from '../../controlplane/control-plane.js';
import { MemoryStorage } from '../../controlplane/storage/memory.js';
import { run } from '../../lib/exec.js';
import { createLogger } from '../../lib/log.js';
import { onTerminate } from './report.js';

export interface BenchNodeOptions {
  /** Short and unique per run: names the netns, the bridge and the temp dir. */
  id: string;
  nodeName: string;
  /** KNODE_RUNTIME_SCOPE: the label on everything the agent creates. */
  scope: string;
  /** The pods' subnet, e.g. 10.252.0.0/24. */
  subnet: string;
  /** The control plane's URL (loopback). */
  server: string;
  docker: Docker;
  /** Extra environment for the agent. */
  env?: NodeJS.ProcessEnv;
  /**
   * The agent and its pods' bridge live in this process's own netns (the bench re-executed
   * itself in a knt-* netns), so the agent reaches pod IPs as on a node (probes); no netns is
   * made here.
   */
  inheritNetns?: boolean;
}

export interface BenchNode {
  dir: string;
  /** The netns (name under /var/run/netns) the pods are wired into. */
  netns: string;
  manifests: string;
  kubeconfig: string;
  kubeletPort: number;
  /** The kubelet's plain-HTTP read-only port (/healthz, /pods): the main port serves TLS (self-signed, as the kubelet). */
  readOnlyPort: number;
  agent: ChildProcess;
  stop(): Promise<void>;
}

/** Polls `check` until it holds; throws after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 120_000, pollMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** SIGTERM, then SIGKILL after a second. */
export async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export async function startBenchNode(options: BenchNodeOptions): Promise<BenchNode> {
  const netns = options.inheritNetns ? (process.env.KNODE_BENCH_NETNS ?? '') : `knt-bench-${options.id}`;
  if (!netns.startsWith('knt-')) throw new Error('inheritNetns: this process must run in a knt-* test netns (KNODE_BENCH_NETNS)');
  const dir = await mkdtemp(join(tmpdir(), `knode-bench-${options.id}-`));
  const manifests = join(dir, 'manifests');
  const kubeconfig = join(dir, 'kubeconfig');
  const kubeletPort = 20000 + Math.floor(Math.random() * 20000);
  let agent: ChildProcess | undefined;
  // Tracing where a pod start's time goes: KNODE_BENCH_AGENT_LOG=FILE (the agent logs at debug
  // level into FILE), KNODE_BENCH_RUNTIME_ENDPOINT=unix://… (the agent's Docker socket, e.g. a logging proxy),
  // KNODE_BENCH_AGENT_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR" (node flags for the agent; NODE_OPTIONS refuses some).
  const traceLog = process.env.KNODE_BENCH_AGENT_LOG;
  const nodeFlags = (process.env.KNODE_BENCH_AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const stop = async () => {
    await stopChild(agent);
    const left = await options.docker.listContainers({ all: true, filters: { label: [options.scope] } });
    for (let i = 0; i < left.length; i += 8) {
      await Promise.all(left.slice(i, i + 8).map((info) => options.docker.getContainer(info.Id).remove({ force: true }).catch(() => undefined)));
    }
    if (!options.inheritNetns) await run(['ip', 'netns', 'del', netns], { allowFailure: true });
    await rm(dir, { recursive: true, force: true });
  };
  try {
    if (!options.inheritNetns) {
      await run(['ip', 'netns', 'add', netns]);
      await run(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
    }
    await mkdir(join(dir, 'net.d'));
    await mkdir(manifests);
    const bridge = { type: 'bridge', bridge: `kb${options.id}`.slice(0, 15), isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet: options.subnet }]] } };
    await writeFile(join(dir, 'net.d', '10-bench.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'bench', plugins: [bridge] }));
    // healthzPort 0 (off, as the kubelet allows): 127.0.0.1:10248 is shared by every agent in the root netns.
    await writeFile(
      join(dir, 'kubelet.yaml'),
      `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: ${manifests}\naddress: 127.0.0.1\nport: ${kubeletPort}\nreadOnlyPort: ${kubeletPort + 1}\nhealthzPort: 0\nauthentication: {anonymous: {enabled: true}, webhook: {enabled: false}}\nauthorization: {mode: AlwaysAllow}\n`,
    );
    writeKubeconfig(kubeconfig, { server: options.server });
    const command = knodeCommand(['agent', '--kubeconfig', kubeconfig, '--config', join(dir, 'kubelet.yaml'), '--hostname-override', options.nodeName, '--root-dir', join(dir, 'root'), '--cni-conf-dir', join(dir, 'net.d'), '--cni-bin-dir', '/usr/lib/cni', ...(process.env.KNODE_BENCH_RUNTIME_ENDPOINT ? ['--container-runtime-endpoint', process.env.KNODE_BENCH_RUNTIME_ENDPOINT] : [])], nodeFlags, {
      ...process.env, KNODE_LOG_LEVEL: traceLog ? 'debug' : 'error', ...(options.inheritNetns ? {} : { KNODE_CNI_HOST_NETNS: `/var/run/netns/${netns}` }), KNODE_CNI_CACHE_DIR: join(dir, 'cni-cache'), KNODE_POD_LOGS_DIR: join(dir, 'pod-logs'), KNODE_RUNTIME_SCOPE: options.scope, ...options.env });
    agent = spawn(command.command, command.args, {
      env: command.env,
      stdio: ['ignore', 'ignore', traceLog ? openSync(traceLog, 'a') : 'inherit'],
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { dir, netns, manifests, kubeconfig, kubeletPort, readOnlyPort: kubeletPort + 1, agent, stop };
}

/**
 * An in-process control plane on loopback (controllers off) and a bench node against it. The
 * returned clean-up stops `children()` first (a floor process, …), then the node and the control
 * plane; it is also registered with onTerminate.
 */
export async function startBenchCluster(options: Omit<BenchNodeOptions, 'server'>, children: () => Array<ChildProcess | undefined> = () => []): Promise<{ node: BenchNode; server: string; cleanup: () => Promise<void> }> {
  const cp = await startControlPlane({ storage: new MemoryStorage({}), log: createLogger('cp', 'silent'), host: '127.0.0.1', port: 0, clusterCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', controllers: { enabled: false } });
  let node: BenchNode | undefined;
  const cleanup = async () => {
    for (const child of children()) await stopChild(child);
    await node?.stop();
    await cp.stop();
  };
  onTerminate(cleanup);
  try {
    node = await startBenchNode({ ...options, server: cp.url });
  } catch (error) {
    await cleanup();
    throw error;
  }
  return { node, server: cp.url, cleanup };
}
