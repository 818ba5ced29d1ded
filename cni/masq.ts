/**
 * Per-pod masquerade as the bridge plugin does with `ipMasq: true` (plugins/pkg/ip/ipmasq_linux.go):
 * a chain per attachment in the nat table that accepts traffic to the cluster network and
 * masquerades the rest (not multicast), jumped to from POSTROUTING for the pod's source address.
 * Runs in the current netns (the node's), through the node's iptables runner (lib/netfilter/).
 */
import { createHash } from 'node:crypto';
import type { Iptables } from '../lib/netfilter/iptables.js';

export function masqChain(containerId: string, ifname: string): string {
  return `KNODE-MASQ-${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 16).toUpperCase()}`;
}

export async function setupMasq(iptables: Iptables, chain: string, podIp: string, network: string, comment: string): Promise<void> {
  const payload = [
    '*nat',
    `:${chain} - [0:0]`,
    `-A ${chain} -d ${network} -j ACCEPT`,
    `-A ${chain} ! -d 224.0.0.0/4 -j MASQUERADE`,
    `-A POSTROUTING -s ${podIp}/32 -m comment --comment "${comment.replace(/"/g, '')}" -j ${chain}`,
    'COMMIT',
    '',
  ].join('\n');
  await teardownMasq(iptables, chain);
  await iptables.restore(payload);
}

/** Removes the POSTROUTING jumps and the chain. Missing is success. */
export async function teardownMasq(iptables: Iptables, chain: string): Promise<void> {
  const postrouting = (await iptables.listChain('nat', 'POSTROUTING')) ?? [];
  const jumps = postrouting.filter((line) => line.startsWith('-A POSTROUTING ') && line.endsWith(`-j ${chain}`));
  const exists = (await iptables.listChain('nat', chain)) !== undefined;
  if (jumps.length === 0 && !exists) return;
  const payload = ['*nat', ...jumps.map((line) => line.replace(/^-A /, '-D ')), ...(exists ? [`-F ${chain}`, `-X ${chain}`] : []), 'COMMIT', ''].join('\n');
  await iptables.restore(payload);
}
