/**
 * flanneld --ip-masq: masquerade pod traffic that leaves the cluster network, never pod↔pod,
 * in a chain of our own jumped to from nat POSTROUTING (flannel's FLANNEL-POSTRTG rules,
 * pkg/ip/iptables.go MasqRules). Applied with one `iptables-restore --noflush` through the
 * node's iptables runner (lib/netfilter/), idempotent; removed again by `knode overlay --cleanup`.
 */
import type { Iptables, JumpRule } from '../lib/netfilter/iptables.js';

const masqChainName = 'KNODE-OVERLAY-POSTRTG';

/** The POSTROUTING rule that sends traffic into our chain. */
const masqJump: JumpRule = { table: 'nat', chain: 'POSTROUTING', args: ['-m', 'comment', '--comment', 'knode overlay masquerade', '-j', masqChainName] };

/** The chain's rules for a node (pure). */
export function overlayMasqRules(network: string, subnet: string): string[] {
  return [
    `-A ${masqChainName} -s ${subnet} -d ${network} -m comment --comment "knode overlay: pod to pod" -j RETURN`,
    `-A ${masqChainName} -s ${network} -d ${subnet} -m comment --comment "knode overlay: pod to pod" -j RETURN`,
    `-A ${masqChainName} ! -s ${network} -d ${subnet} -m comment --comment "knode overlay: to local pods" -j RETURN`,
    `-A ${masqChainName} -s ${network} ! -d 224.0.0.0/4 -m comment --comment "knode overlay: pods leaving the cluster" -j MASQUERADE --random-fully`,
    `-A ${masqChainName} ! -s ${network} -d ${network} -m comment --comment "knode overlay: into the cluster from outside" -j MASQUERADE --random-fully`,
  ];
}

export async function ensureOverlayMasq(iptables: Iptables, network: string, subnet: string): Promise<void> {
  const payload = ['*nat', `:${masqChainName} - [0:0]`, ...overlayMasqRules(network, subnet), 'COMMIT', ''].join('\n');
  await iptables.restore(payload);
  await iptables.ensureJump(masqJump, 'append');
}

/** Removes the jump and the chain; missing is success. */
export async function removeOverlayMasq(iptables: Iptables): Promise<boolean> {
  await iptables.deleteJump(masqJump);
  if ((await iptables.listChain('nat', masqChainName)) === undefined) return false;
  await iptables.restore(['*nat', `-F ${masqChainName}`, `-X ${masqChainName}`, 'COMMIT', ''].join('\n'));
  return true;
}
