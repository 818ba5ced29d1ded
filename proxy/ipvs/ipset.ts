/**
 * ipset sync by difference, as kube-proxy's IPVS proxier does (pkg/proxy/ipvs/ipset.go
 * syncIPSetEntries): the entries in the kernel are read back (`ipset save`) and only the
 * missing ones are added and the unwanted ones deleted. Flushing and refilling a set at every
 * sync would leave the fixed iptables rules that match it (masquerade, accept) without entries
 * for a moment, and costs a line per entry even when nothing changed.
 */
export interface IpSetSpec {
  name: string;
  type: string;
  /** Entries in `ipset add` syntax. */
  entries: string[];
}


/** Set name → its entries, from `ipset save` output. */
export function parseIpsetSave(text: string): Map<string, Set<string>> {
  const sets = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const [verb, name, entry] = line.trim().split(/\s+/);
    if (!name || (verb !== 'create' && verb !== 'add')) continue;
    const entries = sets.get(name) ?? new Set<string>();
    sets.set(name, entries);
    if (verb === 'add' && entry) entries.add(entry);
  }
  return sets;
}

/**
 * The `ipset restore` script that makes the kernel hold exactly `desired`: `create -exist` for
 * sets not there yet, then per set its deletions before its additions (so that an entry the
 * kernel prints in another spelling is deleted and added again, never lost). Empty when nothing
 * differs.
 */
export function ipsetSyncScript(current: ReadonlyMap<string, ReadonlySet<string>>, desired: readonly IpSetSpec[]): string {
  const lines: string[] = [];
  for (const set of desired) {
    const have = current.get(set.name);
    const want = new Set(set.entries);
    if (!have) {
      const options = set.type === 'bitmap:port' ? ' range 0-65535' : '';
      lines.push(`create ${set.name} ${set.type}${options} -exist`);
    }
    for (const entry of have ?? []) if (!want.has(entry)) lines.push(`del ${set.name} ${entry} -exist`);
    for (const entry of want) if (!have?.has(entry)) lines.push(`add ${set.name} ${entry} -exist`);
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}
