/**
 * Leftovers of the other proxy mode, removed at start. kube-proxy did this when it started
 * (cmd/kube-proxy/app/server_others.go, up to v1.27: in iptables mode
 * `ipvs.CleanupLeftovers(...)` — "IPVS Proxier will generate some iptables rules, need to clean
 * them before switching to other proxy mode" — and in ipvs mode `iptables.CleanupLeftovers(...)`),
 * so that a node switched from one mode to the other does not keep serving (or dropping) traffic
 * through stale rules of the mode it left.
 *
 * Unlike kube-proxy's `--cleanup-ipvs` (which flushed the whole IPVS table) only what this proxy
 * creates is touched (cleanupIpvs: virtual servers on kube-ipvs0 addresses or NodePorts in its
 * sets). The check is cheap and nothing is removed when there are no leftovers, so a restart in
 * the same mode keeps its rules (and traffic) in place.
 */
import type { Logger } from '../lib/log.js';
import { run } from '../lib/exec.js';
import { savedChains, type Iptables } from '../lib/netfilter/iptables.js';
import { cleanupIptables } from './iptables/proxier.js';
import { cleanupIpvs } from './ipvs/cleanup.js';
import { ipvsSetNames } from './ipvs/rules.js';
import { dummyInterface } from './ipvs/host.js';
import { cleanupNftables } from './nftables/proxier.js';
import { tableName } from './nftables/ruleset.js';
import type { NftTransport } from '../lib/netfilter/nftables/socket.js';

/** Chains only the iptables mode creates (the IPVS mode uses KUBE-NODE-PORT, never these). */
const iptablesOnlyPrefixes = ['KUBE-SVC-', 'KUBE-SEP-', 'KUBE-EXT-', 'KUBE-SVL-', 'KUBE-FW-'];
const iptablesOnlyChains = new Set(['KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES', 'KUBE-PROXY-FIREWALL']);

/** Pure: the iptables-mode chains in iptables-save outputs (nat and filter). */
export function iptablesModeLeftovers(saves: readonly string[]): string[] {
  const found = new Set<string>();
  for (const save of saves) {
    for (const chain of savedChains(save)) {
      if (iptablesOnlyChains.has(chain) || iptablesOnlyPrefixes.some((prefix) => chain.startsWith(prefix))) found.add(chain);
    }
  }
  return [...found].sort();
}

interface IpvsHostState {
  /** kube-ipvs0 exists. */
  dummy: boolean;
  /** Names of the ipset sets in the namespace. */
  sets: readonly string[];
  /** Chains in the nat table. */
  natChains: ReadonlySet<string>;
}

/** Pure: what of the IPVS mode is present (kube-ipvs0, its sets, its KUBE-NODE-PORT chain). */
export function ipvsModeLeftovers(state: IpvsHostState): string[] {
  const found = state.sets.filter((name) => ipvsSetNames.includes(name));
  if (state.dummy) found.unshift(dummyInterface);
  if (state.natChains.has('KUBE-NODE-PORT')) found.push('KUBE-NODE-PORT');
  return found;
}

async function ipvsHostState(iptables: Iptables): Promise<IpvsHostState> {
  const link = await run(['ip', 'link', 'show', dummyInterface], { allowFailure: true }).catch(() => undefined);
  const sets = await run(['ipset', 'list', '-n'], { allowFailure: true }).catch(() => undefined);
  return {
    dummy: link?.code === 0,
    sets: sets?.code === 0 ? sets.stdout.split('\n').map((line) => line.trim()).filter(Boolean) : [],
    natChains: savedChains(await iptables.save('nat')),
  };
}

/**
 * Removes the other mode's leftovers; returns what was found (empty: nothing was touched).
 * iptables → ipvs: every proxy chain goes (the IPVS sync that follows writes its own).
 * ipvs → iptables: the IPVS-mode rules first (they reference the sets), then its virtual
 * servers, sets and kube-ipvs0; the first iptables sync then writes the whole ruleset.
 * → nftables: both of the above; iptables or ipvs after nftables: table ip kube-proxy is deleted
 * (KEP-3866: kube-proxy cleans up the other modes' rules at start).
 */
export async function cleanupOtherMode(mode: 'iptables' | 'ipvs' | 'nftables', iptables: Iptables, log: Logger, nft?: NftTransport): Promise<string[]> {
  try {
    // nftables mode's table goes when another mode starts (kube-proxy's CleanupLeftovers of the
    // modes not in use); deleting it is a no-op when it is absent.
    const nftFound = mode !== 'nftables' && nft && (await cleanupNftables(nft)) ? [`table ip ${tableName}`] : [];
    if (nftFound.length > 0) log.info({ leftovers: nftFound }, 'removed the nftables-mode table left from an earlier run');
    if (mode === 'nftables') {
      const found = [...iptablesModeLeftovers([await iptables.save('nat'), await iptables.save('filter')]), ...ipvsModeLeftovers(await ipvsHostState(iptables))];
      if (found.length === 0) return [];
      log.info({ leftovers: found.length, sample: found.slice(0, 5) }, 'removing the iptables/IPVS-mode leftovers of an earlier run');
      await cleanupIptables(iptables);
      if (found.some((name) => !name.startsWith('KUBE-'))) await cleanupIpvs();
      return found;
    }
    if (mode === 'ipvs') {
      const found = iptablesModeLeftovers([await iptables.save('nat'), await iptables.save('filter')]);
      if (found.length === 0) return nftFound;
      log.info({ leftovers: found.length, sample: found.slice(0, 5) }, 'removing the iptables-mode rules left from an earlier run');
      await cleanupIptables(iptables);
      return [...nftFound, ...found];
    }
    const found = ipvsModeLeftovers(await ipvsHostState(iptables));
    if (found.length === 0) return nftFound;
    log.info({ leftovers: found }, 'removing the IPVS-mode leftovers of an earlier run');
    await cleanupIptables(iptables);
    await cleanupIpvs();
    return [...nftFound, ...found];
  } catch (error) {
    throw new Error(`cannot remove the leftovers of the mode other than ${mode}`, { cause: error });
  }
}
