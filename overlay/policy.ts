/**
 * Decisions of the overlay daemon, pure (no I/O): the lease from a Node object, the flannel
 * annotations to publish and to read from peers, subnet.env text, and which peers to add and
 * remove. Mirrors flannel's kube subnet manager (pkg/subnet/kube) and vxlan backend
 * (pkg/backend/vxlan): podCIDR must lie inside Network; annotations
 * flannel.alpha.coreos.com/{backend-type,backend-data,public-ip,kube-subnet-manager}.
 */
import ipaddr from 'ipaddr.js';
import { canonicalCIDR, cidrContains, isValidCIDR, isValidIP } from '../lib/net.js';

const annotationPrefix = 'flannel.alpha.coreos.com';
export const annotations = {
  backendType: `${annotationPrefix}/backend-type`,
  backendData: `${annotationPrefix}/backend-data`,
  publicIp: `${annotationPrefix}/public-ip`,
  kubeSubnetManager: `${annotationPrefix}/kube-subnet-manager`,
} as const;

/** The few Node fields the daemon reads. */
export interface NodeView {
  name: string;
  podCIDR?: string;
  annotations: Record<string, string>;
}

export interface Peer {
  node: string;
  /** Canonical pod subnet of the peer (10.244.2.0/24). */
  subnet: string;
  publicIp: string;
  vtepMac: string;
  vni: number;
}

/** The node's lease: its podCIDR, checked against Network. Throws with a clear message. */
/** An IPv4 address as a number (for range comparisons). */
const ipv4Number = (address: string): number => ipaddr.IPv4.parse(address).toByteArray().reduce((n, byte) => n * 256 + byte, 0);

/**
 * The lease is the node's podCIDR (the control plane's node IPAM allocates it, as flannel's kube
 * subnet manager takes spec.podCIDR). net-conf's SubnetMin/SubnetMax bound what this overlay
 * accepts: a podCIDR outside [SubnetMin, SubnetMax] is refused with a clear error, as flannel's
 * own allocator never hands out a subnet outside them.
 */
export function leaseFromNode(node: NodeView, network: string, bounds: { SubnetMin?: string | undefined; SubnetMax?: string | undefined } = {}): string {
  if (!node.podCIDR) throw new Error(`node "${node.name}" has no spec.podCIDR yet`);
  if (!isValidCIDR(node.podCIDR)) throw new Error(`node "${node.name}" has an invalid podCIDR "${node.podCIDR}"`);
  const subnet = canonicalCIDR(node.podCIDR);
  if (!cidrContains(network, subnet)) throw new Error(`node "${node.name}" podCIDR ${subnet} is not inside the Network ${network}`);
  if (subnet.includes('.')) {
    const start = ipv4Number(subnet.split('/')[0]!);
    if (bounds.SubnetMin && start < ipv4Number(bounds.SubnetMin)) throw new Error(`node "${node.name}" podCIDR ${subnet} is below net-conf SubnetMin ${bounds.SubnetMin}`);
    if (bounds.SubnetMax && start > ipv4Number(bounds.SubnetMax)) throw new Error(`node "${node.name}" podCIDR ${subnet} is above net-conf SubnetMax ${bounds.SubnetMax}`);
  }
  return subnet;
}

/** The annotations this node publishes (flannel's vxlan backend data is {"VNI":n,"VtepMAC":"…"}). */
export function ownAnnotations(vni: number, vtepMac: string, publicIp: string): Record<string, string> {
  return {
    [annotations.backendType]: 'vxlan',
    [annotations.backendData]: JSON.stringify({ VNI: vni, VtepMAC: vtepMac }),
    [annotations.publicIp]: publicIp,
    [annotations.kubeSubnetManager]: 'true',
  };
}

/** A peer from a Node object, or undefined when it has not published a usable VTEP yet. */
export function peerFromNode(node: NodeView, network: string): Peer | undefined {
  const a = node.annotations;
  if (a[annotations.backendType] !== 'vxlan' || !node.podCIDR || !isValidCIDR(node.podCIDR)) return undefined;
  const publicIp = a[annotations.publicIp];
  if (!publicIp || !isValidIP(publicIp)) return undefined;
  let data: { VNI?: unknown; VtepMAC?: unknown };
  try {
    data = JSON.parse(a[annotations.backendData] ?? '') as typeof data;
  } catch {
    return undefined;
  }
  if (typeof data.VtepMAC !== 'string' || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(data.VtepMAC)) return undefined;
  const subnet = canonicalCIDR(node.podCIDR);
  if (!cidrContains(network, subnet)) return undefined;
  return { node: node.name, subnet, publicIp, vtepMac: data.VtepMAC.toLowerCase(), vni: Number(data.VNI ?? 1) };
}

/** The peers to program: every other node with a usable VTEP and the same VNI. */
export function desiredPeers(nodes: NodeView[], self: string, network: string, vni: number): Peer[] {
  return nodes
    .filter((node) => node.name !== self)
    .map((node) => peerFromNode(node, network))
    .filter((peer): peer is Peer => peer !== undefined && peer.vni === vni)
    .sort((a, b) => a.subnet.localeCompare(b.subnet));
}

const peerKey = (peer: Peer) => `${peer.subnet}|${peer.publicIp}|${peer.vtepMac}`;

/** What changes: peers whose entries must be (re)written and subnets whose entries must go. */
export function planPeers(programmed: ReadonlyMap<string, Peer>, desired: Peer[]): { add: Peer[]; remove: Peer[] } {
  const wanted = new Map(desired.map((peer) => [peer.subnet, peer]));
  const add = desired.filter((peer) => {
    const current = programmed.get(peer.subnet);
    return !current || peerKey(current) !== peerKey(peer);
  });
  const remove = [...programmed.values()].filter((peer) => {
    const next = wanted.get(peer.subnet);
    return !next || peerKey(next) !== peerKey(peer);
  });
  return { add, remove };
}

/** The VTEP address of a subnet: its network address (flannel puts 10.244.1.0/32 on flannel.1). */
export function vtepAddress(subnet: string): string {
  return subnet.split('/')[0]!;
}

/** DirectRouting applies when the peer's public IP is on the local underlay's own L2 subnet. */
export function sameL2(localCidr: string, peerIp: string): boolean {
  try {
    return cidrContains(canonicalCIDR(localCidr), `${peerIp}/32`);
  } catch {
    return false;
  }
}

/** flannel's subnet.env: FLANNEL_SUBNET is the subnet's first host with the prefix (10.244.1.1/24). */
export function subnetEnvText(network: string, subnet: string, mtu: number, ipMasq: boolean): string {
  const [base, bits] = ipaddr.parseCIDR(subnet);
  const bytes = base.toByteArray();
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! + 1;
  const first = ipaddr.fromByteArray(bytes).toString();
  return `FLANNEL_NETWORK=${network}\nFLANNEL_SUBNET=${first}/${bits}\nFLANNEL_MTU=${mtu}\nFLANNEL_IPMASQ=${ipMasq}\n`;
}

/** VXLAN over IPv4 adds 50 bytes (outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8). */
export function vxlanMtu(underlayMtu: number, configured?: number): number {
  return configured ?? underlayMtu - 50;
}
