/**
 * A small iptables packet tracer for the restore payloads this proxy writes, so that rule
 * builders are tested by what they do to a packet rather than by string compare. It parses an
 * iptables-restore payload (plus the jump rules from the built-in chains) and walks one packet
 * through nat PREROUTING/OUTPUT, filter INPUT/FORWARD/OUTPUT and nat POSTROUTING, understanding
 * the matches and targets kube-proxy's layout uses: -p/-s/-d/--dport (with !), addrtype,
 * conntrack --ctstate, mark, statistic random, recent (--set / --rcheck --seconds), comment,
 * and the targets jump/RETURN/ACCEPT/DROP/REJECT/DNAT/MARK/MASQUERADE.
 */
import ipaddr from 'ipaddr.js';
import type { JumpRule } from '../../proxy/iptables/rules.js';

export type Table = 'filter' | 'nat';
export type Ruleset = Map<Table, Map<string, string[][]>>;

/** Splits one payload line into arguments, honouring double quotes. */
export function tokenize(line: string): string[] {
  const tokens: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let match = pattern.exec(line); match; match = pattern.exec(line)) tokens.push(match[1] !== undefined ? match[1].replace(/\\"/g, '"') : match[2]!);
  return tokens;
}

/** Parses a restore payload; jump rules are appended to their built-in chains. */
export function parseRestore(payload: string, jumps: readonly JumpRule[] = []): Ruleset {
  const ruleset: Ruleset = new Map();
  let table: Map<string, string[][]> | undefined;
  for (const raw of payload.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line === 'COMMIT') continue;
    if (line.startsWith('*')) {
      const name = line.slice(1) as Table;
      table = ruleset.get(name) ?? new Map();
      ruleset.set(name, table);
    } else if (!table) throw new Error(`rule outside a table: ${line}`);
    else if (line.startsWith(':')) table.set(line.slice(1).split(' ')[0]!, []);
    else if (line.startsWith('-X ')) table.delete(line.slice(3).trim());
    else if (line.startsWith('-A ')) {
      const [, chain, ...args] = tokenize(line);
      if (!table.has(chain!)) throw new Error(`rule for undeclared chain ${chain}: ${line}`);
      table.get(chain!)!.push(args);
    } else throw new Error(`unknown payload line: ${line}`);
  }
  for (const jump of jumps) {
    const table = ruleset.get(jump.table) ?? new Map<string, string[][]>();
    ruleset.set(jump.table, table);
    table.set(jump.chain, [...(table.get(jump.chain) ?? []), jump.args]);
  }
  return ruleset;
}

export interface Packet {
  src: string;
  dst: string;
  protocol: 'tcp' | 'udp' | 'sctp';
  dport: number;
  mark?: number;
}

export interface TraceContext {
  /** Addresses that belong to the node (addrtype LOCAL). */
  localAddresses: string[];
  /** [0,1) random numbers for `statistic --mode random`. */
  random: () => number;
  /** Seconds, for `recent`. */
  now: number;
  /** `recent` lists: name → source → last seen (s). Kept across packets for affinity. */
  recent: Map<string, Map<string, number>>;
}

type Verdict = 'ACCEPT' | 'DROP' | 'REJECT' | 'RETURN' | undefined;

const inCidr = (ip: string, cidr: string) => {
  const [network, bits] = cidr.includes('/') ? ipaddr.parseCIDR(cidr) : [ipaddr.parse(cidr), 32];
  return ipaddr.parse(ip).match([network, bits] as [ipaddr.IPv4, number]);
};

class Walker {
  readonly visited: string[] = [];
  dnat?: string;
  masquerade = false;
  constructor(
    private readonly ruleset: Ruleset,
    readonly packet: Packet,
    private readonly ctx: TraceContext,
  ) {}

  walk(table: Table, chain: string, depth = 0): Verdict {
    if (depth > 50) throw new Error(`chain loop at ${chain}`);
    const rules = this.ruleset.get(table)?.get(chain);
    if (!rules) throw new Error(`no chain ${table}/${chain}`);
    this.visited.push(`${table}/${chain}`);
    for (const rule of rules) {
      if (!this.matches(rule)) continue;
      const verdict = this.target(table, rule, depth);
      if (verdict === 'RETURN') return undefined;
      if (verdict) return verdict;
      if (this.dnat && table === 'nat' && rule.includes('DNAT')) return 'ACCEPT';
    }
    return undefined;
  }

  private matches(rule: string[]): boolean {
    const p = this.packet;
    for (let i = 0; i < rule.length; i++) {
      const negate = rule[i] === '!';
      if (negate) i++;
      const option = rule[i]!;
      const value = rule[i + 1] ?? '';
      let ok: boolean | undefined;
      switch (option) {
        case '-p': ok = p.protocol === value; break;
        case '-s': ok = inCidr(p.src, value); break;
        case '-d': ok = inCidr(p.dst, value); break;
        case '--dport': ok = p.dport === Number(value); break;
        case '--dst-type': ok = value === 'LOCAL' && this.ctx.localAddresses.includes(p.dst); break;
        case '--src-type': ok = value === 'LOCAL' && this.ctx.localAddresses.includes(p.src); break;
        case '--ctstate': ok = value.split(',').includes('NEW'); break;
        case '--mark': {
          const [v, m] = value.split('/').map((part) => Number(part));
          ok = ((p.mark ?? 0) & (m ?? 0xffffffff)) === v;
          break;
        }
        case '--probability': ok = this.ctx.random() < Number(value); break;
        case '--rcheck': ok = this.recentCheck(rule); break;
        case '-j': return true;
        default: continue;
      }
      if (ok === negate) return false;
      i++;
    }
    return true;
  }

  private option(rule: string[], name: string): string | undefined {
    const index = rule.indexOf(name);
    return index >= 0 ? rule[index + 1] : undefined;
  }

  private recentCheck(rule: string[]): boolean {
    const seen = this.ctx.recent.get(this.option(rule, '--name') ?? '')?.get(this.packet.src);
    const seconds = Number(this.option(rule, '--seconds') ?? Infinity);
    return seen !== undefined && this.ctx.now - seen <= seconds;
  }

  private target(table: Table, rule: string[], depth: number): Verdict {
    const target = this.option(rule, '-j') ?? '';
    if (rule.includes('--set')) {
      const name = this.option(rule, '--name') ?? '';
      const list = this.ctx.recent.get(name) ?? new Map<string, number>();
      this.ctx.recent.set(name, list);
      list.set(this.packet.src, this.ctx.now);
    }
    switch (target) {
      case '': return undefined; // a rule without a target only counts
      case 'ACCEPT': case 'DROP': case 'REJECT': case 'RETURN': return target;
      case 'DNAT': this.dnat = this.option(rule, '--to-destination'); return undefined;
      case 'MASQUERADE': this.masquerade = true; return 'ACCEPT';
      case 'MARK': {
        const or = this.option(rule, '--or-mark');
        const xor = this.option(rule, '--xor-mark');
        if (or) this.packet.mark = (this.packet.mark ?? 0) | Number(or);
        if (xor) this.packet.mark = (this.packet.mark ?? 0) ^ Number(xor);
        return undefined;
      }
      default: return this.walk(table, target, depth + 1);
    }
  }
}

export interface TraceResult {
  /** "ip:port" when the packet was DNATed. */
  dnat?: string;
  /** The filter table's verdict (undefined: fell through to the default ACCEPT policy). */
  filter: Verdict;
  masquerade: boolean;
  visited: string[];
}

/**
 * Traces a new connection. `origin` 'local' starts in nat OUTPUT (a process on the node),
 * 'remote' in nat PREROUTING (a pod or another host).
 */
export function tracePacket(ruleset: Ruleset, packet: Packet, origin: 'local' | 'remote', ctx: TraceContext): TraceResult {
  const walker = new Walker(ruleset, { ...packet }, ctx);
  walker.walk('nat', origin === 'local' ? 'OUTPUT' : 'PREROUTING');
  if (walker.dnat) {
    const [ip, port] = walker.dnat.split(':');
    walker.packet.dst = ip!;
    walker.packet.dport = Number(port);
  }
  const filterChain = origin === 'local' ? 'OUTPUT' : ctx.localAddresses.includes(walker.packet.dst) ? 'INPUT' : 'FORWARD';
  const filter = ruleset.get('filter')?.has(filterChain) ? walker.walk('filter', filterChain) : undefined;
  if (filter !== 'DROP' && filter !== 'REJECT' && ruleset.get('nat')?.has('POSTROUTING')) walker.walk('nat', 'POSTROUTING');
  return { dnat: walker.dnat, filter, masquerade: walker.masquerade, visited: walker.visited };
}
