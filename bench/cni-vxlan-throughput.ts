/**
 * Pod-to-pod TCP throughput across two nodes over knode's VXLAN overlay (knode overlay + knode
 * CNI plugin, pods behind cni0) versus a VXLAN pair configured by hand between two netns with
 * the same MTU (1450), measured with iperf3 in the same run. Everything lives in knt-* netns
 * joined by an underlay bridge in its own netns; the control plane listens on 127.0.0.1 only.
 *
 *   npx vite-node bench/cni-vxlan-throughput.ts [seconds=5]     (root, iperf3)
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestNetwork, type Netns } from '../test/helpers/netns.js';
import { bridgeLoopbackInto, type LoopbackBridge } from '../test/helpers/loopback-bridge.js';
import { startTestControlPlane } from '../test/helpers/controlplane.js';
import { buildPluginKit } from '../test/helpers/cni-harness.js';
import { onTerminate, reportFigure } from './lib/report.js';
import { addPod, createNodeObject, nodeApi, startOverlay, stopProcess, waitFor, writeNetConf, writeNodeKubeconfig, type ClusterNode } from '../test/helpers/overlay-cluster.js';

const seconds = Number(process.argv[2] ?? 5);

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
  return nodes as [Netns, Netns];
}

/** iperf3 client in `client` to a server started in `server`; returns Gbit/s received. */
async function iperf(server: Netns, client: Netns, address: string): Promise<number> {
  const child = spawn('ip', ['netns', 'exec', server.name, 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 700));
  try {
    const result = await client.exec(['iperf3', '-c', address, '-p', '5201', '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
    const json = JSON.parse(result.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return json.end.sum_received.bits_per_second / 1e9;
  } finally {
    await stopProcess(child);
  }
}

async function handVxlan(net: TestNetwork): Promise<number> {
  const [a, b] = await underlayPair(net, 'h');
  for (const [ns, local, remote, inner] of [[a, '192.168.77.1', '192.168.77.2', '10.99.0.1/24'], [b, '192.168.77.2', '192.168.77.1', '10.99.0.2/24']] as const) {
    await ns.ip('link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'local', local, 'remote', remote, 'dev', 'ul0', 'dstport', '8472');
    await ns.ip('link', 'set', 'vx0', 'mtu', '1450', 'up');
    await ns.ip('addr', 'add', inner, 'dev', 'vx0');
  }
  return iperf(b, a, '10.99.0.2');
}

async function knodeVxlan(net: TestNetwork, bridges: LoopbackBridge[], daemons: ClusterNode[]): Promise<number> {
  const kit = await buildPluginKit('knt-bench-ovl-', true);
  const cp = await startTestControlPlane({ controllers: false });
  try {
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
    await Promise.all(nodes.map((node) => startOverlay(kit, node, netConf, 'ul0')));
    for (const node of nodes) await waitFor('peers', async () => (await node.ns.ip('route', 'show', 'dev', 'flannel.1')).stdout.includes('onlink'));
    const pods = [await net.namespace('kp1'), await net.namespace('kp2')];
    const ips = [await addPod(kit, nodes[0]!, pods[0]!, 'bench-1'), await addPod(kit, nodes[1]!, pods[1]!, 'bench-2')];
    return await iperf(pods[1]!, pods[0]!, ips[1]!);
  } finally {
    await Promise.all(daemons.map((node) => stopProcess(node.daemon)));
    await cp.stop();
    kit.cleanup();
  }
}

const net = new TestNetwork();
const bridges: LoopbackBridge[] = [];
const cleanup = async () => {
  for (const bridge of bridges.splice(0)) await bridge.stop();
  await net.cleanup();
};
onTerminate(cleanup);
try {
  const hand = await handVxlan(net);
  const knode = await knodeVxlan(net, bridges, []);
  console.log(`iperf3 TCP ${seconds}s, MTU 1450 inner, two netns over a veth/bridge underlay`);
  console.log(`hand-configured VXLAN pair (node to node): ${hand.toFixed(2)} Gbit/s`);
  console.log(`knode overlay pod to pod (veth+cni0+flannel.1): ${knode.toFixed(2)} Gbit/s`);
  console.log(`ratio knode / hand: ${(knode / hand).toFixed(2)}`);
  reportFigure({
    name: 'overlay TCP throughput, pod to pod',
    value: knode,
    unit: 'Gbit/s',
    baseline: hand,
    baselineName: 'hand-built VXLAN pair node to node (ip link add vxlan, same MTU 1450, no veth/bridge hop)',
    better: 'higher',
    description: `iperf3 TCP ${seconds} s, two node netns over a veth/bridge underlay`,
  });
} finally {
  await cleanup();
}
