/**
 * The iptables ruleset as one pure function: model + options → an iptables-restore payload for
 * the filter and nat tables, to be applied with a single `iptables-restore --noflush`.
 *
 * Layout and semantics follow kube-proxy's iptables proxier (pkg/proxy/iptables/proxier.go,
 * https://kubernetes.io/docs/reference/networking/virtual-ips/):
 *   nat  PREROUTING/OUTPUT → KUBE-SERVICES → KUBE-SVC-* (statistic random) → KUBE-SEP-* (DNAT)
 *        KUBE-SERVICES (last rule, dst-type LOCAL) → KUBE-NODEPORTS → KUBE-EXT-* → KUBE-SVC-* or KUBE-SVL-*
 *        POSTROUTING → KUBE-POSTROUTING (MASQUERADE what KUBE-MARK-MASQ marked)
 *   filter KUBE-SERVICES / KUBE-EXTERNAL-SERVICES: REJECT (or DROP for Local policy) for service
 *        ports without endpoints; KUBE-FORWARD; KUBE-NODEPORTS (health check node ports);
 *        KUBE-PROXY-FIREWALL (loadBalancerSourceRanges, see firewallRules).
 *
 * Partial sync (KEP-3453): the top-level chains are always rewritten in full, but the chains of a
 * service port are written only if it changed (or on a full sync). A chain that is listed with
 * `:NAME - [0:0]` is flushed by iptables-restore even with --noflush; one that is not listed is
 * left as it is. Stale per-service chains are declared and deleted (`-X`).
 */
import { categorizeEndpoints, type Endpoint, type ProxyModel, type ServicePort } from '../model.js';
import { endpointChainName, externalChainName, firewallChainName, isServiceChain, localChainName, serviceChainName } from './chain-names.js';
import type { JumpRule } from '../../lib/netfilter/iptables.js';

export interface RuleOptions {
  /** Pod network(s); traffic to a cluster IP from outside is masqueraded (kube-proxy's --cluster-cidr). */
  clusterCIDRs: string[];
  masqueradeAll: boolean;
  masqueradeBit: number;
  /** KubeProxyConfiguration nodePortAddresses: CIDRs whose local addresses serve NodePorts (empty: all). */
  nodePortAddresses?: string[];
  /**
   * KubeProxyConfiguration iptables.localhostNodePorts (default true): NodePorts also answer on
   * 127.0.0.1 (the proxy sets route_localnet, proxy/sysctls.ts); false excludes 127.0.0.0/8.
   */
  localhostNodePorts?: boolean;
}

export interface BuildInput {
  model: ProxyModel;
  options: RuleOptions;
  /** Service port names whose chains must be rewritten, or 'all' for a full sync. */
  changed: ReadonlySet<string> | 'all';
  /** Per-service chains that exist in the kernel now (from iptables-save or the previous sync). */
  existingChains: ReadonlySet<string>;
  /**
   * Jump rules missing from the built-in chains (found in the full sync's iptables-save),
   * inserted by the same restore: one `iptables -C`/`-I` pair per rule would each load the whole
   * table, seconds at 10k services.
   */
  insertJumps?: readonly JumpRule[];
}

export interface BuildOutput {
  payload: string;
  /** Every per-service chain the ruleset uses after this sync. */
  chains: Set<string>;
  /** How many service ports had their chains written. */
  writtenPorts: number;
}

export type { JumpRule };

const newConn = ['-m', 'conntrack', '--ctstate', 'NEW'];
const comment = (text: string) => ['-m', 'comment', '--comment', text];

export const jumpRules: readonly JumpRule[] = [
  { table: 'filter', chain: 'INPUT', args: [...newConn, ...comment('kubernetes load balancer firewall'), '-j', 'KUBE-PROXY-FIREWALL'] },
  { table: 'filter', chain: 'INPUT', args: [...comment('kubernetes health check service ports'), '-j', 'KUBE-NODEPORTS'] },
  { table: 'filter', chain: 'INPUT', args: [...newConn, ...comment('kubernetes externally-visible service portals'), '-j', 'KUBE-EXTERNAL-SERVICES'] },
  { table: 'filter', chain: 'FORWARD', args: [...newConn, ...comment('kubernetes load balancer firewall'), '-j', 'KUBE-PROXY-FIREWALL'] },
  { table: 'filter', chain: 'FORWARD', args: [...comment('kubernetes forwarding rules'), '-j', 'KUBE-FORWARD'] },
  { table: 'filter', chain: 'FORWARD', args: [...newConn, ...comment('kubernetes service portals'), '-j', 'KUBE-SERVICES'] },
  { table: 'filter', chain: 'FORWARD', args: [...newConn, ...comment('kubernetes externally-visible service portals'), '-j', 'KUBE-EXTERNAL-SERVICES'] },
  { table: 'filter', chain: 'OUTPUT', args: [...newConn, ...comment('kubernetes load balancer firewall'), '-j', 'KUBE-PROXY-FIREWALL'] },
  { table: 'filter', chain: 'OUTPUT', args: [...newConn, ...comment('kubernetes service portals'), '-j', 'KUBE-SERVICES'] },
  { table: 'nat', chain: 'PREROUTING', args: [...comment('kubernetes service portals'), '-j', 'KUBE-SERVICES'] },
  { table: 'nat', chain: 'OUTPUT', args: [...comment('kubernetes service portals'), '-j', 'KUBE-SERVICES'] },
  { table: 'nat', chain: 'POSTROUTING', args: [...comment('kubernetes postrouting rules'), '-j', 'KUBE-POSTROUTING'] },
];

export const filterChains = ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL'];
export const natChains = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'];

/** Quotes an argument for iptables-restore when it has spaces (comments). */
function quote(arg: string): string {
  if (!arg.includes(' ') && !arg.includes('"')) return arg;
  return `"${arg.replace(/"/g, '\\"')}"`;
}

class Lines {
  readonly lines: string[] = [];
  add(chain: string, ...args: string[]): void {
    this.lines.push(`-A ${chain} ${args.map(quote).join(' ')}`);
  }
}

const markHex = (bit: number) => `0x${(1 << bit >>> 0).toString(16)}`;
const proto = (port: ServicePort) => port.protocol.toLowerCase();
const protoMatch = (port: ServicePort) => ['-m', proto(port), '-p', proto(port)];

interface PortChains {
  svc: string;
  ext?: string;
  svl?: string;
  fw?: string;
}

/** kube-proxy's usesFWChain: LoadBalancer ingress IPs and loadBalancerSourceRanges. */
const usesFirewall = (port: ServicePort) => port.loadBalancerIPs.length > 0 && port.loadBalancerSourceRanges.length > 0;

function hasExternal(port: ServicePort): boolean {
  return port.nodePort > 0 || port.externalIPs.length > 0 || port.loadBalancerIPs.length > 0;
}

function chainsOf(port: ServicePort): PortChains {
  return {
    svc: serviceChainName(port.name, port.protocol),
    ext: hasExternal(port) ? externalChainName(port.name, port.protocol) : undefined,
    svl: hasExternal(port) && port.externalPolicyLocal ? localChainName(port.name, port.protocol) : undefined,
    fw: usesFirewall(port) ? firewallChainName(port.name, port.protocol) : undefined,
  };
}

const sepChain = (port: ServicePort, endpoint: Endpoint) => endpointChainName(port.name, port.protocol, `${endpoint.ip}:${endpoint.port}`);

/** Rules of the top-level chains for one service port (always written). */
function topLevelRules(port: ServicePort, nat: Lines, filter: Lines): void {
  const chains = chainsOf(port);
  const { cluster, local } = categorizeEndpoints(port);
  const external = port.externalPolicyLocal ? local : cluster;
  const match = protoMatch(port);
  const dport = ['--dport', String(port.port)];
  if (cluster.length > 0) {
    nat.add('KUBE-SERVICES', ...comment(`${port.name} cluster IP`), ...match, '-d', `${port.clusterIP}/32`, ...dport, '-j', chains.svc);
  } else {
    const reason = port.internalPolicyLocal && port.endpoints.length > 0 ? 'has no local endpoints' : 'has no endpoints';
    const target = reason === 'has no local endpoints' ? 'DROP' : 'REJECT';
    filter.add('KUBE-SERVICES', ...comment(`${port.name} ${reason}`), ...match, '-d', `${port.clusterIP}/32`, ...dport, '-j', target);
  }
  if (!chains.ext) return;
  const noExternal = external.length === 0;
  const externalTarget = port.externalPolicyLocal && port.endpoints.length > 0 ? 'DROP' : 'REJECT';
  const destinations: [string, string][] = [
    ...port.externalIPs.map((ip): [string, string] => [ip, 'external IP']),
    ...port.loadBalancerIPs.map((ip): [string, string] => [ip, 'loadbalancer IP']),
  ];
  for (const [ip, kind] of destinations) {
    const lb = kind === 'loadbalancer IP';
    if (noExternal) filter.add('KUBE-EXTERNAL-SERVICES', ...comment(`${port.name} has no endpoints`), ...match, '-d', `${ip}/32`, ...dport, '-j', externalTarget);
    else nat.add('KUBE-SERVICES', ...comment(`${port.name} ${kind}`), ...match, '-d', `${ip}/32`, ...dport, '-j', lb && chains.fw ? chains.fw : chains.ext);
    // A packet to the LB IP that KUBE-FW-* did not DNAT still has the LB IP as destination here.
    if (lb && chains.fw) filter.add('KUBE-PROXY-FIREWALL', ...comment(`${port.name} traffic not accepted by ${chains.fw}`), ...match, '-d', `${ip}/32`, ...dport, '-j', 'DROP');
  }
  if (port.nodePort > 0) {
    const nodePort = ['--dport', String(port.nodePort)];
    if (noExternal) {
      filter.add('KUBE-EXTERNAL-SERVICES', ...comment(`${port.name} has no endpoints`), '-m', 'addrtype', '--dst-type', 'LOCAL', ...match, ...nodePort, '-j', externalTarget);
    } else nat.add('KUBE-NODEPORTS', ...comment(port.name), ...match, ...nodePort, '-j', chains.ext);
  }
  if (port.healthCheckNodePort > 0) {
    filter.add('KUBE-NODEPORTS', ...comment(`${port.name} health check node port`), '-m', 'tcp', '-p', 'tcp', '--dport', String(port.healthCheckNodePort), '-j', 'ACCEPT');
  }
}

/** Rules that spread over endpoints: affinity (`recent`) first, then `statistic` random. */
function balanceRules(port: ServicePort, chain: string, endpoints: Endpoint[], nat: Lines): void {
  if (port.affinityTimeout !== undefined) {
    for (const endpoint of endpoints) {
      const sep = sepChain(port, endpoint);
      nat.add(chain, ...comment(`${port.name} -> ${endpoint.ip}:${endpoint.port}`), '-m', 'recent', '--name', sep, '--mask', '255.255.255.255', '--rsource', '--rcheck', '--seconds', String(port.affinityTimeout), '--reap', '-j', sep);
    }
  }
  endpoints.forEach((endpoint, index) => {
    const remaining = endpoints.length - index;
    const statistic = remaining > 1 ? ['-m', 'statistic', '--mode', 'random', '--probability', (1 / remaining).toFixed(10)] : [];
    nat.add(chain, ...comment(`${port.name} -> ${endpoint.ip}:${endpoint.port}`), ...statistic, '-j', sepChain(port, endpoint));
  });
}

/**
 * loadBalancerSourceRanges, as kube-proxy's iptables proxier (pkg/proxy/iptables/proxier.go,
 * usesFWChain; https://kubernetes.io/docs/tasks/access-application-cluster/configure-cloud-provider-firewall/): nat KUBE-SERVICES sends LB-IP traffic to KUBE-FW-*, which passes sources inside the
 * ranges on to KUBE-EXT-* (and so to a DNAT); everything else falls off its end un-DNATed, and
 * filter KUBE-PROXY-FIREWALL (reached for NEW connections from INPUT/FORWARD/OUTPUT) drops what
 * still has the LB IP as destination. (kube-proxy's "allowFromNode" extra rules for a range
 * that holds the node IP are not written: the node IP is not known to this builder.)
 */
function firewallRules(port: ServicePort, fw: string, ext: string, nat: Lines, declare: (chain: string) => void): void {
  declare(fw);
  for (const cidr of port.loadBalancerSourceRanges) nat.add(fw, ...comment(`${port.name} loadbalancer IP`), '-s', cidr, '-j', ext);
  nat.add(fw, ...comment(`other traffic to ${port.name} will be dropped by KUBE-PROXY-FIREWALL`));
}

/** The per-service chains of one port: KUBE-SVC, KUBE-EXT, KUBE-SVL and its KUBE-SEPs. */
function serviceChainRules(port: ServicePort, options: RuleOptions, nat: Lines, declare: (chain: string) => void): void {
  const chains = chainsOf(port);
  const { cluster, local } = categorizeEndpoints(port);
  declare(chains.svc);
  if (cluster.length > 0 && !port.internalPolicyLocal) {
    const toService = [...comment(`${port.name} cluster IP`), ...protoMatch(port), '-d', `${port.clusterIP}/32`, '--dport', String(port.port)];
    if (options.masqueradeAll) nat.add(chains.svc, ...toService, '-j', 'KUBE-MARK-MASQ');
    else for (const cidr of options.clusterCIDRs) nat.add(chains.svc, ...toService, '!', '-s', cidr, '-j', 'KUBE-MARK-MASQ');
  }
  balanceRules(port, chains.svc, cluster, nat);
  if (chains.ext) {
    declare(chains.ext);
    if (chains.svl) {
      declare(chains.svl);
      for (const cidr of options.clusterCIDRs) nat.add(chains.ext, ...comment(`pod traffic for ${port.name} external destinations`), '-s', cidr, '-j', chains.svc);
      nat.add(chains.ext, ...comment(`masquerade LOCAL traffic for ${port.name} external destinations`), '-m', 'addrtype', '--src-type', 'LOCAL', '-j', 'KUBE-MARK-MASQ');
      nat.add(chains.ext, ...comment(`route LOCAL traffic for ${port.name} external destinations`), '-m', 'addrtype', '--src-type', 'LOCAL', '-j', chains.svc);
      nat.add(chains.ext, '-j', chains.svl);
      balanceRules(port, chains.svl, local, nat);
    } else {
      nat.add(chains.ext, ...comment(`masquerade traffic for ${port.name} external destinations`), '-j', 'KUBE-MARK-MASQ');
      nat.add(chains.ext, '-j', chains.svc);
    }
  }
  if (chains.fw && chains.ext) firewallRules(port, chains.fw, chains.ext, nat, declare);
  const used = new Set([...cluster, ...(chains.svl ? local : [])]);
  for (const endpoint of port.endpoints.filter((candidate) => used.has(candidate))) {
    const sep = sepChain(port, endpoint);
    declare(sep);
    nat.add(sep, ...comment(port.name), '-s', `${endpoint.ip}/32`, '-j', 'KUBE-MARK-MASQ'); // hairpin
    const recent = port.affinityTimeout !== undefined ? ['-m', 'recent', '--name', sep, '--mask', '255.255.255.255', '--rsource', '--set'] : [];
    nat.add(sep, ...comment(port.name), ...protoMatch(port), ...recent, '-j', 'DNAT', '--to-destination', `${endpoint.ip}:${endpoint.port}`);
  }
}

/** Names of every per-service chain a port uses (for partial syncs of unchanged ports). */
const chainNameCache = new WeakMap<ServicePort, string[]>();
const topLevelCache = new WeakMap<ServicePort, { nat: string[]; filter: string[] }>();

export function portChainNames(port: ServicePort): string[] {
  const cached = chainNameCache.get(port);
  if (cached) return cached;
  const names = computeChainNames(port);
  if (Object.isFrozen(port)) chainNameCache.set(port, names);
  return names;
}

/** topLevelRules, remembered per (frozen, unchanging) port: they are rewritten at every sync. */
function cachedTopLevelRules(port: ServicePort, nat: Lines, filter: Lines): void {
  let cached = topLevelCache.get(port);
  if (!cached) {
    const ownNat = new Lines();
    const ownFilter = new Lines();
    topLevelRules(port, ownNat, ownFilter);
    cached = { nat: ownNat.lines, filter: ownFilter.lines };
    if (Object.isFrozen(port)) topLevelCache.set(port, cached);
  }
  for (const line of cached.nat) nat.lines.push(line);
  for (const line of cached.filter) filter.lines.push(line);
}

function computeChainNames(port: ServicePort): string[] {
  const chains = chainsOf(port);
  const { cluster, local } = categorizeEndpoints(port);
  const used = new Set([...cluster, ...(chains.svl ? local : [])]);
  const names = [chains.svc, ...(chains.ext ? [chains.ext] : []), ...(chains.svl ? [chains.svl] : []), ...(chains.fw && chains.ext ? [chains.fw] : [])];
  for (const endpoint of port.endpoints) if (used.has(endpoint)) names.push(sepChain(port, endpoint));
  return names;
}

function fixedRules(options: RuleOptions, nat: Lines, filter: Lines): void {
  const mark = `${markHex(options.masqueradeBit)}/${markHex(options.masqueradeBit)}`;
  nat.add('KUBE-POSTROUTING', '-m', 'mark', '!', '--mark', mark, '-j', 'RETURN');
  nat.add('KUBE-POSTROUTING', '-j', 'MARK', '--xor-mark', markHex(options.masqueradeBit));
  nat.add('KUBE-POSTROUTING', ...comment('kubernetes service traffic requiring SNAT'), '-j', 'MASQUERADE');
  nat.add('KUBE-MARK-MASQ', '-j', 'MARK', '--or-mark', markHex(options.masqueradeBit));
  filter.add('KUBE-FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP');
  filter.add('KUBE-FORWARD', ...comment('kubernetes forwarding rules'), '-m', 'mark', '--mark', mark, '-j', 'ACCEPT');
  filter.add('KUBE-FORWARD', ...comment('kubernetes forwarding conntrack rule'), '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT');
  if (options.localhostNodePorts !== false) {
    // With route_localnet on, packets to 127.0.0.0/8 from elsewhere must not get in
    // (CVE-2020-8558); kube-proxy puts this rule in KUBE-FIREWALL, reached from INPUT as
    // KUBE-NODEPORTS is here.
    filter.add('KUBE-NODEPORTS', ...comment('block incoming localnet connections'), '-d', '127.0.0.0/8', '!', '-s', '127.0.0.0/8', '-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED,DNAT', '-j', 'DROP');
  }
}

/** Builds the whole restore payload (see the module comment for what a partial sync writes). */
export function buildRestorePayload(input: BuildInput): BuildOutput {
  const { model, options, changed } = input;
  const nat = new Lines();
  const filter = new Lines();
  const chains = new Set<string>();
  const declared: string[] = [];
  fixedRules(options, nat, filter);
  let writtenPorts = 0;
  for (const port of model.ports) {
    cachedTopLevelRules(port, nat, filter);
    const names = changed === 'all' || changed.has(port.name) ? undefined : portChainNames(port);
    if (names === undefined || names.some((chain) => !input.existingChains.has(chain))) {
      writtenPorts++;
      serviceChainRules(port, options, nat, (chain) => {
        chains.add(chain);
        declared.push(chain);
      });
    } else for (const chain of names) chains.add(chain);
  }
  const nodePortComment = comment('kubernetes service nodeports; NOTE: this must be the last rule in this chain');
  const localhost = options.localhostNodePorts !== false;
  // kube-proxy: without localhostNodePorts, NodePorts on all addresses exclude 127.0.0.0/8, and
  // loopback CIDRs in nodePortAddresses are left out.
  const ipv4CIDRs = options.nodePortAddresses?.filter((cidr) => cidr.includes('.')) ?? [];
  const nodePortCIDRs = ipv4CIDRs.filter((cidr) => localhost || !cidr.startsWith('127.'));
  if (ipv4CIDRs.length === 0) nat.add('KUBE-SERVICES', ...nodePortComment, '-m', 'addrtype', '--dst-type', 'LOCAL', ...(localhost ? [] : ['!', '-d', '127.0.0.0/8']), '-j', 'KUBE-NODEPORTS');
  for (const cidr of nodePortCIDRs) nat.add('KUBE-SERVICES', ...nodePortComment, '-d', cidr, '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'KUBE-NODEPORTS');
  const stale = [...input.existingChains].filter((chain) => isServiceChain(chain) && !chains.has(chain)).sort();
  // Built-in chains are not declared (that would reset their policy); `-I` in list order, as
  // one `iptables -I` per rule would do.
  const jumps = (table: JumpRule['table']) => (input.insertJumps ?? []).filter((rule) => rule.table === table).map((rule) => `-I ${rule.chain} ${rule.args.map(quote).join(' ')}`);
  const payload = [
    '*filter',
    ...filterChains.map((chain) => `:${chain} - [0:0]`),
    ...filter.lines,
    ...jumps('filter'),
    'COMMIT',
    '*nat',
    ...[...natChains, ...declared, ...stale].map((chain) => `:${chain} - [0:0]`),
    ...nat.lines,
    ...stale.map((chain) => `-X ${chain}`),
    ...jumps('nat'),
    'COMMIT',
    '',
  ].join('\n');
  return { payload, chains, writtenPorts };
}
