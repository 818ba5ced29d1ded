/**
 * Pod-to-pod TCP throughput across two nodes over knode's VXLAN overlay (knode overlay + knode
 * CNI plugin, pods behind cni0) side by side, in the same run, with two hand-built references
 * (same inner MTU 1450), measured with iperf3 in ≥ 3 interleaved rounds:
 *
 * - a hand-built pod path of the same shape: pod netns → veth → bridge → vxlan device →
 *   underlay → vxlan → bridge → veth → pod (what flannel + the bridge plugin build, made with
 *   `ip` by hand): the like-for-like floor of the overlay;
 * - a hand-built VXLAN pair node to node (no veth/bridge hop at either end): the floor of the
 *   tunnel alone, which a pod path cannot reach (two veth and two bridge hops more).
 *
 * Everything lives in knt-* netns joined by an underlay bridge in its own netns; the control
 * plane listens on 127.0.0.1 only. The offload features (`ethtool -k`) that differ between the
 * overlay's devices and the hand-built ones are printed.
 *
 *   node dist-bench/bench/cni-vxlan-throughput.js [seconds=5] [rounds=3]     (root, iperf3, ethtool)
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestNetwork, type Netns } from '../test/helpers/netns.js';
import { bridgeLoopbackInto, type LoopbackBridge } from '../test/helpers/loopback-bridge.js';
import { startTestControlPlane } from '../test/helpers/controlplane.js';
import { buildPluginKit } from '../test/helpers/cni-harness.js';
import { onTerminate, reportFigure, roundRatios } from './lib/report.js';
import { spreadOf } from './lib/machine-load.js';
import { addPod, createNodeObject, nodeApi, startOverlay, stopProcess, waitFor, writeNetConf, writeNodeKubeconfig, type ClusterNode } from '../test/helpers/overlay-cluster.js';

const seconds = Number(process.argv[2] ?? 5);
const rounds = Number(process.argv[3] ?? 3);
if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600 || !Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error('usage: cni-vxlan-throughput [seconds=5] [rounds=3]');

/** The node netns of each topology, by tag. */
const nodesByTag = new Map<string, [Netns, Netns]>();

async function underlayPair(net: TestNetwork, tag: string): Promise<[Netns, Netns]> {
  const underlay = await net.namespace(`${tag}u`);
  await underlay.ip('link', 'add', 'br0', 'type', 'bridge');
  await underlay.ip('link', 'set', 'br0', 'up');
  const nodes: Netns[] = [];
  for (let i = 1; i <= 2; i++) {
    const ns = await net.node(`${tag}n${i}`);
    const [, peer] = await net.link(ns, underlay, { aName: 'ul0', aAddress: `192.168.77.${i}/24` });
    await underlay.ip('link', 'set', peer, 'master', 'br0');
    await ns.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    nodes.push(ns);
  }
  nodesByTag.set(tag, nodes as [Netns, Netns]);
  return nodes as [Netns, Netns];
}

/** iperf3 client in `client` to a server started in `server`; returns Gbit/s received. */
async function iperf(server: Netns, client: Netns, address: string): Promise<number> {
  const child = spawn('ip', ['netns', 'exec', server.name, 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  try {
    // Until the server listens (a fixed wait fails on a loaded machine).
    await waitFor('iperf3 server', async () => (await server.exec(['ss', '-Hltn', 'sport = :5201'])).stdout.trim() !== '');
    const result = await client.exec(['iperf3', '-c', address, '-p', '5201', '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
    const json = JSON.parse(result.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return json.end.sum_received.bits_per_second / 1e9;
  } finally {
    await stopProcess(child);
  }
}

/** One iperf3 run between two netns: server side, client side, the server's address. */
type Path = [server: Netns, client: Netns, address: string];

/**
 * Hand-built VXLAN pair between two node netns; with `pods`, each node also gets a bridge with a
 * pod netns behind a veth and a route to the other node's pod subnet over the tunnel.
 */
async function handVxlan(net: TestNetwork, tag: string, pods: boolean): Promise<Path> {
  const [a, b] = await underlayPair(net, tag);
  const podNs: Netns[] = [];
  for (const [i, ns, local, remote] of [[1, a, '192.168.77.1', '192.168.77.2'], [2, b, '192.168.77.2', '192.168.77.1']] as const) {
    await ns.ip('link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'local', local, 'remote', remote, 'dev', 'ul0', 'dstport', '8472');
    await ns.ip('link', 'set', 'vx0', 'mtu', '1450', 'up');
    await ns.ip('addr', 'add', `10.99.0.${i}/24`, 'dev', 'vx0');
    if (!pods) continue;
    await ns.ip('link', 'add', 'br0', 'type', 'bridge');
    await ns.ip('addr', 'add', `10.98.${i}.1/24`, 'dev', 'br0');
    await ns.ip('link', 'set', 'br0', 'up');
    const pod = await net.namespace(`${tag}p${i}`);
    await ns.ip('link', 'add', 'vh0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1450', 'netns', pod.name);
    await ns.ip('link', 'set', 'vh0', 'master', 'br0', 'up');
    await pod.ip('addr', 'add', `10.98.${i}.2/24`, 'dev', 'eth0');
    await pod.ip('link', 'set', 'eth0', 'up');
    await pod.ip('route', 'add', '10.98.0.0/16', 'via', `10.98.${i}.1`);
    await ns.ip('route', 'add', `10.98.${3 - i}.0/24`, 'via', `10.99.0.${3 - i}`, 'dev', 'vx0');
    podNs.push(pod);
  }
  return pods ? [podNs[1]!, podNs[0]!, '10.98.2.2'] : [b, a, '10.99.0.2'];
}

/** `ethtool -k` of a device as name → on/off (fixed features included). */
async function offloads(ns: Netns, dev: string): Promise<Map<string, string>> {
  const out = (await ns.exec(['ethtool', '-k', dev], { allowFailure: true })).stdout;
  return new Map([...out.matchAll(/^\s*([\w-]+): (on|off)/gm)].map((m) => [m[1]!, m[2]!]));
}

/** `ip -d` link attributes of a device (kind-specific data and bridge-port data) as name → value. */
async function linkDetails(ns: Netns, dev: string): Promise<Map<string, string>> {
  const [link] = JSON.parse((await ns.ip('-d', '-j', 'link', 'show', 'dev', dev)).stdout) as Array<Record<string, unknown> & { linkinfo?: { info_data?: object; info_slave_data?: object } }>;
  const flat = { mtu: link?.mtu, txqlen: link?.txqlen, gso_max_size: link?.gso_max_size, gro_max_size: link?.gro_max_size, ...link?.linkinfo?.info_data, ...link?.linkinfo?.info_slave_data };
  return new Map(Object.entries(flat).map(([name, value]) => [name, JSON.stringify(value)]));
}

/** net.* sysctls of a netns as name → value, device names taken out of the keys. */
async function netSysctls(ns: Netns, devices: Record<string, string>): Promise<Map<string, string>> {
  const out = (await ns.exec(['sysctl', '-a'], { allowFailure: true })).stdout;
  const entries = out.split('\n').filter((line) => line.startsWith('net.')).map((line) => line.split(' = ') as [string, string]);
  return new Map(entries.map(([key, value]) => [key.split('.').map((part) => devices[part] ?? part).join('.'), value]));
}

/** Prints what differs between two maps of settings. */
function printDiff(label: string, ours: Map<string, string>, theirs: Map<string, string>): void {
  const differ = [...ours].filter(([name, value]) => theirs.has(name) && theirs.get(name) !== value).map(([name, value]) => `${name} ${value} (hand-built ${theirs.get(name)})`);
  console.log(`${label}: ${differ.length === 0 ? 'same' : differ.join(', ')}`);
}

/** Prints the features that differ between two devices. */
async function compareOffloads(label: string, ours: [Netns, string], theirs: [Netns, string]): Promise<void> {
  const [a, b] = [await offloads(...ours), await offloads(...theirs)];
  const differ = [...a].filter(([name, value]) => b.has(name) && b.get(name) !== value).map(([name, value]) => `${name} ${value} (hand-built ${b.get(name)})`);
  console.log(`offloads, ${label}: ${differ.length === 0 ? 'same' : differ.join(', ')}`);
}

async function knodeVxlan(net: TestNetwork, bridges: LoopbackBridge[], daemons: ClusterNode[], stops: Array<() => Promise<unknown> | unknown>): Promise<Path> {
  const kit = await buildPluginKit('knt-bench-ovl-', true);
  stops.push(() => kit.cleanup());
  const cp = await startTestControlPlane({ controllers: false });
  stops.push(() => cp.stop());
  const netConf = writeNetConf(join(kit.dir, 'conf'));
  const nodesNs = await underlayPair(net, 'k');
  const api = nodeApi(cp.kubeconfigPath);
  const nodes: ClusterNode[] = [];
  for (const [i, ns] of nodesNs.entries()) {
    const dir = join(kit.dir, `n${i}`);
    mkdirSync(dir);
    const bridge = await bridgeLoopbackInto(ns.name, cp.port);
    bridges.push(bridge);
    const name = `knt-${net.id}-bench${i}`;
    await createNodeObject(api, name, `10.244.${i + 1}.0/24`);
    nodes.push({ index: i, name, ns, underlayIp: `192.168.77.${i + 1}`, podCIDR: `10.244.${i + 1}.0/24`, dir, subnetFile: join(dir, 'subnet.env'), socket: join(dir, 'knode-cni.sock'), kubeconfig: writeNodeKubeconfig(dir, bridge.port) });
  }
  daemons.push(...nodes);
  stops.push(() => Promise.all(daemons.map((node) => stopProcess(node.daemon))));
  await Promise.all(nodes.map((node) => startOverlay(kit, node, netConf, 'ul0')));
  for (const node of nodes) await waitFor('peers', async () => (await node.ns.ip('route', 'show', 'dev', 'flannel.1')).stdout.includes('onlink'));
  const pods = [await net.namespace('kp1'), await net.namespace('kp2')];
  const ips = [await addPod(kit, nodes[0]!, pods[0]!, 'bench-1'), await addPod(kit, nodes[1]!, pods[1]!, 'bench-2')];
  return [pods[1]!, pods[0]!, ips[1]!];
}

/** The knode plugin's host-side veth on a node (the one enslaved to cni0). */
async function hostVeth(ns: Netns): Promise<string> {
  const links = JSON.parse((await ns.ip('-j', 'link', 'show', 'master', 'cni0')).stdout) as { ifname: string }[];
  return links[0]?.ifname ?? 'cni0';
}

const net = new TestNetwork();
const bridges: LoopbackBridge[] = [];
const stops: Array<() => Promise<unknown> | unknown> = [];
const cleanup = async () => {
  for (const stop of stops.splice(0).reverse()) await Promise.resolve().then(stop).catch((error: unknown) => console.error('clean-up:', error));
  for (const bridge of bridges.splice(0)) await bridge.stop();
  await net.cleanup();
};
onTerminate(cleanup);
try {
  const paths = { pair: await handVxlan(net, 'h', false), handPods: await handVxlan(net, 'q', true), knode: await knodeVxlan(net, bridges, [], stops) };
  const [knodeNode, handNode] = [nodesByTag.get('k')![0], nodesByTag.get('q')![0]];
  await compareOffloads('vxlan device (flannel.1 vs vx0)', [knodeNode, 'flannel.1'], [handNode, 'vx0']);
  const knodeVeth = await hostVeth(knodeNode);
  await compareOffloads('host-side veth', [knodeNode, knodeVeth], [handNode, 'vh0']);
  await compareOffloads('bridge (cni0 vs br0)', [knodeNode, 'cni0'], [handNode, 'br0']);
  await compareOffloads('pod eth0', [paths.knode[1], 'eth0'], [paths.handPods[1], 'eth0']);
  for (const [ours, theirs] of [['flannel.1', 'vx0'], ['cni0', 'br0'], [knodeVeth, 'vh0']]) printDiff(`link settings, ${ours} vs ${theirs}`, await linkDetails(knodeNode, ours!), await linkDetails(handNode, theirs!));
  printDiff('net sysctls, node netns', await netSysctls(knodeNode, { 'flannel/1': 'VXLAN', cni0: 'BRIDGE', [knodeVeth]: 'VETH' }), await netSysctls(handNode, { vx0: 'VXLAN', br0: 'BRIDGE', vh0: 'VETH' }));
  const results: Record<keyof typeof paths, number[]> = { pair: [], handPods: [], knode: [] };
  const names = Object.keys(paths) as (keyof typeof paths)[];
  for (let round = 0; round < rounds; round++) {
    // Rotated each round so no path always runs first (or right after the same neighbour).
    for (const name of [...names.slice(round % names.length), ...names.slice(0, round % names.length)]) results[name].push(await iperf(...paths[name]));
  }
  const toPods = roundRatios(results.knode, results.handPods);
  const toPair = roundRatios(results.knode, results.pair);
  console.log(`iperf3 TCP ${seconds}s × ${rounds} interleaved rounds, MTU 1450 inner, two node netns over a veth/bridge underlay`);
  console.log(`hand-built VXLAN pair, node to node: ${results.pair.map((v) => v.toFixed(2)).join(', ')} Gbit/s`);
  console.log(`hand-built pod path (veth + bridge + vxlan), pod to pod: ${results.handPods.map((v) => v.toFixed(2)).join(', ')} Gbit/s`);
  console.log(`knode overlay, pod to pod (veth + cni0 + flannel.1): ${results.knode.map((v) => v.toFixed(2)).join(', ')} Gbit/s`);
  console.log(`ratio knode / hand-built pod path per round: ${toPods.map((r) => r.toFixed(2)).join(', ')}; knode / node-to-node pair: ${toPair.map((r) => r.toFixed(2)).join(', ')}`);
  const description = `iperf3 TCP ${seconds} s, median of ${rounds} interleaved rounds, two node netns over a veth/bridge underlay`;
  reportFigure({
    name: 'overlay TCP throughput, pod to pod',
    value: spreadOf(results.knode).median,
    unit: 'Gbit/s',
    baseline: spreadOf(results.handPods).median,
    baselineName: 'hand-built pod path of the same shape: pod veth → bridge → vxlan (ip link add vxlan, MTU 1450) → underlay → vxlan → bridge → veth → pod',
    better: 'higher',
    description,
    roundRatios: toPods,
  });
  reportFigure({
    name: 'overlay TCP throughput, pod to pod vs node-to-node pair',
    value: spreadOf(results.knode).median,
    unit: 'Gbit/s',
    baseline: spreadOf(results.pair).median,
    baselineName: 'hand-built VXLAN pair node to node (ip link add vxlan, same MTU 1450, no veth/bridge hop: the tunnel alone)',
    better: 'higher',
    description,
    roundRatios: toPair,
  });
} finally {
  await cleanup();
}
