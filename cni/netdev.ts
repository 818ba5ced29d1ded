/**
 * Kernel side of the plugin: bridge, veth pair, pod address and routes, through the IpRunner it
 * is given (lib/ip/runner.ts: one exec per call in the standalone plugin, the daemon's session
 * and warm shells on the fast path).
 *
 * Why `ip` and not the netlink package here: the pod's end must be configured inside the pod's
 * netns, and a Node process cannot setns(2) one thread. `nsenter --net=PATH ip -batch -` enters
 * the netns and applies the whole pod side in one short-lived process, and the host side is one
 * `ip -batch -` as well, so an ADD costs three small execs (measured in bench/cni-add-del.ts).
 * Every step is idempotent: "exists" on create and "not found" on delete are success.
 */
import { createHash, randomBytes } from 'node:crypto';
import { statfsSync, statSync } from 'node:fs';
import { CommandError, type ExecResult } from '../lib/exec.js';
import { isExisting as exists, isMissing as missing, type IpRunner } from '../lib/ip/runner.js';
import { CniError, ErrorCode } from '../lib/cni/types.js';

const NSFS_MAGIC = 0x6e736673;

/** Our host-side veth name: stable per attachment so DEL and GC find it without state. */
export function hostVethName(containerId: string, ifname: string): string {
  return `knv${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 10)}`;
}

/** 0a:58:<IPv4 bytes> as kubenet and the bridge plugin's `0a:58` prefix do: stable, locally administered. */
export function podMac(ip: string): string {
  return ['0a', '58', ...ip.split('.').map((part) => Number(part).toString(16).padStart(2, '0'))].join(':');
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = (bytes[0]! & 0xfe) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Inodes of the host's network namespaces: init's (pid 1) and the plugin's own. */
function hostNetnsInodes(): { path: string; dev: number; ino: number }[] {
  const out: { path: string; dev: number; ino: number }[] = [];
  for (const path of ['/proc/1/ns/net', '/proc/self/ns/net']) {
    try {
      const stat = statSync(path);
      out.push({ path, dev: stat.dev, ino: stat.ino });
    } catch {
      /* not readable (no procfs or not root): nothing to compare with */
    }
  }
  return out;
}

/**
 * Fails with code 3 when the path does not exist, 7 when it is not a network namespace or is the
 * host's own (init's or the plugin's: wiring "a pod" there would put the pod address, routes and
 * the bridge's peer into the node itself; issue 25 item 9).
 */
export function assertNetns(path: string): void {
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CniError(ErrorCode.containerUnknown, `network namespace ${path} does not exist`, undefined, { cause: error });
    throw new CniError(ErrorCode.invalidEnv, `cannot inspect CNI_NETNS ${path}: ${(error as Error).message}`, undefined, { cause: error });
  }
  if (statfsSync(path).type !== NSFS_MAGIC) throw new CniError(ErrorCode.invalidEnv, `CNI_NETNS ${path} is not a network namespace`);
  const host = hostNetnsInodes().find((ns) => ns.ino === stat.ino && ns.dev === stat.dev);
  if (host) throw new CniError(ErrorCode.invalidEnv, `CNI_NETNS ${path} is the host's own network namespace (same as ${host.path}), not a pod's`);
}

function netnsExists(path: string): boolean {
  try {
    return statfsSync(path).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/** Line numbers that failed in an `ip -force -batch -` run ("Command failed -:N"). */
function failedBatchLines(stderr: string): number[] {
  return [...stderr.matchAll(/Command failed -:(\d+)/g)].map((match) => Number(match[1]));
}

function fail(what: string, command: string[], result: ExecResult): never {
  throw new Error(what, { cause: new CommandError(command, result) });
}

interface LinkJson {
  ifname: string;
  address?: string;
  mtu?: number;
  master?: string;
  flags?: string[];
  operstate?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

interface VethSpec {
  bridge: string;
  /** MAC for a bridge created now (a fixed MAC: otherwise the bridge takes the lowest port MAC and changes as pods come and go). */
  bridgeMac: string;
  gatewayCidr: string;
  hostName: string;
  hostMac: string;
  podName: string;
  podMac: string;
  netns: string;
  mtu?: number;
  hairpin: boolean;
}

interface PodAddressing {
  netns: string;
  ifname: string;
  cidr: string;
  gateway: string;
  routes: { dst: string; gw?: string }[];
}

/** What the plugin does to links and addresses, with the IpRunner it is given. */
export class Netdev {
  /** Bridge MACs seen by this process (the daemon answers many ADDs; the standalone plugin one). */
  private readonly bridgeMacs = new Map<string, string>();

  constructor(readonly ip: IpRunner) {}

  /**
   * The netconf's `bridge` must be a bridge or not exist yet: an existing device of another
   * kind (lo, a physical NIC, a veth) would get the gateway address and pod ports (issue 25
   * item 9). The reference bridge plugin refuses the same ("… already exists but is not a bridge").
   */
  async assertBridgeUsable(bridge: string): Promise<void> {
    const link = await this.ip.linkKind(bridge);
    if (!link || link.kind === 'bridge') return;
    const what = link.loopback ? 'the loopback device' : link.kind ? `a ${link.kind} device` : 'a device that is not a bridge';
    throw new CniError(ErrorCode.invalidConfig, `bridge "${bridge}" already exists and is ${what}; refusing to use it as the pod bridge`);
  }

  /**
   * One `ip -force -batch -` on the host side: bridge (create, gateway address, up — "exists" is
   * fine on those lines), then the veth pair straight into the pod netns, plugged into the bridge,
   * up, hairpin on. Returns the bridge's MAC.
   */
  async createVeth(spec: VethSpec): Promise<string> {
    await this.assertBridgeUsable(spec.bridge);
    const mtu = spec.mtu ? ['mtu', String(spec.mtu)] : [];
    const lines = [
      ['link', 'add', spec.bridge, 'address', spec.bridgeMac, 'type', 'bridge'],
      ['addr', 'add', spec.gatewayCidr, 'dev', spec.bridge],
      ['link', 'set', spec.bridge, 'up'],
      ['link', 'add', spec.hostName, ...mtu, 'address', spec.hostMac, 'type', 'veth', 'peer', 'name', spec.podName, ...mtu, 'address', spec.podMac, 'netns', spec.netns],
      ['link', 'set', spec.hostName, 'master', spec.bridge, 'up'],
    ];
    if (spec.hairpin) lines.push(['link', 'set', spec.hostName, 'type', 'bridge_slave', 'hairpin', 'on']);
    const text = lines.map((line) => line.join(' '));
    let result = await this.ip.hostBatch(text);
    let failed = failedBatchLines(result.stderr);
    if (failed.includes(4) && exists(result)) {
      // A leftover host end from an interrupted ADD of the same attachment: replace it.
      await this.ip.deleteLink(spec.hostName);
      result = await this.ip.hostBatch(text);
      failed = failedBatchLines(result.stderr);
    }
    const fatal = failed.filter((line) => line > 2 || !exists(result));
    if (result.code !== 0 && (fatal.length > 0 || failed.length === 0)) {
      await this.ip.deleteLink(spec.hostName).catch(() => undefined);
      if (fatal.includes(4) && exists(result)) throw new CniError(ErrorCode.internal, `interface "${spec.podName}" already exists in ${spec.netns}`);
      fail(`failed to create veth "${spec.hostName}" ↔ "${spec.podName}" in ${spec.netns} on bridge "${spec.bridge}"`, ['ip', '-force', '-batch', '-'], result);
    }
    if (!failed.includes(1)) this.bridgeMacs.set(spec.bridge, spec.bridgeMac);
    let mac = this.bridgeMacs.get(spec.bridge);
    if (!mac) {
      mac = (await this.showLink(spec.bridge))?.address ?? '';
      this.bridgeMacs.set(spec.bridge, mac);
    }
    return mac;
  }

  /** Inside the pod netns: lo up, the address, the interface up, then the routes via the gateway. */
  async configurePod(spec: PodAddressing): Promise<void> {
    const lines = [`link set lo up`, `addr replace ${spec.cidr} dev ${spec.ifname}`, `link set ${spec.ifname} up`];
    for (const route of spec.routes) lines.push(`route replace ${route.dst} via ${route.gw ?? spec.gateway} dev ${spec.ifname}`);
    let result = await this.ip.podBatch(spec.netns, lines);
    // Under heavy concurrency iproute2's name lookup for a just-created link can fail once
    // ("Cannot find device"); every line is idempotent (replace), so the batch is simply rerun.
    for (let attempt = 0; attempt < 3 && result.code !== 0 && missing(result); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 10 * (attempt + 1)));
      result = await this.ip.podBatch(spec.netns, lines);
    }
    if (result.code !== 0) fail(`failed to configure "${spec.ifname}" in ${spec.netns}`, ['nsenter', `--net=${spec.netns}`, 'ip', '-batch', '-'], result);
  }

  /** Deletes a link (both ends for a veth); missing is success. */
  deleteLink(name: string, netns?: string): Promise<void> {
    return this.ip.deleteLink(name, netns);
  }

  /** Link, addresses and routes of one interface in a pod netns (for CHECK). */
  async inspectPod(netns: string, ifname: string): Promise<{ link?: LinkJson; routes: { dst: string; gateway?: string; dev?: string }[] }> {
    const result = await this.ip.ip(['-j', '-batch', '-'], netns, `addr show dev ${ifname}\nroute show\n`);
    const lines = result.stdout.split('\n').filter((line) => line.startsWith('['));
    const link = lines.length === 2 ? (JSON.parse(lines[0]!) as LinkJson[])[0] : undefined;
    const routes = JSON.parse(lines[lines.length - 1] ?? '[]') as { dst: string; gateway?: string; dev?: string }[];
    return { link, routes };
  }

  /** A link in our netns, or undefined. */
  async showLink(name: string): Promise<LinkJson | undefined> {
    const result = await this.ip.ip(['-j', 'link', 'show', 'dev', name]);
    return result.code === 0 ? (JSON.parse(result.stdout) as LinkJson[])[0] : undefined;
  }

  /** Names of the ports of a bridge (for GC). */
  async bridgePorts(bridge: string): Promise<string[]> {
    const result = await this.ip.ip(['-j', 'link', 'show', 'master', bridge]);
    if (result.code !== 0) return [];
    return (JSON.parse(result.stdout || '[]') as LinkJson[]).map((link) => link.ifname);
  }
}
