/**
 * kube-proxy's nftables ruleset (KEP-3866; pkg/proxy/nftables/proxier.go), as pure data: the
 * fixed part of table `ip kube-proxy` (base chains, dispatch chains, the verdict maps and sets)
 * and, per service port, a Fragment (its chains, its map elements, its affinity sets), so that
 * `nft list table ip kube-proxy` reads as it does under kube-proxy:
 *
 *   nat-prerouting/nat-output → services: ip daddr . meta l4proto . th dport vmap @service-ips,
 *       fib daddr type local … vmap @service-nodeports → external-, service- and local- chains →
 *       numgen random mod N-i 0 goto endpoint-… (one rule per endpoint; kube-proxy: one
 *       `numgen random mod N vmap { … }`, see build.ts numgenPick) → dnat
 *   filter-input/forward/output → endpoints-check (@no-endpoint-services/-nodeports: reject or
 *       drop), filter-prerouting/output → firewall-check (@firewall-ips → firewall- chains for
 *       loadBalancerSourceRanges), filter-forward/output-post-dnat → cluster-ips-check (reject
 *       traffic to a ClusterIP on a port it does not serve)
 *   nat-postrouting → masquerading (what mark-for-masquerade marked)
 *
 * Chain names use kube-proxy's hashAndTruncate: base32(sha256(name))[:8] + "-" + name.
 */
import { createHash } from 'node:crypto';
import { categorizeEndpoints, type Endpoint, type ServicePort } from '../model.js';
import { base32 } from '../iptables/chain-names.js';
import type { BaseChainSpec, Element, Rule, SetSpec } from '../../lib/netfilter/nftables/batch.js';
import { SetFlag, DATA_TYPE_VERDICT } from '../../lib/netfilter/nftables/wire.js';
import type { Verdict } from '../../lib/netfilter/nftables/expr.js';
import * as b from '../../lib/netfilter/nftables/build.js';

export const tableName = 'kube-proxy';
export const maps = { serviceIPs: 'service-ips', serviceNodePorts: 'service-nodeports', noEndpointServices: 'no-endpoint-services', noEndpointNodePorts: 'no-endpoint-nodeports', firewallIPs: 'firewall-ips', clusterIPs: 'cluster-ips', nodePortIPs: 'nodeport-ips' } as const;
const chains = { services: 'services', endpointsCheck: 'endpoints-check', reject: 'reject-chain', firewallCheck: 'firewall-check', clusterIPsCheck: 'cluster-ips-check', markMasq: 'mark-for-masquerade', masquerading: 'masquerading' } as const;

export interface NftRulesetOptions {
  /** Pod network(s): the first IPv4 one is kube-proxy's local traffic detector (--cluster-cidr). */
  clusterCIDRs: string[];
  masqueradeAll: boolean;
  masqueradeBit: number;
  /**
   * KubeProxyConfiguration nodePortAddresses given: NodePorts answer only on the addresses in
   * @nodeport-ips (nodePortFragment), else on every local address but 127/8 (fib daddr type local).
   */
  nodePortIPsOnly?: boolean;
}

export interface ChainSpec {
  rules: Rule[];
  base?: BaseChainSpec;
}

/** The chains, elements and affinity sets of one service port. */
export interface Fragment {
  chains: Map<string, ChainSpec>;
  /** map/set name → key (hex) → element. */
  elements: Map<string, Map<string, Element>>;
  sets: Map<string, SetSpec>;
}

/** Memoised (bounded): the names of unchanged services and endpoints recur at every full sync. */
const names = new Map<string, string>();
const hashAndTruncate = (name: string) => {
  let out = names.get(name);
  if (out === undefined) {
    out = `${base32(createHash('sha256').update(name).digest()).slice(0, 8)}-${name}`;
    if (out.length > 240) out = `${out.slice(0, 237)}...`;
    if (names.size >= 500_000) names.clear();
    names.set(name, out);
  }
  return out;
};
const protoOf = (port: ServicePort) => port.protocol.toLowerCase() as b.Proto;
export const chainBase = (port: ServicePort) => hashAndTruncate(`${port.namespace}/${port.serviceName}/${protoOf(port)}/${port.portName}`);
export const endpointBase = (port: ServicePort, endpoint: Endpoint) =>
  hashAndTruncate(`${port.namespace}/${port.serviceName}/${protoOf(port)}/${port.portName}__${endpoint.ip}/${endpoint.port}`);
/** Chain and set names of the proxy's per-service objects all contain "/" (kube-proxy's isServiceChainName). */
const isServiceObject = (name: string) => name.includes('/');

const key3 = b.concatType(b.DataType.ipv4Addr, b.DataType.inetProto, b.DataType.inetService);
const key2 = b.concatType(b.DataType.inetProto, b.DataType.inetService);
const vmap = (name: string, comment: string, two = false): SetSpec => ({ name, keyType: two ? key2 : key3, keyLen: two ? 8 : 12, flags: SetFlag.map, dataType: DATA_TYPE_VERDICT, comment });

export const fixedSets: readonly SetSpec[] = [
  { name: maps.clusterIPs, keyType: b.DataType.ipv4Addr, keyLen: 4, flags: 0, comment: 'Active ClusterIPs' },
  { name: maps.nodePortIPs, keyType: b.DataType.ipv4Addr, keyLen: 4, flags: 0, comment: 'IPs that accept NodePort traffic' },
  vmap(maps.noEndpointServices, 'vmap to drop or reject packets to services with no endpoints'),
  vmap(maps.noEndpointNodePorts, 'vmap to drop or reject packets to service nodeports with no endpoints', true),
  vmap(maps.firewallIPs, 'destinations that are subject to LoadBalancerSourceRanges'),
  vmap(maps.serviceIPs, 'ClusterIP, ExternalIP and LoadBalancer IP traffic'),
  vmap(maps.serviceNodePorts, 'NodePort traffic', true),
];

const jump = (chain: string) => b.verdict('jump', chain);
const rule = (...exprs: Rule['exprs']): Rule => ({ exprs });
const newJump = (chain: string) => rule(...b.ctStateNew(), jump(chain));
const notLocalhost = () => b.matchIp('daddr', '127.0.0.0/8', 'neq');

/** The fixed chains (base chains first), in creation order. */
export function fixedChains(options: NftRulesetOptions): Map<string, ChainSpec> {
  const mark = 1 << options.masqueradeBit;
  // kube-proxy: `ip daddr @nodeport-ips` with nodePortAddresses, else `fib daddr type local`
  const nodePortDest = () => (options.nodePortIPsOnly ? b.inSet('daddr', maps.nodePortIPs) : [...b.fibLocal('daddr'), ...notLocalhost()]);
  const base = (type: 'filter' | 'nat', hook: BaseChainSpec['hook'], priority: number, rules: Rule[]): ChainSpec => ({ base: { type, hook, priority }, rules });
  return new Map<string, ChainSpec>([
    ['filter-prerouting', base('filter', 'prerouting', -110, [newJump(chains.firewallCheck)])],
    ['filter-input', base('filter', 'input', -110, [newJump(chains.endpointsCheck)])],
    ['filter-forward', base('filter', 'forward', -110, [newJump(chains.endpointsCheck), newJump(chains.clusterIPsCheck)])],
    ['filter-output', base('filter', 'output', -110, [newJump(chains.endpointsCheck), newJump(chains.firewallCheck)])],
    ['filter-output-post-dnat', base('filter', 'output', -90, [newJump(chains.clusterIPsCheck)])],
    ['nat-prerouting', base('nat', 'prerouting', -100, [rule(jump(chains.services))])],
    ['nat-output', base('nat', 'output', -100, [rule(jump(chains.services))])],
    ['nat-postrouting', base('nat', 'postrouting', 100, [rule(jump(chains.masquerading))])],
    [chains.markMasq, { rules: [rule(...b.setMark('or', mark))] }],
    [chains.masquerading, { rules: [rule(...b.markClear(mark), b.verdict('return')), rule(...b.setMark('xor', mark)), rule(b.masqueradeFullyRandom())] }],
    [chains.reject, { rules: [rule(b.reject())] }],
    [chains.endpointsCheck, { rules: [rule(...b.vmapDaddrProtoPort(maps.noEndpointServices)), rule(...nodePortDest(), ...b.vmapProtoPort(maps.noEndpointNodePorts))] }],
    [chains.firewallCheck, { rules: [rule(...b.vmapDaddrProtoPort(maps.firewallIPs))] }],
    [chains.clusterIPsCheck, { rules: [rule(...b.inSet('daddr', maps.clusterIPs), b.reject())] }],
    [chains.services, { rules: [rule(...b.vmapDaddrProtoPort(maps.serviceIPs)), rule(...nodePortDest(), ...b.vmapProtoPort(maps.serviceNodePorts))] }],
  ]);
}

class FragmentBuilder implements Fragment {
  chains = new Map<string, ChainSpec>();
  elements = new Map<string, Map<string, Element>>();
  sets = new Map<string, SetSpec>();

  chain(name: string): Rule[] {
    let spec = this.chains.get(name);
    if (!spec) this.chains.set(name, (spec = { rules: [] }));
    return spec.rules;
  }

  element(map: string, key: Buffer, verdict?: Verdict, comment?: string): void {
    let elements = this.elements.get(map);
    if (!elements) this.elements.set(map, (elements = new Map()));
    const element: Element = verdict ? { key, verdict } : { key };
    if (comment) element.comment = comment;
    elements.set(key.toString('hex'), element);
  }
}

const goto = (chain: string): Verdict => ({ code: 'goto', chain });

/** The elements of @nodeport-ips: the node addresses that accept NodePort traffic. */
export function nodePortFragment(ips: readonly string[]): Fragment {
  const f = new FragmentBuilder();
  for (const ip of ips) f.element(maps.nodePortIPs, b.ipBytes(ip));
  return f;
}

/** The objects of one service port (pkg/proxy/nftables/proxier.go syncProxyRules, per service). */
export function serviceFragment(port: ServicePort, options: NftRulesetOptions): Fragment {
  const f = new FragmentBuilder();
  const proto = protoOf(port);
  const base = chainBase(port);
  const clusterChain = `service-${base}`;
  const localChain = `local-${base}`;
  const externalChain = `external-${base}`;
  const firewallChain = `firewall-${base}`;
  const { all, local } = categorizeEndpoints(port);
  const externallyAccessible = port.nodePort > 0 || port.externalIPs.length > 0 || port.loadBalancerIPs.length > 0;
  const usesCluster = all.length > 0 && (!port.internalPolicyLocal || externallyAccessible);
  const usesLocal = local.length > 0 && (port.internalPolicyLocal || (port.externalPolicyLocal && externallyAccessible));
  const hasEndpoints = all.length > 0;
  const hasInternal = hasEndpoints && (!port.internalPolicyLocal || local.length > 0);
  const hasExternal = hasEndpoints && (!port.externalPolicyLocal || local.length > 0);
  const internalChain = port.internalPolicyLocal ? localChain : clusterChain;
  const externalPolicyChain = port.externalPolicyLocal ? localChain : clusterChain;
  // no endpoints at all: reject; endpoints, but none for this policy: drop
  const noEndpoints: Verdict = hasEndpoints ? { code: 'drop' } : goto(chains.reject);
  const key = (ip: string) => b.ipProtoPortKey(ip, proto, port.port);

  f.element(maps.clusterIPs, b.ipBytes(port.clusterIP));
  if (hasInternal) f.element(maps.serviceIPs, key(port.clusterIP), goto(internalChain));
  else f.element(maps.noEndpointServices, key(port.clusterIP), noEndpoints, port.name);
  for (const ip of [...port.externalIPs, ...port.loadBalancerIPs]) {
    if (hasEndpoints) f.element(maps.serviceIPs, key(ip), goto(externalChain));
    if (!hasExternal) f.element(maps.noEndpointServices, key(ip), noEndpoints, port.name);
  }
  if (port.loadBalancerIPs.length > 0 && port.loadBalancerSourceRanges.length > 0) {
    f.chain(firewallChain).push(b.dropUnlessSaddrIn(port.loadBalancerSourceRanges));
    for (const ip of port.loadBalancerIPs) f.element(maps.firewallIPs, key(ip), goto(firewallChain), port.name);
  }
  if (port.nodePort > 0) {
    if (hasEndpoints) f.element(maps.serviceNodePorts, b.protoPortKey(proto, port.nodePort), goto(externalChain));
    if (!hasExternal) f.element(maps.noEndpointNodePorts, b.protoPortKey(proto, port.nodePort), noEndpoints, port.name);
  }

  const podCIDR = options.clusterCIDRs.find((cidr) => cidr.includes('.'));
  if (hasInternal && (options.masqueradeAll || podCIDR)) {
    const match = [...b.matchIp('daddr', port.clusterIP), ...b.matchProtoPort(proto, port.port)];
    const notPod = options.masqueradeAll || !podCIDR ? [] : b.matchIp('saddr', podCIDR, 'neq');
    f.chain(internalChain).push(rule(...match, ...notPod, jump(chains.markMasq)));
  }
  if (hasEndpoints && externallyAccessible) {
    const ext = f.chain(externalChain);
    if (!port.externalPolicyLocal) ext.push(rule(jump(chains.markMasq)));
    else {
      if (podCIDR) ext.push({ exprs: [...b.matchIp('saddr', podCIDR), b.verdict('goto', clusterChain)], comment: 'short-circuit pod traffic' });
      ext.push({ exprs: [...b.fibLocal('saddr'), jump(chains.markMasq)], comment: 'masquerade local traffic' });
      ext.push({ exprs: [...b.fibLocal('saddr'), b.verdict('goto', clusterChain)], comment: 'short-circuit local traffic' });
    }
    if (hasExternal) ext.push(rule(b.verdict('goto', externalPolicyChain)));
  }

  const affinity = port.affinityTimeout;
  const reachable = new Map<string, Endpoint>();
  const serviceToEndpoints = (chain: string, endpoints: readonly Endpoint[]) => {
    const rules = f.chain(chain);
    if (affinity) for (const endpoint of endpoints) rules.push(rule(...b.inSet('saddr', `affinity-${endpointBase(port, endpoint)}`), b.verdict('goto', `endpoint-${endpointBase(port, endpoint)}`)));
    for (const exprs of b.numgenPick(endpoints.map((endpoint) => goto(`endpoint-${endpointBase(port, endpoint)}`)))) rules.push({ exprs });
    for (const endpoint of endpoints) reachable.set(`${endpoint.ip}:${endpoint.port}`, endpoint);
  };
  if (usesCluster) serviceToEndpoints(clusterChain, all);
  if (usesLocal) serviceToEndpoints(localChain, local);
  for (const endpoint of reachable.values()) {
    const name = endpointBase(port, endpoint);
    const rules = f.chain(`endpoint-${name}`);
    rules.push(rule(...b.matchIp('saddr', endpoint.ip), jump(chains.markMasq)));
    if (affinity) {
      f.sets.set(`affinity-${name}`, { name: `affinity-${name}`, keyType: b.DataType.ipv4Addr, keyLen: 4, flags: SetFlag.timeout | SetFlag.eval, timeoutMs: BigInt(affinity) * 1000n });
      rules.push(rule(...b.updateSetWithSaddr(`affinity-${name}`)));
    }
    rules.push(rule(...b.dnatTo(proto, endpoint.ip, endpoint.port)));
  }
  return f;
}
