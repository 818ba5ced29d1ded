/**
 * Kernel side of the overlay, in the daemon's own netns: the VXLAN device and per-peer entries
 * as flannel's vxlan backend programs them (pkg/backend/vxlan/vxlan_network.go): for a peer,
 * ARP entry (peer VTEP address → peer VTEP MAC), then FDB entry (peer VTEP MAC → peer public
 * IP), then the onlink route for its subnet via its VTEP address; undone in reverse. Every
 * call is "replace"/"missing is fine", so a restarted daemon re-adopts what is there without
 * disturbing traffic. Uses iproute2's `ip`/`bridge` (FDB and VXLAN attributes are not covered
 * by the netlink package's typed API).
 */
import { release } from 'node:os';
import { commandOnPath, run, type ExecResult } from '../lib/exec.js';
import type { IpRunner } from '../lib/ip/runner.js';
import { vtepAddress, type Peer } from './policy.js';

/** `ip …` and `bridge …` go through the runner; anything else (ethtool) is run as is. */
async function cmd(ip: IpRunner, command: string[], allowMissing = false): Promise<ExecResult> {
  const [program, ...args] = command;
  const result = program === 'ip' ? await ip.ip(args) : program === 'bridge' ? await ip.bridge(args) : await run(command, { allowFailure: true, timeoutMs: 20_000 });
  if (result.code !== 0 && !(allowMissing && /No such|Cannot find|not found|does not exist|No such process/i.test(result.stderr))) {
    throw new Error(`command "${command.join(' ')}" failed: ${result.stderr.trim()}`);
  }
  return result;
}

/** True for kernels older than 5.7 (see ensureVxlan). Pure. */
export function kernelNeedsTxOffWorkaround(kernelRelease: string): boolean {
  const match = /^(\d+)\.(\d+)/.exec(kernelRelease);
  if (!match) return true;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major < 5 || (major === 5 && minor < 7);
}

export interface Underlay {
  dev: string;
  ip: string;
  /** Address with prefix (for DirectRouting's same-subnet test). */
  cidr: string;
  mtu: number;
}

interface AddrJson {
  ifname: string;
  mtu: number;
  address?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** The interface for inter-node traffic: --iface, else the default route's device. */
export async function findUnderlay(ip: IpRunner, iface?: string): Promise<Underlay> {
  let dev = iface;
  if (!dev) {
    const routes = JSON.parse((await cmd(ip, ['ip', '-j', '-4', 'route', 'show', 'default'])).stdout || '[]') as { dev?: string }[];
    dev = routes[0]?.dev;
    if (!dev) throw new Error('no --iface given and no default route to pick the inter-node interface from');
  }
  const link = (JSON.parse((await cmd(ip, ['ip', '-j', '-4', 'addr', 'show', 'dev', dev])).stdout || '[]') as AddrJson[])[0];
  const inet = link?.addr_info?.find((info) => info.family === 'inet');
  if (!link || !inet) throw new Error(`interface "${dev}" has no IPv4 address`);
  return { dev, ip: inet.local, cidr: `${inet.local}/${inet.prefixlen}`, mtu: link.mtu };
}

interface VxlanSpec {
  name: string;
  vni: number;
  port: number;
  mtu: number;
  underlay: Underlay;
  /** The node's subnet; its network address goes on the device as /32. */
  subnet: string;
}

interface VxlanJson extends AddrJson {
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; link?: string } };
}

/** Creates or re-adopts the VXLAN device; returns its MAC. Recreates it only when its identity differs. */
export async function ensureVxlan(ip: IpRunner, spec: VxlanSpec): Promise<string> {
  const shown = await ip.ip(['-j', '-d', 'addr', 'show', 'dev', spec.name]);
  const current = shown.code === 0 ? (JSON.parse(shown.stdout) as VxlanJson[])[0] : undefined;
  const data = current?.linkinfo?.info_data;
  const matches = current?.linkinfo?.info_kind === 'vxlan' && data?.id === spec.vni && data?.local === spec.underlay.ip && data?.port === spec.port;
  if (current && !matches) await cmd(ip, ['ip', 'link', 'del', spec.name], true);
  if (!matches) {
    await cmd(ip, ['ip', 'link', 'add', spec.name, 'type', 'vxlan', 'id', String(spec.vni), 'local', spec.underlay.ip, 'dev', spec.underlay.dev, 'dstport', String(spec.port), 'nolearning']);
  }
  await cmd(ip, ['ip', 'link', 'set', spec.name, 'mtu', String(spec.mtu), 'up']);
  const address = `${vtepAddress(spec.subnet)}/32`;
  for (const info of (matches ? current?.addr_info : []) ?? []) {
    if (info.family === 'inet' && `${info.local}/${info.prefixlen}` !== address) await cmd(ip, ['ip', 'addr', 'del', `${info.local}/${info.prefixlen}`, 'dev', spec.name], true);
  }
  await cmd(ip, ['ip', 'addr', 'replace', address, 'dev', spec.name]);
  // flannel #1268 / kubernetes#88986: before Linux 5.7 ("netfilter: nat: never update the UDP
  // checksum when it's 0") NATed VXLAN packets with tx checksum offload got corrupt checksums
  // and were retransmitted after ~1 s; flannel turns offload off there. On fixed kernels it stays
  // on: turning it off costs ~10x throughput (bench/cni-vxlan-throughput.ts).
  if (kernelNeedsTxOffWorkaround(release()) && commandOnPath('ethtool')) await cmd(ip, ['ethtool', '-K', spec.name, 'tx', 'off']).catch(() => undefined);
  const link = (JSON.parse((await cmd(ip, ['ip', '-j', 'link', 'show', 'dev', spec.name])).stdout) as AddrJson[])[0];
  return link?.address ?? '';
}

/** ARP → FDB → route, undone in reverse when a later step fails. */
export async function addVxlanPeer(ip: IpRunner, device: string, peer: Peer): Promise<void> {
  const vtep = vtepAddress(peer.subnet);
  const steps: [string[], string[]][] = [
    [['ip', 'neigh', 'replace', vtep, 'lladdr', peer.vtepMac, 'dev', device, 'nud', 'permanent'], ['ip', 'neigh', 'del', vtep, 'dev', device]],
    [['bridge', 'fdb', 'replace', peer.vtepMac, 'dev', device, 'dst', peer.publicIp, 'self', 'permanent'], ['bridge', 'fdb', 'del', peer.vtepMac, 'dev', device, 'self']],
    [['ip', 'route', 'replace', peer.subnet, 'via', vtep, 'dev', device, 'onlink'], ['ip', 'route', 'del', peer.subnet, 'dev', device]],
  ];
  const done: string[][] = [];
  try {
    for (const [apply, undo] of steps) {
      await cmd(ip, apply);
      done.push(undo);
    }
  } catch (error) {
    for (const undo of done.reverse()) await cmd(ip, undo, true).catch(() => undefined);
    throw new Error(`failed to program peer ${peer.node} (${peer.subnet})`, { cause: error });
  }
}

/** Route → FDB → ARP (reverse of add). Missing entries are fine. */
export async function removeVxlanPeer(ip: IpRunner, device: string, peer: Pick<Peer, 'subnet' | 'vtepMac'>): Promise<void> {
  const vtep = vtepAddress(peer.subnet);
  await cmd(ip, ['ip', 'route', 'del', peer.subnet, 'dev', device], true);
  await cmd(ip, ['bridge', 'fdb', 'del', peer.vtepMac, 'dev', device, 'self'], true);
  await cmd(ip, ['ip', 'neigh', 'del', vtep, 'dev', device], true);
}

/** DirectRouting: a plain route via the peer's own address on the underlay. */
export async function addDirectPeer(ip: IpRunner, underlay: Underlay, peer: Peer): Promise<void> {
  await cmd(ip, ['ip', 'route', 'replace', peer.subnet, 'via', peer.publicIp, 'dev', underlay.dev]);
}

export async function removeDirectPeer(ip: IpRunner, underlay: Underlay, subnet: string): Promise<void> {
  await cmd(ip, ['ip', 'route', 'del', subnet, 'dev', underlay.dev], true);
}

interface KernelEntries {
  routes: string[];
  neighbours: { ip: string; mac: string }[];
  fdb: { mac: string; dst: string }[];
}

/** What is on the device now (for removing stale entries left by a previous run). */
export async function readVxlanEntries(ip: IpRunner, device: string): Promise<KernelEntries> {
  const routes = JSON.parse((await cmd(ip, ['ip', '-j', '-4', 'route', 'show', 'dev', device])).stdout || '[]') as { dst: string; gateway?: string; protocol?: string }[];
  const neighbours = JSON.parse((await cmd(ip, ['ip', '-j', '-4', 'neigh', 'show', 'dev', device])).stdout || '[]') as { dst: string; lladdr?: string }[];
  const fdb = JSON.parse((await cmd(ip, ['bridge', '-j', 'fdb', 'show', 'dev', device])).stdout || '[]') as { mac: string; dst?: string }[];
  return {
    routes: routes.filter((route) => route.gateway && route.dst.includes('/')).map((route) => route.dst),
    neighbours: neighbours.filter((n) => n.lladdr).map((n) => ({ ip: n.dst, mac: n.lladdr! })),
    fdb: fdb.filter((entry) => entry.dst && entry.mac !== '00:00:00:00:00:00').map((entry) => ({ mac: entry.mac, dst: entry.dst! })),
  };
}
