/**
 * `knode overlay` on three "node" netns joined by an underlay bridge (in its own test netns),
 * against the control-plane stub: leases from spec.podCIDR, flannel annotations, pod→pod across
 * nodes (ping and TCP with busybox nc), pod→own node, node→remote pod, removal of a node removes
 * its entries on the others, and a daemon restart keeps a long-running TCP flow alive.
 * Nothing runs in the root netns except the control plane on 127.0.0.1.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import type { LoopbackBridge } from '../helpers/loopback-bridge.js';
import { buildOverlayNodes } from './overlay-nodes.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { buildPluginKit, type PluginKit } from '../helpers/cni-harness.js';
import { addPod, nodeApi, startOverlay, stopProcess, waitFor, writeNetConf, type ClusterNode } from '../helpers/overlay-cluster.js';

const env = await prerequisites('root', 'command:ip', 'command:bridge', 'command:nsenter', 'command:perl', 'command:busybox', 'command:ping');

describe.skipIf(env.skip)('knode overlay across three node netns', () => {
  const net = new TestNetwork();
  const bridges: LoopbackBridge[] = [];
  const nodes: ClusterNode[] = [];
  const pods: Netns[] = [];
  const podIps: string[] = [];
  let kit: PluginKit;
  let cp: TestControlPlane;
  let netConf: string;

  beforeAll(async () => {
    kit = await buildPluginKit('knt-ovl-', true);
    cp = await startTestControlPlane({ controllers: false });
    netConf = writeNetConf(join(kit.dir, 'conf'));
    nodes.push(...(await buildOverlayNodes(net, cp, kit, { count: 3, underlayPrefix: '192.168.77', nameSuffix: 'node', podCIDR: (i) => `10.244.${i}.0/24` }, bridges)));
    await Promise.all(nodes.map((node) => startOverlay(kit, node, netConf, 'ul0', ['--ip-masq'])));
    for (const node of nodes) {
      await waitFor(`${node.name} to program its peers`, async () => (await node.ns.ip('-4', 'route', 'show', 'dev', 'flannel.1')).stdout.split('\n').filter((l) => l.includes('onlink')).length === 2);
      const pod = await net.namespace(`p${node.index}`);
      pods.push(pod);
      podIps.push(await addPod(kit, node, pod, `pod-${node.index}`));
    }
  }, 240_000);

  afterAll(async () => {
    await Promise.all(nodes.map((node) => stopProcess(node.daemon)));
    for (const bridge of bridges) await bridge.stop();
    await net.cleanup();
    await cp?.stop();
    kit?.cleanup();
  });

  it('leases podCIDR, publishes flannel annotations and writes subnet.env', async () => {
    const api = nodeApi(cp.kubeconfigPath);
    const node = await api.readNode({ name: nodes[0]!.name });
    const annotations = node.metadata!.annotations!;
    expect(annotations['flannel.alpha.coreos.com/backend-type']).toBe('vxlan');
    expect(annotations['flannel.alpha.coreos.com/public-ip']).toBe('192.168.77.1');
    expect(annotations['flannel.alpha.coreos.com/kube-subnet-manager']).toBe('true');
    const data = JSON.parse(annotations['flannel.alpha.coreos.com/backend-data']!) as { VNI: number; VtepMAC: string };
    expect(data.VNI).toBe(1);
    const link = await nodes[0]!.ns.ip('-d', 'link', 'show', 'flannel.1');
    expect(link.stdout).toContain(data.VtepMAC);
    expect(link.stdout).toMatch(/vxlan id 1 local 192\.168\.77\.1 dev ul0 .*dstport 8472 nolearning/);
    expect(link.stdout).toContain('mtu 1450');
    expect(readFileSync(nodes[0]!.subnetFile, 'utf8')).toBe('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    const nat = (await nodes[0]!.ns.exec(['iptables', '-w', '-t', 'nat', '-S'])).stdout;
    expect(nat).toContain('-A POSTROUTING -m comment --comment "knode overlay masquerade" -j KNODE-OVERLAY-POSTRTG');
    expect(nat).toMatch(/-A KNODE-OVERLAY-POSTRTG -s 10\.244\.1\.0\/24 -d 10\.244\.0\.0\/16 .*-j RETURN/);
    expect(nat).toMatch(/-A KNODE-OVERLAY-POSTRTG -s 10\.244\.0\.0\/16 ! -d 224\.0\.0\.0\/4 .*-j MASQUERADE/);
    expect(podIps[0]).toMatch(/^10\.244\.1\./);
    expect(podIps[1]).toMatch(/^10\.244\.2\./);
    // ARP, FDB and route for a peer
    const n1 = nodes[0]!.ns;
    expect((await n1.ip('neigh', 'show', 'dev', 'flannel.1')).stdout).toMatch(/10\.244\.2\.0 lladdr [0-9a-f:]+ PERMANENT/);
    expect((await n1.exec(['bridge', 'fdb', 'show', 'dev', 'flannel.1'])).stdout).toContain('dst 192.168.77.2');
    expect((await n1.ip('route', 'show', 'dev', 'flannel.1')).stdout).toContain('10.244.2.0/24 via 10.244.2.0 onlink');
  });

  it('pod→pod across nodes (ping and TCP), pod→own node, node→remote pod', async () => {
    const [p1, p2, p3] = pods as [Netns, Netns, Netns];
    for (const [from, to] of [[p1, podIps[1]!], [p1, podIps[2]!], [p3, podIps[0]!]] as const) {
      const ping = await from.exec(['ping', '-c', '2', '-W', '2', to], { allowFailure: true, timeoutMs: 20_000 });
      expect(ping.code, `${from.name} → ${to}: ${ping.stdout}`).toBe(0);
    }
    const own = await p2.exec(['ping', '-c', '1', '-W', '2', '192.168.77.2'], { allowFailure: true });
    expect(own.code, own.stdout).toBe(0);
    const nodeToPod = await nodes[0]!.ns.exec(['ping', '-c', '1', '-W', '2', podIps[1]!], { allowFailure: true });
    expect(nodeToPod.code, nodeToPod.stdout).toBe(0);
    const server = p2.exec(['timeout', '20', 'busybox', 'nc', '-l', '-p', '5000'], { allowFailure: true, timeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const client = await p1.exec(['sh', '-c', `echo hello-across-nodes | timeout 10 busybox nc ${podIps[1]} 5000`], { allowFailure: true, timeoutMs: 20_000 });
    expect(client.code).toBe(0);
    expect((await server).stdout).toContain('hello-across-nodes');
  });

  it('a daemon restart keeps a long-running TCP flow alive', async () => {
    const [p1, p2] = pods as [Netns, Netns];
    // The server's stdin stays open (busybox nc closes the connection on stdin EOF).
    const server = spawn('ip', ['netns', 'exec', p2.name, 'timeout', '45', 'busybox', 'nc', '-l', '-p', '5001'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let serverOutput = '';
    server.stdout!.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const lines = 40;
    const client = spawn('ip', ['netns', 'exec', p1.name, 'sh', '-c', `i=0; while [ $i -lt ${lines} ]; do echo line$i; i=$((i+1)); sleep 0.25; done | timeout 30 busybox nc ${podIps[1]} 5001`], { stdio: 'ignore' });
    const clientDone = new Promise<number>((resolve) => client.once('exit', (code) => resolve(code ?? 1)));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const routesBefore = (await nodes[1]!.ns.ip('route', 'show', 'dev', 'flannel.1')).stdout;
    await stopProcess(nodes[1]!.daemon);
    // A stale peer from a "previous run" (a node that no longer exists) must be removed on restart.
    const n2 = nodes[1]!.ns;
    await n2.ip('neigh', 'replace', '10.244.99.0', 'lladdr', '0a:0b:0c:0d:0e:0f', 'dev', 'flannel.1', 'nud', 'permanent');
    await n2.exec(['bridge', 'fdb', 'replace', '0a:0b:0c:0d:0e:0f', 'dev', 'flannel.1', 'dst', '192.168.77.99', 'self', 'permanent']);
    await n2.ip('route', 'replace', '10.244.99.0/24', 'via', '10.244.99.0', 'dev', 'flannel.1', 'onlink');
    await startOverlay(kit, nodes[1]!, netConf, 'ul0', ['--ip-masq']);
    // Removal runs route → FDB → ARP, so the ARP entry going is the end of it.
    await waitFor('the stale ARP entry to go', async () => !(await n2.ip('neigh', 'show', 'dev', 'flannel.1')).stdout.includes('10.244.99.0'));
    expect((await n2.ip('route', 'show', 'dev', 'flannel.1')).stdout).not.toContain('10.244.99.0/24');
    expect((await n2.exec(['bridge', 'fdb', 'show', 'dev', 'flannel.1'])).stdout).not.toContain('192.168.77.99');
    expect((await nodes[1]!.ns.ip('route', 'show', 'dev', 'flannel.1')).stdout).toBe(routesBefore);
    expect(await clientDone).toBe(0);
    await waitFor('the last line at the server', async () => serverOutput.includes(`line${lines - 1}\n`), 20_000).catch(() => undefined);
    await stopProcess(server);
    const received = serverOutput.trim().split('\n');
    expect(received).toHaveLength(lines);
    expect(received[lines - 1]).toBe(`line${lines - 1}`);
  }, 90_000);

  it('removing a node removes its route, FDB and ARP entries on the others', async () => {
    const gone = nodes[2]!;
    await stopProcess(gone.daemon);
    await nodeApi(cp.kubeconfigPath).deleteNode({ name: gone.name });
    for (const node of nodes.slice(0, 2)) {
      await waitFor(`${node.name} to drop ${gone.podCIDR}`, async () => !(await node.ns.ip('neigh', 'show', 'dev', 'flannel.1')).stdout.includes('10.244.3.0'));
      expect((await node.ns.ip('route', 'show', 'dev', 'flannel.1')).stdout).not.toContain('10.244.3.0/24');
      expect((await node.ns.exec(['bridge', 'fdb', 'show', 'dev', 'flannel.1'])).stdout).not.toContain('192.168.77.3');
      expect((await node.ns.ip('route', 'show', 'dev', 'flannel.1')).stdout).toContain(node.index === 1 ? '10.244.2.0/24' : '10.244.1.0/24');
    }
  }, 90_000);
});
