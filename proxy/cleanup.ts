/**
 * `knode proxy --cleanup` (kube-proxy --cleanup): the proxy's chains and rules in every iptables
 * backend whose tools work here, its IPVS state and its nftables table (`ip kube-proxy`). Also
 * what `knode down --purge` calls.
 */
import { CommandIptables, workingBackends, type Backend } from '../lib/netfilter/iptables.js';
import { cleanupIptables } from './iptables/proxier.js';
import { cleanupIpvs } from './ipvs/cleanup.js';
import { NftSocket } from '../lib/netfilter/nftables/socket.js';
import { cleanupNftables } from './nftables/proxier.js';

/** Returns what it swept: the iptables backends, and 'nftables' when the table was there. */
export async function cleanupProxy(): Promise<(Backend | 'nftables')[]> {
  const cleaned: (Backend | 'nftables')[] = await workingBackends();
  for (const backend of cleaned) await cleanupIptables(new CommandIptables(backend as Backend));
  await cleanupIpvs();
  const nft = NftSocket.open();
  try {
    if (await cleanupNftables(nft)) cleaned.push('nftables');
  } finally {
    nft.close();
  }
  return cleaned;
}
