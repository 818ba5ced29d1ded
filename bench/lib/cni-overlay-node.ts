/**
 * A bench node for the CNI fast path as deployed: `knode overlay` (the built CLI, bin/knode) runs
 * inside a `knt-*` node netns against a control plane on loopback (reached through a loopback
 * bridge), leases the node's podCIDR, writes subnet.env and serves knode-cni.sock beside it; the
 * plugin is what `knode install-cni` writes (the Perl launcher over dist/cni/plugin-main.js), and
 * finds the daemon from the netconf's subnetFile alone. The node netns has one veth to an
 * "underlay" netns (the VXLAN device needs an underlay interface) and no default route.
 *
 * KNODE_BENCH_CNI_PROFILE=DIR runs the overlay with `--cpu-prof` into DIR (written at SIGTERM).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { knodeCommand } from './knode-process.js';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../lib/exec.js';
import { cniSocketFor } from '../../cni/plugin-server.js';
import type { TestNetwork, Netns } from '../../test/helpers/netns.js';
import type { TestControlPlane } from '../../test/helpers/controlplane.js';
import { bridgeLoopbackInto, type LoopbackBridge } from '../../test/helpers/loopback-bridge.js';
import { createNodeObject, nodeApi, writeNetConf, writeNodeKubeconfig } from '../../test/helpers/overlay-cluster.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The checkout's root, from bench/lib (vite-node) or dist-bench/bench/lib (npm run bench). */
export const repoRoot = /[\\/]dist-bench[\\/]bench[\\/]lib$/.test(here) ? join(here, '..', '..', '..') : join(here, '..', '..');
const knode = join(repoRoot, 'bin', 'knode');

/** `knode install-cni --bin-dir DIR`: the launcher as a node gets it. Returns the plugin's path. */
export async function installPlugin(binDir: string): Promise<string> {
  if (!existsSync(join(repoRoot, 'dist', 'cni', 'plugin-main.js'))) throw new Error('dist/ is missing: run npm run build first');
  await run([knode, 'install-cni', '--bin-dir', binDir, '--log-level', 'warn']);
  return join(binDir, 'knode');
}

export interface OverlayBenchNode {
  ns: Netns;
  subnetFile: string;
  socket: string;
  /** The overlay process (its pid is `ip netns exec`'s, which exec()s node). */
  daemon: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

async function waitForSocket(socket: string, daemon: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (existsSync(socket) && statSync(socket).isSocket()) return;
    const tail = () => readFileSync(logFile, 'utf8').slice(-2000);
    if (daemon.exitCode !== null || daemon.signalCode !== null) throw new Error(`knode overlay exited (${daemon.exitCode ?? daemon.signalCode}): ${tail()}`);
    if (Date.now() > deadline) throw new Error(`knode overlay did not serve ${socket} within 90 s: ${tail()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function stopDaemon(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
  });
}

/** Node netns + underlay + Node object with `podCIDR` + `knode overlay` serving its CNI socket. */
export async function startOverlayNode(net: TestNetwork, cp: TestControlPlane, dir: string, options: { name: string; podCIDR: string }): Promise<OverlayBenchNode> {
  mkdirSync(dir, { recursive: true });
  const underlay = await net.namespace('ul');
  const ns = await net.node('ovl');
  await net.link(ns, underlay, { aName: 'ul0', aAddress: '192.168.93.1/24', bAddress: '192.168.93.2/24' });
  let bridge: LoopbackBridge | undefined = await bridgeLoopbackInto(ns.name, cp.port);
  const kubeconfig = writeNodeKubeconfig(dir, bridge.port);
  await createNodeObject(nodeApi(cp.kubeconfigPath), options.name, options.podCIDR);
  const netConf = writeNetConf(join(dir, 'conf'));
  const subnetFile = join(dir, 'flannel', 'subnet.env');
  const logFile = join(dir, 'overlay.log');
  const log = openSync(logFile, 'w');
  const profileDir = process.env.KNODE_BENCH_CNI_PROFILE;
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  // As deployed (bin/knode with its environment; kube-flannel runs flanneld with --ip-masq);
  // logs at the default level, to a file.
  const command = knodeCommand(['overlay', '--kubeconfig', kubeconfig, '--net-conf', netConf, '--iface', 'ul0', '--subnet-file', subnetFile, '--hostname-override', options.name, '--ip-masq'], profile);
  const daemon = spawn('ip', ['netns', 'exec', ns.name, command.command, ...command.args], { env: command.env, stdio: ['ignore', log, log] });
  closeSync(log);
  const socket = cniSocketFor(subnetFile);
  const stop = async () => {
    await stopDaemon(daemon);
    await bridge?.stop();
    bridge = undefined;
  };
  try {
    await waitForSocket(socket, daemon, logFile);
  } catch (error) {
    await stop();
    throw error;
  }
  return { ns, subnetFile, socket, daemon, logFile, stop };
}

/** `node dist/cni/plugin-daemon.js SOCKET` in a netns: the stand-alone fast-path server (an extra row). */
export async function startStandaloneDaemon(ns: Netns, socket: string, logFile: string): Promise<{ stop(): Promise<void> }> {
  mkdirSync(dirname(socket), { recursive: true });
  const log = openSync(logFile, 'w');
  const daemon = spawn('ip', ['netns', 'exec', ns.name, process.execPath, join(repoRoot, 'dist', 'cni', 'plugin-daemon.js'), socket], { stdio: ['ignore', log, log] });
  closeSync(log);
  try {
    await waitForSocket(socket, daemon, logFile);
  } catch (error) {
    await stopDaemon(daemon);
    throw error;
  }
  return { stop: () => stopDaemon(daemon) };
}
