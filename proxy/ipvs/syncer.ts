/**
 * Applies an IPVS diff to the kernel: reads the current table (only the virtual servers in
 * `owned`, i.e. the service IPs the proxy manages, so that other IPVS users are left alone),
 * computes the operations (./diff.ts) and carries them out one by one, collecting failures
 * instead of stopping at the first (the next sync retries what failed).
 */
import { diffIpvs, vsKey, type IpvsOp, type IpvsTable } from './diff.js';
import type { Ipvs } from './netlink-ipvs.js';

export async function readIpvs(ipvs: Ipvs, owned: (address: string) => boolean): Promise<IpvsTable> {
  const table: IpvsTable = new Map();
  for (const vs of await ipvs.listServices()) {
    if (!owned(vs.address)) continue;
    table.set(vsKey(vs), { vs, dests: await ipvs.listDestinations(vs) });
  }
  return table;
}

async function applyIpvsOp(ipvs: Ipvs, op: IpvsOp): Promise<void> {
  switch (op.op) {
    case 'add-service': return ipvs.addService(op.vs);
    case 'update-service': return ipvs.updateService(op.vs);
    case 'delete-service': return ipvs.deleteService(op.vs);
    case 'add-dest': return ipvs.addDestination(op.vs, op.rs);
    case 'update-dest': return ipvs.updateDestination(op.vs, op.rs);
    case 'delete-dest': return ipvs.deleteDestination(op.vs, op.rs);
  }
}

interface IpvsSyncResult {
  ops: IpvsOp[];
  failures: { op: IpvsOp; error: unknown }[];
}

export async function syncIpvs(ipvs: Ipvs, desired: IpvsTable, owned: (address: string) => boolean): Promise<IpvsSyncResult> {
  const ops = diffIpvs(desired, await readIpvs(ipvs, owned));
  const failures: IpvsSyncResult['failures'] = [];
  for (const op of ops) {
    try {
      await applyIpvsOp(ipvs, op);
    } catch (error) {
      failures.push({ op, error });
    }
  }
  return { ops, failures };
}
