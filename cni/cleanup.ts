/**
 * What the CNI plugin leaves on a node once no pod uses it: the bridge (with its gateway address)
 * and the per-pod masquerade chains (KNODE-MASQ-*) of attachments whose DEL never came. Called
 * by `knode overlay --cleanup` (the overlay hosts the plugin, as flannel ships its CNI plugin)
 * and so by `knode down --purge`. Pods' own netns and veths go with their sandboxes.
 */
import type { IpRunner } from '../lib/ip/runner.js';
import type { Iptables } from '../lib/netfilter/iptables.js';
import { teardownMasq } from './masq.js';

interface CniCleanupOptions {
  ip: IpRunner;
  /** One runner per iptables backend in use. */
  iptables: Iptables[];
  /** The netconf's bridge; default cni0. */
  bridge?: string;
}

/** Returns what it removed (for the caller's report). */
export async function cleanupCniPlugin(options: CniCleanupOptions): Promise<string[]> {
  const removed: string[] = [];
  for (const iptables of options.iptables) {
    const chains = new Set<string>();
    for (const line of (await iptables.listChain('nat', 'POSTROUTING')) ?? []) {
      const match = / -j (KNODE-MASQ-[0-9A-F]{16})$/.exec(line);
      if (match) chains.add(match[1]!);
    }
    for (const line of (await iptables.save('nat')).split('\n')) {
      const match = /^:(KNODE-MASQ-[0-9A-F]{16}) /.exec(line);
      if (match) chains.add(match[1]!);
    }
    for (const chain of chains) await teardownMasq(iptables, chain);
    if (chains.size > 0) removed.push(`${chains.size} pod masquerade chain(s) (${iptables.backend})`);
  }
  const bridge = options.bridge ?? 'cni0';
  const link = await options.ip.linkKind(bridge);
  // Only a bridge: a device of another kind under that name is not ours.
  if (link?.kind === 'bridge') {
    await options.ip.deleteLink(bridge);
    removed.push(bridge);
  }
  return removed;
}
