/**
 * A multi-node overlay test bed (tests and benchmarks only): an "underlay" netns with a bridge,
 * N "node" netns each joined to it by a veth (192.168.77.<i>/24, no default route), a Node
 * object per node with its podCIDR, and `knode overlay` running INSIDE each node netns against
 * the control plane (reached through a loopback bridge into the netns). Pods are netns wired by
 * the knode CNI plugin through the node's daemon socket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { writeKubeconfig } from '../../controlplane/kubeconfig.js';
import { invoke, type PluginKit } from './cni-harness.js';

export interface NetnsLike {
  name: string;
  path: string;
  ip(...args: string[]): Promise<{ stdout: string }>;
  exec(command: string[], options?: { allowFailure?: boolean; timeoutMs?: number }): Promise<{ stdout: string; code: number }>;
}

export interface ClusterNode {
  index: number;
  name: string;
  ns: NetnsLike;
  underlayIp: string;
  podCIDR: string;
  dir: string;
  subnetFile: string;
  socket: string;
  kubeconfig: string;
  daemon?: ChildProcess;
}

export function nodeApi(kubeconfigPath: string): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return kc.makeApiClient(CoreV1Api);
}

export async function createNodeObject(api: CoreV1Api, name: string, podCIDR: string): Promise<void> {
  await api.createNode({ body: { metadata: { name }, spec: { podCIDR, podCIDRs: [podCIDR] } } });
}

export function writeNodeKubeconfig(dir: string, port: number): string {
  const file = join(dir, 'kubeconfig');
  writeKubeconfig(file, { server: `http://127.0.0.1:${port}` });
  return file;
}

export function writeNetConf(dir: string, conf: Record<string, unknown> = { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'net-conf.json');
  writeFileSync(file, JSON.stringify(conf));
  return file;
}

/** Starts `knode overlay` inside the node netns; resolves when it reports ready. */
export async function startOverlay(kit: PluginKit, node: ClusterNode, netConf: string, iface: string, extra: string[] = []): Promise<ChildProcess> {
  const args = ['netns', 'exec', node.ns.name, process.execPath, join(kit.dir, 'overlay.mjs'), '--kubeconfig', node.kubeconfig, '--net-conf', netConf, '--iface', iface, '--subnet-file', node.subnetFile, '--hostname-override', node.name, '--log-level', 'warn', ...extra];
  const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`overlay on ${node.name} did not become ready: ${output}`)), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('overlay ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`overlay on ${node.name} exited with ${code}: ${output}`));
    });
  });
  node.daemon = child;
  return child;
}

export function stopProcess(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
}

/** Wires a pod netns on a node with the knode plugin through the node's daemon; returns its IP. */
export async function addPod(kit: PluginKit, node: ClusterNode, pod: NetnsLike, id: string): Promise<string> {
  const conf = { cniVersion: '1.0.0', name: 'knt', type: 'knode', subnetFile: node.subnetFile, dataDir: join(node.dir, 'ipam') };
  const result = await invoke({
    nodeNs: node.ns.name,
    plugin: join(kit.binDir, 'knode'),
    conf,
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: kit.binDir, KNODE_CNI_SOCKET: node.socket },
  });
  if (result.code !== 0) throw new Error(`CNI ADD on ${node.name} failed: ${result.stdout} ${result.stderr}`);
  return (result.json.ips as { address: string }[])[0]!.address.split('/')[0]!;
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
