/**
 * The knode CNI plugin's verbs (SPEC.md: ADD, DEL, CHECK, VERSION, GC, STATUS). One entry point,
 * `handleCniRequest`, used both by the standalone executable (cni/plugin-main.ts) and by the
 * daemon's unix-socket fast path (cni/plugin-server.ts), so both do exactly the same work.
 *
 * ADD = IPAM reservation → bridge → veth (pod end straight into the pod netns) → pod address and
 * default route via the gateway → optional masquerade; each step pushes its undo, and a failure
 * unwinds them in reverse (flannel's CNI delegates to `bridge`, which behaves the same way).
 */
import { execDelegate } from './ipam-delegate.js';
import { FileIpamStore, attachmentKey } from './ipam-store.js';
import { IpRunner } from '../lib/ip/runner.js';
import { nodeIptables, type Iptables } from '../lib/netfilter/iptables.js';
import { masqChain, setupMasq, teardownMasq } from './masq.js';
import { assertNetns, hostVethName, Netdev, podMac, randomMac } from './netdev.js';
import { loadSubnetLease, parseCniEnv, parsePluginConf, type CniEnv, type PluginConf, type SubnetLease } from './plugin-config.js';
import { CniError, ErrorCode, errorJson, type Result } from '../lib/cni/types.js';
import { formatResult, parsePrevResult, verbAllowed, versionInfo } from '../lib/cni/version.js';

/**
 * The mechanisms a request runs with, handed in rather than switched globally: the standalone
 * executable makes plain ones per call; the daemon's fast path shares its long-lived ones.
 */
export interface CniContext {
  netdev: Netdev;
  /** The node's iptables runner (lib/netfilter/), detected on first use: only masquerade needs it. */
  iptables(): Promise<Iptables>;
}

/** A context over an IpRunner (plain: one exec per `ip` command); the iptables backend is detected when first needed. */
export function pluginContext(ip = new IpRunner()): CniContext {
  let iptables: Promise<Iptables> | undefined;
  return {
    netdev: new Netdev(ip),
    iptables: () => (iptables ??= nodeIptables()),
  };
}

interface CniRequest {
  env: NodeJS.ProcessEnv;
  stdin: string;
}
interface CniResponse {
  stdout: string;
  exitCode: number;
}

export async function handleCniRequest(request: CniRequest, context: CniContext): Promise<CniResponse> {
  let version = '1.1.0';
  try {
    // VERSION looks at CNI_COMMAND only: libcni probes with placeholders (CNI_NETNS=dummy, …),
    // and the reference plugins answer regardless of the other variables (SPEC.md, "VERSION").
    if (request.env.CNI_COMMAND === 'VERSION') return { stdout: JSON.stringify(versionInfo()), exitCode: 0 };
    const env = parseCniEnv(request.env);
    const conf = parsePluginConf(request.stdin);
    version = conf.cniVersion;
    if (!verbAllowed(env.command, conf.cniVersion)) {
      throw new CniError(ErrorCode.incompatibleVersion, `${env.command} is not defined for cniVersion ${conf.cniVersion}`);
    }
    const output = await dispatch(env, conf, request.env, context);
    return { stdout: output === undefined ? '' : JSON.stringify(output), exitCode: 0 };
  } catch (error) {
    return { stdout: JSON.stringify(errorJson(error, version)), exitCode: 1 };
  }
}

async function dispatch(env: CniEnv, conf: PluginConf, rawEnv: NodeJS.ProcessEnv, context: CniContext): Promise<unknown> {
  switch (env.command) {
    case 'ADD':
      return formatResult(await add(env, conf, rawEnv, context), conf.cniVersion);
    case 'DEL':
      return del(env, conf, rawEnv, context);
    case 'CHECK':
      return check(env, conf, rawEnv, context);
    case 'GC':
      return gc(env, conf, rawEnv, context);
    case 'STATUS':
      return status(conf);
    default:
      throw new CniError(ErrorCode.invalidEnv, `unknown CNI_COMMAND "${env.command}"`);
  }
}

const usesOwnIpam = (conf: PluginConf) => !conf.ipam || conf.ipam.type === 'knode';

/** flannel's CNI: with ipMasq unset, masquerade in the plugin only when the daemon does not. */
const effectiveIpMasq = (conf: PluginConf, lease?: SubnetLease) => conf.ipMasq ?? (lease?.ipMasq === undefined ? false : !lease.ipMasq);

/** The delegate's config: ours with `ipam.ranges` defaulted to the node's subnet, as flannel's CNI does. */
function delegateConf(conf: PluginConf, lease?: SubnetLease): Record<string, unknown> {
  const ipam = { ...(conf.ipam as Record<string, unknown>) };
  if (lease && ipam.ranges === undefined && ipam.subnet === undefined) {
    const { rangeStart, rangeEnd } = ipam;
    delete ipam.rangeStart;
    delete ipam.rangeEnd;
    ipam.ranges = [[{ subnet: lease.subnet, gateway: lease.gateway, ...(rangeStart ? { rangeStart } : {}), ...(rangeEnd ? { rangeEnd } : {}) }]];
  }
  return { ...conf.raw, ipam };
}

async function reserve(env: CniEnv, conf: PluginConf, lease: SubnetLease, rawEnv: NodeJS.ProcessEnv, undo: (() => Promise<unknown>)[]): Promise<Result> {
  if (usesOwnIpam(conf)) {
    const store = new FileIpamStore(conf.dataDir, conf.name);
    undo.push(() => store.release(env.containerId, env.ifname));
    const ip = await store.allocate(env.containerId, env.ifname, { subnet: lease.subnet, gateway: lease.gateway, rangeStart: conf.ipam?.rangeStart, rangeEnd: conf.ipam?.rangeEnd });
    return { cniVersion: conf.cniVersion, ips: [{ address: `${ip}/${lease.prefixLength}`, gateway: lease.gateway }] };
  }
  const delegated = delegateConf(conf, lease);
  undo.push(() => execDelegate('DEL', conf.ipam!.type, delegated, rawEnv, env.path));
  const result = await execDelegate('ADD', conf.ipam!.type, delegated, rawEnv, env.path);
  if (!result?.ips?.some((ip) => !ip.address.includes(':'))) throw new CniError(ErrorCode.invalidConfig, `IPAM plugin ${conf.ipam!.type} returned no IPv4 address`);
  return result;
}

async function add(env: CniEnv, conf: PluginConf, rawEnv: NodeJS.ProcessEnv, { netdev, iptables }: CniContext): Promise<Result> {
  assertNetns(env.netns);
  const lease = loadSubnetLease(conf.subnetFile);
  const undo: (() => Promise<unknown>)[] = [];
  try {
    const ipam = await reserve(env, conf, lease, rawEnv, undo);
    const ipConfig = ipam.ips!.find((ip) => !ip.address.includes(':'))!;
    const podIp = ipConfig.address.split('/')[0]!;
    const gateway = ipConfig.gateway ?? lease.gateway;
    const mtu = conf.mtu ?? lease.mtu;
    const hostName = hostVethName(env.containerId, env.ifname);
    const mac = podMac(podIp);
    const hostMac = randomMac();
    undo.push(() => netdev.deleteLink(hostName));
    const bridgeMac = await netdev.createVeth({
      bridge: conf.bridge,
      bridgeMac: podMac(lease.gateway),
      gatewayCidr: `${lease.gateway}/${lease.prefixLength}`,
      hostName,
      hostMac,
      podName: env.ifname,
      podMac: mac,
      netns: env.netns,
      mtu,
      hairpin: conf.hairpinMode,
    });
    const routes = [{ dst: '0.0.0.0/0', gw: gateway }, ...(ipam.routes ?? []).filter((route) => route.dst !== '0.0.0.0/0')];
    await netdev.configurePod({ netns: env.netns, ifname: env.ifname, cidr: ipConfig.address, gateway, routes });
    if (effectiveIpMasq(conf, lease)) {
      const chain = masqChain(env.containerId, env.ifname);
      const rules = await iptables();
      undo.push(() => teardownMasq(rules, chain));
      await setupMasq(rules, chain, podIp, lease.network, `knode: name=${conf.name} id=${env.containerId}`);
    }
    return {
      cniVersion: conf.cniVersion,
      interfaces: [
        { name: conf.bridge, mac: bridgeMac },
        { name: hostName, mac: hostMac },
        { name: env.ifname, mac, sandbox: env.netns, ...(mtu ? { mtu } : {}) },
      ],
      ips: [{ address: ipConfig.address, gateway, interface: 2 }],
      routes,
      dns: ipam.dns ?? (conf.raw.dns as Result['dns']) ?? {},
    };
  } catch (error) {
    for (const step of undo.reverse()) await step().catch(() => undefined);
    throw error;
  }
}

/** DEL is idempotent: a missing netns, link, chain or reservation is success (SPEC.md, "DEL"). */
async function del(env: CniEnv, conf: PluginConf, rawEnv: NodeJS.ProcessEnv, { netdev, iptables }: CniContext): Promise<undefined> {
  let lease: SubnetLease | undefined;
  try {
    lease = loadSubnetLease(conf.subnetFile);
  } catch {
    lease = undefined; // the daemon may be gone already; cleanup does not need the lease
  }
  await netdev.deleteLink(hostVethName(env.containerId, env.ifname));
  if (conf.ipMasq ?? (lease === undefined || effectiveIpMasq(conf, lease))) await teardownMasq(await iptables(), masqChain(env.containerId, env.ifname));
  if (usesOwnIpam(conf)) await new FileIpamStore(conf.dataDir, conf.name).release(env.containerId, env.ifname);
  else await execDelegate('DEL', conf.ipam!.type, delegateConf(conf, lease), rawEnv, env.path);
  return undefined;
}

async function check(env: CniEnv, conf: PluginConf, rawEnv: NodeJS.ProcessEnv, { netdev }: CniContext): Promise<undefined> {
  const prev = parsePrevResult(conf.prevResult);
  if (!prev) throw new CniError(ErrorCode.invalidConfig, 'CHECK needs prevResult');
  assertNetns(env.netns);
  const { link, routes } = await netdev.inspectPod(env.netns, env.ifname);
  if (!link) throw new CniError(ErrorCode.internal, `CHECK: interface "${env.ifname}" not found in ${env.netns}`);
  const index = (prev.interfaces ?? []).findIndex((iface) => iface.name === env.ifname && iface.sandbox);
  const expectedMac = index >= 0 ? prev.interfaces![index]!.mac : undefined;
  if (expectedMac && link.address !== expectedMac) throw new CniError(ErrorCode.internal, `CHECK: "${env.ifname}" has MAC ${link.address}, expected ${expectedMac}`);
  for (const ip of prev.ips ?? []) {
    if (ip.interface !== undefined && ip.interface !== index) continue;
    const [address, bits] = ip.address.split('/');
    if (!(link.addr_info ?? []).some((info) => info.local === address && String(info.prefixlen) === bits)) {
      throw new CniError(ErrorCode.internal, `CHECK: address ${ip.address} missing on "${env.ifname}"`);
    }
  }
  for (const route of prev.routes ?? []) {
    const dst = route.dst === '0.0.0.0/0' ? 'default' : route.dst;
    if (!routes.some((r) => r.dst === dst && (route.gw === undefined || r.gateway === route.gw))) {
      throw new CniError(ErrorCode.internal, `CHECK: route ${route.dst}${route.gw ? ` via ${route.gw}` : ''} missing in ${env.netns}`);
    }
  }
  const host = await netdev.showLink(hostVethName(env.containerId, env.ifname));
  if (!host || host.master !== conf.bridge) throw new CniError(ErrorCode.internal, `CHECK: host end of "${env.ifname}" missing or not on bridge "${conf.bridge}"`);
  if (usesOwnIpam(conf)) {
    const reserved = new FileIpamStore(conf.dataDir, conf.name).find(env.containerId, env.ifname);
    if (!reserved || !(prev.ips ?? []).some((ip) => ip.address.startsWith(`${reserved}/`))) {
      throw new CniError(ErrorCode.internal, `CHECK: no IPAM reservation matching prevResult for ${env.containerId}/${env.ifname}`);
    }
  } else {
    await execDelegate('CHECK', conf.ipam!.type, delegateConf(conf, tryLease(conf)), rawEnv, env.path);
  }
  return undefined;
}

function tryLease(conf: PluginConf): SubnetLease | undefined {
  try {
    return loadSubnetLease(conf.subnetFile);
  } catch {
    return undefined;
  }
}

/** GC (CNI 1.1): drop reservations, host veths and masquerade chains of attachments the runtime no longer has. */
async function gc(env: CniEnv, conf: PluginConf, rawEnv: NodeJS.ProcessEnv, { netdev, iptables }: CniContext): Promise<undefined> {
  const valid = conf['cni.dev/valid-attachments'] ?? [];
  const keep = new Set(valid.map((a) => attachmentKey(a.containerID, a.ifname)));
  const keepVeths = new Set(valid.map((a) => hostVethName(a.containerID, a.ifname)));
  for (const port of await netdev.bridgePorts(conf.bridge)) {
    if (/^knv[0-9a-f]{10}$/.test(port) && !keepVeths.has(port)) await netdev.deleteLink(port);
  }
  if (usesOwnIpam(conf)) {
    const freed = await new FileIpamStore(conf.dataDir, conf.name).gc(keep);
    for (const entry of freed) await teardownMasq(await iptables(), masqChain(entry.containerId, entry.ifname));
  } else {
    await execDelegate('GC', conf.ipam!.type, delegateConf(conf, tryLease(conf)), rawEnv, env.path);
  }
  return undefined;
}

/** STATUS (CNI 1.1): ready once the overlay has written its lease; 50 "plugin not available" before. */
async function status(conf: PluginConf): Promise<undefined> {
  try {
    loadSubnetLease(conf.subnetFile);
  } catch (error) {
    throw new CniError(ErrorCode.pluginNotAvailable, `not ready: ${(error as Error).message}`, undefined, { cause: error });
  }
  return undefined;
}
