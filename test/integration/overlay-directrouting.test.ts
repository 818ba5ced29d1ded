/**
 * `knode overlay` with DirectRouting (flannel's vxlan backend option): peers on the same L2
 * underlay subnet get a plain route via their address instead of VXLAN entries, and pods still
 * reach each other. Two node netns on an underlay bridge in its own test netns.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import type { LoopbackBridge } from '../helpers/loopback-bridge.js';
import { buildOverlayNodes } from './overlay-nodes.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { buildPluginKit, type PluginKit } from '../helpers/cni-harness.js';
import { addPod, startOverlay, stopProcess, waitFor, writeNetConf, type ClusterNode } from '../helpers/overlay-cluster.js';

const env = await prerequisites('root', 'command:ip', 'command:bridge', 'command:nsenter', 'command:perl', 'command:ping');

describe.skipIf(env.skip)('knode overlay with DirectRouting', () => {
  const net = new TestNetwork();
  const bridges: LoopbackBridge[] = [];
  const nodes: ClusterNode[] = [];
  let kit: PluginKit;
  let cp: TestControlPlane;

  beforeAll(async () => {
    kit = await buildPluginKit('knt-ovd-', true);
    cp = await startTestControlPlane({ controllers: false });
    const netConf = writeNetConf(join(kit.dir, 'conf'), { Network: '10.244.0.0/16', Backend: { Type: 'vxlan', VNI: 7, Port: 4789, DirectRouting: true } });
    nodes.push(...(await buildOverlayNodes(net, cp, kit, { count: 2, underlayPrefix: '192.168.78', nameSuffix: 'dr', podCIDR: (i) => `10.244.${20 + i}.0/24` }, bridges)));
    await Promise.all(nodes.map((node) => startOverlay(kit, node, netConf, 'ul0')));
  }, 180_000);

  afterAll(async () => {
    await Promise.all(nodes.map((node) => stopProcess(node.daemon)));
    for (const bridge of bridges) await bridge.stop();
    await net.cleanup();
    await cp?.stop();
    kit?.cleanup();
  });

  it('routes same-subnet peers directly and pods still reach each other', async () => {
    const [n1, n2] = nodes as [ClusterNode, ClusterNode];
    await waitFor('a direct route to the peer subnet', async () => (await n1.ns.ip('route', 'show', '10.244.22.0/24')).stdout.includes('via 192.168.78.2 dev ul0'));
    expect((await n1.ns.ip('-d', 'link', 'show', 'flannel.7')).stdout).toMatch(/vxlan id 7 .*dstport 4789/);
    expect((await n1.ns.ip('route', 'show', 'dev', 'flannel.7')).stdout).not.toContain('10.244.22.0/24');
    const pods: Netns[] = [await net.namespace('p1'), await net.namespace('p2')];
    const ips = [await addPod(kit, n1, pods[0]!, 'dr-1'), await addPod(kit, n2, pods[1]!, 'dr-2')];
    const ping = await pods[0]!.exec(['ping', '-c', '2', '-W', '2', ips[1]!], { allowFailure: true, timeoutMs: 20_000 });
    expect(ping.code, ping.stdout).toBe(0);
  });
});
