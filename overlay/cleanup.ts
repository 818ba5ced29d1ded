/**
 * `knode overlay --cleanup`: removes what the overlay daemon made on this node, as flanneld's
 * own teardown would: its masquerade chain and jump (every iptables backend whose tools work),
 * the VXLAN device flannel.<VNI> (routes, neighbours and FDB entries go with it), subnet.env and
 * the CNI fast-path socket, and the CNI plugin's leftovers (cni/cleanup.ts). Idempotent: what
 * is already gone is skipped. `knode down --purge` calls the same function.
 */
import { rmSync } from 'node:fs';
import { IpRunner } from '../lib/ip/runner.js';
import { CommandIptables, workingBackends } from '../lib/netfilter/iptables.js';
import { cleanupCniPlugin } from '../cni/cleanup.js';
import { cniSocketFor } from './daemon.js';
import { removeOverlayMasq } from './masq.js';

interface OverlayCleanupOptions {
  /** The VXLAN network identifier of net-conf.json (device flannel.<VNI>); default 1. */
  vni?: number;
  subnetFile: string;
  /** The CNI fast-path socket; default knode-cni.sock next to the subnet file. */
  cniSocket?: string;
  /** The CNI bridge; default cni0. */
  bridge?: string;
}

/** Returns what it removed. */
export async function cleanupOverlay(options: OverlayCleanupOptions): Promise<string[]> {
  const ip = new IpRunner();
  try {
    const iptables = (await workingBackends()).map((backend) => new CommandIptables(backend));
    const removed: string[] = [];
    for (const runner of iptables) if (await removeOverlayMasq(runner)) removed.push(`overlay masquerade (${runner.backend})`);
    const device = `flannel.${options.vni ?? 1}`;
    if ((await ip.linkKind(device))?.kind === 'vxlan') {
      await ip.deleteLink(device);
      removed.push(device);
    }
    removed.push(...(await cleanupCniPlugin({ ip, iptables, bridge: options.bridge })));
    for (const file of [options.subnetFile, options.cniSocket ?? cniSocketFor(options.subnetFile)]) rmSync(file, { force: true });
    return removed;
  } finally {
    ip.close();
  }
}
