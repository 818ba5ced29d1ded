/**
 * `knode proxy --cleanup` (kube-proxy --cleanup): the proxy's chains and rules in every iptables
 * backend whose tools work here, then its IPVS state. Also what `knode down --purge` calls.
 */
import { CommandIptables, workingBackends, type Backend } from '../lib/netfilter/iptables.js';
import { cleanupIptables } from './iptables/proxier.js';
import { cleanupIpvs } from './ipvs/cleanup.js';

/** Returns the iptables backends it swept. */
export async function cleanupProxy(): Promise<Backend[]> {
  const cleaned = await workingBackends();
  for (const backend of cleaned) await cleanupIptables(new CommandIptables(backend));
  await cleanupIpvs();
  return cleaned;
}
