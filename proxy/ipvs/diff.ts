/**
 * IPVS sync by diff (kube-proxy ipvs mode, pkg/proxy/ipvs/proxier.go and graceful_termination.go):
 * the desired table comes from the model (a virtual server per service IP:port, real servers
 * for its endpoints, session affinity as persistence); the kernel's current table is read back,
 * and only the differences are applied. A real server that should go away but still has
 * connections is first set to weight 0 (no new connections) and deleted at a later sync once its
 * connections are gone; terminating endpoints that still serve are kept at weight 0 too.
 * Pure: the mechanism is ./netlink-ipvs.ts.
 */
import { categorizeEndpoints, type ProxyModel } from '../model.js';
import type { RealServer, VirtualServer } from './netlink-ipvs.js';

interface IpvsEntry {
  vs: VirtualServer;
  dests: RealServer[];
}

export type IpvsTable = Map<string, IpvsEntry>;

export const vsKey = (vs: Pick<VirtualServer, 'address' | 'port' | 'protocol'>) => `${vs.protocol}:${vs.address}:${vs.port}`;
const rsKey = (rs: Pick<RealServer, 'address' | 'port'>) => `${rs.address}:${rs.port}`;

interface DesiredOptions {
  scheduler: string;
  /** Node addresses that serve NodePorts. */
  nodeIPs: string[];
}

/** The IPVS table the model asks for. */
export function desiredIpvs(model: ProxyModel, options: DesiredOptions): IpvsTable {
  const table: IpvsTable = new Map();
  for (const port of model.ports) {
    const { cluster, local } = categorizeEndpoints(port);
    const terminating = port.endpoints.filter((endpoint) => endpoint.terminating && endpoint.serving && !cluster.includes(endpoint));
    const destsFor = (usable: typeof cluster): RealServer[] => [
      ...usable.map((endpoint) => ({ address: endpoint.ip, port: endpoint.port, weight: 1 })),
      ...terminating.filter((endpoint) => !usable.includes(endpoint)).map((endpoint) => ({ address: endpoint.ip, port: endpoint.port, weight: 0 })),
    ];
    const add = (address: string, servicePort: number, usable: typeof cluster) => {
      const vs: VirtualServer = { address, port: servicePort, protocol: port.protocol, scheduler: options.scheduler, persistence: port.affinityTimeout ?? 0 };
      table.set(vsKey(vs), { vs, dests: destsFor(usable) });
    };
    add(port.clusterIP, port.port, cluster);
    const external = port.externalPolicyLocal ? local : cluster;
    for (const ip of [...port.externalIPs, ...port.loadBalancerIPs]) add(ip, port.port, external);
    if (port.nodePort > 0) for (const ip of options.nodeIPs) add(ip, port.nodePort, external);
  }
  return table;
}

export type IpvsOp =
  | { op: 'add-service' | 'update-service' | 'delete-service'; vs: VirtualServer }
  | { op: 'add-dest' | 'update-dest' | 'delete-dest'; vs: VirtualServer; rs: RealServer };

/** The operations that turn `actual` into `desired`. */
export function diffIpvs(desired: IpvsTable, actual: IpvsTable): IpvsOp[] {
  const ops: IpvsOp[] = [];
  for (const [key, want] of desired) {
    const have = actual.get(key);
    if (!have) ops.push({ op: 'add-service', vs: want.vs });
    else if (have.vs.scheduler !== want.vs.scheduler || have.vs.persistence !== want.vs.persistence) ops.push({ op: 'update-service', vs: want.vs });
    if (have && sameDests(want.dests, have.dests)) continue;
    const current = new Map((have?.dests ?? []).map((rs) => [rsKey(rs), rs]));
    for (const rs of want.dests) {
      const existing = current.get(rsKey(rs));
      if (!existing) ops.push({ op: 'add-dest', vs: want.vs, rs });
      else if (existing.weight !== rs.weight) ops.push({ op: 'update-dest', vs: want.vs, rs });
      current.delete(rsKey(rs));
    }
    for (const rs of current.values()) ops.push(...retire(want.vs, rs));
  }
  for (const [key, have] of actual) if (!desired.has(key)) ops.push({ op: 'delete-service', vs: have.vs });
  return ops;
}

const sameDest = (a: RealServer, b: RealServer) => a.address === b.address && a.port === b.port && a.weight === b.weight;

/**
 * The common case of a resync, without a Map of keys per service: the kernel lists a service's
 * real servers newest first (ip_vs_ctl.c adds them at the head of svc->destinations), so an
 * unchanged service reads back as the desired list reversed, or in order. Anything else takes
 * the general path (same result, only slower).
 */
function sameDests(want: RealServer[], have: RealServer[]): boolean {
  const n = want.length;
  if (have.length !== n) return false;
  let reversed = true;
  for (let i = 0; i < n && reversed; i++) reversed = sameDest(want[i]!, have[n - 1 - i]!);
  if (reversed) return true;
  for (let i = 0; i < n; i++) if (!sameDest(want[i]!, have[i]!)) return false;
  return true;
}

/** Graceful removal of a real server: weight 0 while it has connections, then delete. */
function retire(vs: VirtualServer, rs: RealServer): IpvsOp[] {
  const connections = (rs.activeConnections ?? 0) + (rs.inactiveConnections ?? 0);
  if (connections === 0) return [{ op: 'delete-dest', vs, rs }];
  if (rs.weight !== 0) return [{ op: 'update-dest', vs, rs: { ...rs, weight: 0 } }];
  return [];
}
