/**
 * Kernel side of the plugin: bridge, veth pair, pod address and routes.
 *
 * Why `ip` and not the netlink package here: the pod's end must be configured inside the pod's
 * netns, and a Node process cannot setns(2) one thread. `nsenter --net=PATH ip -batch -` enters
 * the netns and applies the whole pod side in one short-lived process, and the host side is one
 * `ip -batch -` as well, so an ADD costs three small execs (measured in bench/cni-add-del.ts).
 * Every step is idempotent: "exists" on create and "not found" on delete are success.
 */
import { createHash, randomBytes } from 'node:crypto';
import { statfsSync, statSync } from 'node:fs';
import { createRtNetlink, type RtNetlinkSocket } from 'netlink';
import { run, CommandError, type ExecResult } from '../lib/exec.js';
import type { NetnsIpPool } from './ip-pool.js';
import type { IpBatchSession } from './ip-session.js';
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

/** Fails with code 3 when the path does not exist, 7 when it is not a network namespace. */
export function assertNetns(path: string): void {
  try {
    statSync(path);
  } catch (error) {
    throw new CniError(ErrorCode.containerUnknown, `network namespace ${path} does not exist`, undefined, { cause: error });
  }
  if (statfsSync(path).type !== NSFS_MAGIC) throw new CniError(ErrorCode.invalidEnv, `CNI_NETNS ${path} is not a network namespace`);
}

export function netnsExists(path: string): boolean {
  try {
    return statfsSync(path).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

const missing = (result: ExecResult) => /Cannot find device|does not exist|No such device/.test(result.stderr);
const exists = (result: ExecResult) => /File exists|Address already assigned/.test(result.stderr);

async function ip(args: string[], netns?: string, input?: string): Promise<ExecResult> {
  return run([...ipCommand(netns), ...args], { input, allowFailure: true, timeoutMs: 20_000 });
}

/** `ip -n NAME` for namespaces under /run/netns (one exec less), else `nsenter --net=PATH ip`. */
function ipCommand(netns?: string): string[] {
  if (!netns) return ['ip'];
  const named = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(netns);
  return named ? ['ip', '-n', named[1]!] : ['nsenter', `--net=${netns}`, 'ip'];
}

/** Line numbers that failed in an `ip -force -batch -` run ("Command failed -:N"). */
export function failedBatchLines(stderr: string): number[] {
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

export interface VethSpec {
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

const bridgeMacs = new Map<string, string>();

let session: IpBatchSession | undefined;
let pool: NetnsIpPool | undefined;

/**
 * The daemon hands in its long-lived host `ip -batch` session (cni/ip-session.ts) and its pool
 * of warm pod-netns shells (cni/ip-pool.ts); undefined = one exec per call (standalone plugin).
 */
export function useIpHelpers(helpers: { session?: IpBatchSession; pool?: NetnsIpPool }): void {
  session = helpers.session;
  pool = helpers.pool;
}

function podBatch(netns: string, lines: string[]): Promise<ExecResult> {
  return pool ? pool.run(netns, lines) : ip(['-batch', '-'], netns, lines.join('\n') + '\n');
}

function hostBatch(lines: string[]): Promise<ExecResult> {
  return session ? session.run(lines) : ip(['-force', '-batch', '-'], undefined, lines.join('\n') + '\n');
}

/**
 * One `ip -force -batch -` on the host side: bridge (create, gateway address, up — "exists" is
 * fine on those lines), then the veth pair straight into the pod netns, plugged into the bridge,
 * up, hairpin on. Returns the bridge's MAC.
 */
export async function createVeth(spec: VethSpec): Promise<string> {
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
  let result = await hostBatch(text);
  let failed = failedBatchLines(result.stderr);
  if (failed.includes(4) && exists(result)) {
    // A leftover host end from an interrupted ADD of the same attachment: replace it.
    await deleteLink(spec.hostName);
    result = await hostBatch(text);
    failed = failedBatchLines(result.stderr);
  }
  const fatal = failed.filter((line) => line > 2 || !exists(result));
  if (result.code !== 0 && (fatal.length > 0 || failed.length === 0)) {
    await deleteLink(spec.hostName).catch(() => undefined);
    if (fatal.includes(4) && exists(result)) throw new CniError(ErrorCode.internal, `interface "${spec.podName}" already exists in ${spec.netns}`);
    fail(`failed to create veth "${spec.hostName}" ↔ "${spec.podName}" in ${spec.netns} on bridge "${spec.bridge}"`, ['ip', '-force', '-batch', '-'], result);
  }
  if (!failed.includes(1)) bridgeMacs.set(spec.bridge, spec.bridgeMac);
  let mac = bridgeMacs.get(spec.bridge);
  if (!mac) {
    mac = (await showLink(spec.bridge))?.address ?? '';
    bridgeMacs.set(spec.bridge, mac);
  }
  return mac;
}

export interface PodAddressing {
  netns: string;
  ifname: string;
  cidr: string;
  gateway: string;
  routes: { dst: string; gw?: string }[];
}

/** Inside the pod netns: lo up, the address, the interface up, then the routes via the gateway. */
export async function configurePod(spec: PodAddressing): Promise<void> {
  const lines = [`link set lo up`, `addr replace ${spec.cidr} dev ${spec.ifname}`, `link set ${spec.ifname} up`];
  for (const route of spec.routes) lines.push(`route replace ${route.dst} via ${route.gw ?? spec.gateway} dev ${spec.ifname}`);
  let result = await podBatch(spec.netns, lines);
  // Under heavy concurrency iproute2's name lookup for a just-created link can fail once
  // ("Cannot find device"); every line is idempotent (replace), so the batch is simply rerun.
  for (let attempt = 0; attempt < 3 && result.code !== 0 && missing(result); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 10 * (attempt + 1)));
    result = await podBatch(spec.netns, lines);
  }
  if (result.code !== 0) fail(`failed to configure "${spec.ifname}" in ${spec.netns}`, ['nsenter', `--net=${spec.netns}`, 'ip', '-batch', '-'], result);
}

let rtnl: RtNetlinkSocket | undefined;

/**
 * Deletes a link (both ends for a veth). Missing is success. In the current netns this is one
 * RTM_DELLINK by name over a netlink socket (the netlink package; no exec on the DEL path).
 */
export async function deleteLink(name: string, netns?: string): Promise<void> {
  if (!netns) {
    rtnl ??= createRtNetlink();
    try {
      await rtnl.delLink({ index: 0 }, { ifname: name });
      return;
    } catch (error) {
      if (/ENODEV/.test((error as Error).message)) return;
      throw new Error(`failed to delete "${name}": ${(error as Error).message}`, { cause: error });
    }
  }
  const result = await ip(['link', 'del', name], netns);
  if (result.code !== 0 && !missing(result)) fail(`failed to delete "${name}" in ${netns}`, ['ip', 'link', 'del', name], result);
}

/** Link, addresses and routes of one interface in a pod netns (for CHECK). */
export async function inspectPod(netns: string, ifname: string): Promise<{ link?: LinkJson; routes: { dst: string; gateway?: string; dev?: string }[] }> {
  const result = await ip(['-j', '-batch', '-'], netns, `addr show dev ${ifname}\nroute show\n`);
  const lines = result.stdout.split('\n').filter((line) => line.startsWith('['));
  const link = lines.length === 2 ? (JSON.parse(lines[0]!) as LinkJson[])[0] : undefined;
  const routes = JSON.parse(lines[lines.length - 1] ?? '[]') as { dst: string; gateway?: string; dev?: string }[];
  return { link, routes };
}

/** A link in the current netns, or undefined. */
export async function showLink(name: string): Promise<LinkJson | undefined> {
  const result = await ip(['-j', 'link', 'show', 'dev', name]);
  return result.code === 0 ? (JSON.parse(result.stdout) as LinkJson[])[0] : undefined;
}

/** Names of the ports of a bridge (for GC). */
export async function bridgePorts(bridge: string): Promise<string[]> {
  const result = await ip(['-j', 'link', 'show', 'master', bridge]);
  if (result.code !== 0) return [];
  return (JSON.parse(result.stdout || '[]') as LinkJson[]).map((link) => link.ifname);
}
