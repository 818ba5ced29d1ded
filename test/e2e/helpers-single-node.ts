/**
 * A control plane and one real `knode agent` for e2e tests driven by the real kubectl: the
 * control plane as `knode controlplane` with kubelet client credentials (so `kubectl logs/exec/
 * port-forward/top` reach the kubelet), the agent with its own serving certificate and a bridge +
 * host-local network inside a test netns.
 *
 * Network safety: the agent's kubelet listens on 127.0.0.1 in the root netns (InternalIP
 * 127.0.0.1, checked before the fixture is handed out: the control plane must never dial anything
 * but loopback); pods live in the test netns (KNODE_CNI_HOST_NETNS), which has no default route.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { stringify } from 'yaml';
import { run } from '../../lib/exec.js';
import { removeAgentPods } from '../helpers/docker.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';
import { KnodeProcess, makeKubeletPki, startControlPlaneProcess, type KubeletPki } from './helpers-kubectl.js';

export const cniBin = '/usr/lib/cni';

export interface SingleNodeOptions {
  docker: Docker;
  /** A few letters naming the test: the netns, the temporary dir and the bridge (2 letters) derive from it. */
  tag: string;
  id: string;
  nodeName: string;
  scopeLabel: string;
  /** The pods' /24 (host-local range). */
  subnet: string;
  /** Fields merged over the KubeletConfiguration the fixture writes. */
  kubelet?: Record<string, unknown>;
  /** More `knode controlplane` flags. */
  controlPlaneArgs?: string[];
  /** More directories made below `dir`. */
  extraDirs?: string[];
}

export interface SingleNode {
  dir: string;
  pki: KubeletPki;
  node: Netns;
  controlPlane: KnodeProcess;
  agent: KnodeProcess;
  kubeconfig: string;
  kubeletPort: number;
  /** The last lines of both components' logs, for a failure message. */
  logs(): string;
  /** kubectl with the fixture's kubeconfig in namespace default; never throws on a non-zero exit. */
  kubectl(args: string[], options?: { input?: string; timeoutMs?: number }): ReturnType<typeof run>;
  /** Stops both components, removes the agent's containers, the netns and the directory. */
  stop(): Promise<void>;
}

interface NodeView {
  status?: { addresses?: { type: string; address: string }[]; allocatable?: Record<string, string>; daemonEndpoints?: { kubeletEndpoint?: { Port?: number } } };
}

/** Starts the pair and waits until the node is registered with its kubelet port and allocatable. */
export async function startSingleNode(options: SingleNodeOptions): Promise<SingleNode> {
  const { docker, tag, id, nodeName, scopeLabel, subnet } = options;
  const net = new TestNetwork();
  const dir = await mkdtemp(join(tmpdir(), `knode-${tag}-`));
  let controlPlane: KnodeProcess | undefined;
  let agent: KnodeProcess | undefined;
  const stop = async () => {
    await agent?.stop();
    await removeAgentPods(docker, scopeLabel).catch(() => undefined);
    await controlPlane?.stop();
    await net.cleanup().catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  const logs = () => `\n--- agent ---\n${agent?.logs().slice(-6000)}\n--- controlplane ---\n${controlPlane?.logs().slice(-4000)}`;
  try {
    const node = await net.node(tag);
    if (!(await node.hasNoDefaultRoute())) throw new Error(`test netns ${node.name} has a default route`);
    for (const sub of ['net.d', 'manifests', 'root', 'pod-logs', 'cni-cache', 'pki', 'cp', ...(options.extraDirs ?? [])]) await mkdir(join(dir, sub), { recursive: true });
    const pki = await makeKubeletPki(join(dir, 'pki'));
    await writeFile(
      join(dir, 'net.d', '10-test.conflist'),
      JSON.stringify({ cniVersion: '1.0.0', name: `knt${id}`, plugins: [{ type: 'bridge', bridge: `k${tag.slice(0, 1)}${id}`, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet }]] } }] }),
    );
    await writeFile(
      join(dir, 'kubelet.yaml'),
      stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        staticPodPath: join(dir, 'manifests'),
        address: '127.0.0.1',
        port: 0,
        nodeStatusUpdateFrequency: '2s',
        tlsCertFile: pki.servingCertFile,
        tlsPrivateKeyFile: pki.servingKeyFile,
        authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: pki.caFile } },
        authorization: { mode: 'AlwaysAllow' },
        evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        ...options.kubelet,
      }),
    );
    const cp = await startControlPlaneProcess(join(dir, 'cp'), [
      '--kubelet-client-certificate', pki.clientCertFile, '--kubelet-client-key', pki.clientKeyFile, '--kubelet-certificate-authority', pki.caFile,
      ...(options.controlPlaneArgs ?? []),
    ]);
    controlPlane = cp.process;
    const kubeconfig = cp.kubeconfigPath;
    const { KNODE_CNI_HOST_NETNS: _unused, ...inherited } = process.env;
    agent = new KnodeProcess(
      ['agent', '--kubeconfig', kubeconfig, '--config', join(dir, 'kubelet.yaml'), '--hostname-override', nodeName, '--root-dir', join(dir, 'root'), '--cni-conf-dir', join(dir, 'net.d'), '--cni-bin-dir', cniBin],
      {
        ...inherited,
        KNODE_LOG_LEVEL: 'info',
        KNODE_CNI_HOST_NETNS: node.path,
        KNODE_CNI_CACHE_DIR: join(dir, 'cni-cache'),
        KNODE_POD_LOGS_DIR: join(dir, 'pod-logs'),
        KNODE_RUNTIME_SCOPE: scopeLabel,
        // The control plane dials the InternalIP: it must be the root netns loopback.
        KNODE_NODE_IP: '127.0.0.1',
      },
    );
    const kubectl = (args: string[], opts: { input?: string; timeoutMs?: number } = {}) =>
      run(['kubectl', '--kubeconfig', kubeconfig, '-n', 'default', ...args], { allowFailure: true, timeoutMs: opts.timeoutMs ?? 60_000, ...(opts.input !== undefined ? { input: opts.input } : {}) });
    const registered = await waitFor(
      'node registered with its kubelet port and allocatable',
      async () => {
        const result = await kubectl(['get', 'node', nodeName, '-o', 'json']);
        if (result.code !== 0) return undefined;
        const n = JSON.parse(result.stdout) as NodeView;
        return n.status?.daemonEndpoints?.kubeletEndpoint?.Port && n.status.allocatable?.cpu ? n : undefined;
      },
      90_000,
      250,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}${logs()}`);
    });
    // Network safety: never let the control plane dial anything but loopback.
    const internal = (registered.status!.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address);
    if (internal.join() !== '127.0.0.1') throw new Error(`node ${nodeName} registered InternalIP ${internal.join()}, not 127.0.0.1`);
    return { dir, pki, node, controlPlane, agent, kubeconfig, kubeletPort: registered.status!.daemonEndpoints!.kubeletEndpoint!.Port!, logs, kubectl, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
