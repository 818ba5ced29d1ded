/**
 * Shared set-up of the overlay tests: an "underlay" test netns with a bridge, and N node netns
 * joined to it by veths (`ul0`, 192.168.X.i/24, no default route), each with forwarding on, a
 * Node object with its podCIDR in the control plane, and a kubeconfig reaching the control plane
 * through a loopback bridge into the node netns.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestNetwork } from '../helpers/netns.js';
import { bridgeLoopbackInto, type LoopbackBridge } from '../helpers/loopback-bridge.js';
import type { TestControlPlane } from '../helpers/controlplane.js';
import type { PluginKit } from '../helpers/cni-harness.js';
import { createNodeObject, nodeApi, writeNodeKubeconfig, type ClusterNode } from '../helpers/overlay-cluster.js';

export interface OverlayNodesPlan {
  count: number;
  /** First three octets of the underlay /24, e.g. "192.168.77". */
  underlayPrefix: string;
  /** Node name suffix: node i is named knt-<net id>-<suffix><i>. */
  nameSuffix: string;
  /** The pod CIDR of node i. */
  podCIDR: (index: number) => string;
}

/** Builds the underlay and the nodes; every bridge made is pushed onto `bridges` for cleanup. */
export async function buildOverlayNodes(net: TestNetwork, cp: TestControlPlane, kit: PluginKit, plan: OverlayNodesPlan, bridges: LoopbackBridge[]): Promise<ClusterNode[]> {
  const underlay = await net.namespace('u');
  await underlay.ip('link', 'add', 'br0', 'type', 'bridge');
  await underlay.ip('link', 'set', 'br0', 'up');
  const api = nodeApi(cp.kubeconfigPath);
  const nodes: ClusterNode[] = [];
  for (let i = 1; i <= plan.count; i++) {
    const ns = await net.node(`n${i}`);
    const underlayIp = `${plan.underlayPrefix}.${i}`;
    const [, peer] = await net.link(ns, underlay, { aName: 'ul0', aAddress: `${underlayIp}/24` });
    await underlay.ip('link', 'set', peer, 'master', 'br0');
    await ns.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    const dir = join(kit.dir, `n${i}`);
    mkdirSync(dir);
    const bridge = await bridgeLoopbackInto(ns.name, cp.port);
    bridges.push(bridge);
    const name = `knt-${net.id}-${plan.nameSuffix}${i}`;
    const podCIDR = plan.podCIDR(i);
    await createNodeObject(api, name, podCIDR);
    nodes.push({ index: i, name, ns, underlayIp, podCIDR, dir, subnetFile: join(dir, 'subnet.env'), socket: join(dir, 'knode-cni.sock'), kubeconfig: writeNodeKubeconfig(dir, bridge.port) });
  }
  return nodes;
}
