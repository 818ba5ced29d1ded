/**
 * The pure parts of the nftables mode: kube-proxy's chain names, the per-service fragments
 * (which map gets which element, which chains exist), the owner counts of shared elements,
 * the plan's message order, and the encoder's decode → encode round trip and printing.
 */
import { describe, expect, it } from 'vitest';
import { buildProxyModel } from '../../proxy/model.js';
import { chainBase, endpointBase, fixedChains, fixedSets, maps, serviceFragment, type Fragment } from '../../proxy/nftables/ruleset.js';
import { Desired, Plan } from '../../proxy/nftables/state.js';
import { canonicalExprs, decodeExprs, encodeExprs, type Expr } from '../../lib/netfilter/nftables/expr.js';
import { printRule, words } from '../../lib/netfilter/nftables/print.js';
import { cidrIntervals, dnatTo, ipProtoPortKey } from '../../lib/netfilter/nftables/build.js';
import { parseMessages } from '../../lib/netfilter/nftables/wire.js';
import { Batch } from '../../lib/netfilter/nftables/batch.js';
import { localIPv4AddressesIn } from '../../lib/net.js';
import { service, slice } from './proxy-fixtures.js';

const options = { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 };
const ports = (services: Parameters<typeof buildProxyModel>[0], slices: Parameters<typeof buildProxyModel>[1]) => buildProxyModel(services, slices, 'node-a').ports;
const verdictOf = (fragment: Fragment, map: string, key: Buffer) => fragment.elements.get(map)?.get(key.toString('hex'))?.verdict;

describe('nftables chain names', () => {
  it('are kube-proxy\'s (hash of ns/name/proto/port, endpoint ip/port)', () => {
    const [port] = ports([service('svc1', '172.30.0.41', [{ name: 'p80', port: 80 }])], [slice('svc1', [{ name: 'p80', port: 80 }], [{ ip: '10.180.0.1' }])]);
    expect(port && chainBase(port)).toBe('ULMVA6XW-ns1/svc1/tcp/p80');
    expect(port && port.endpoints[0] && endpointBase(port, port.endpoints[0])).toBe('5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80');
  });
});

describe('nftables service fragments', () => {
  const http = [{ name: 'http', port: 80 }];
  const build = (svc = service('web', '10.96.0.10', [{ name: 'http', port: 80, nodePort: 30080 }], { type: 'NodePort' }), endpoints = [{ ip: '10.244.1.2', node: 'node-a' }, { ip: '10.244.2.2', node: 'node-b' }]) => {
    const [port] = ports([svc], [slice(svc.metadata?.name ?? '', http, endpoints)]);
    if (!port) throw new Error('no port');
    return { port, fragment: serviceFragment(port, options) };
  };

  it('ClusterIP and NodePort: dispatch elements, cluster chain with numgen, endpoint chains with dnat', () => {
    const { port, fragment } = build();
    const base = chainBase(port);
    expect(verdictOf(fragment, maps.serviceIPs, ipProtoPortKey('10.96.0.10', 'tcp', 80))).toEqual({ code: 'goto', chain: `service-${base}` });
    expect(fragment.elements.get(maps.serviceNodePorts)?.size).toBe(1);
    expect([...fragment.chains.keys()].sort()).toEqual([`endpoint-${endpointBase(port, port.endpoints[0]!)}`, `endpoint-${endpointBase(port, port.endpoints[1]!)}`, `external-${base}`, `service-${base}`].sort());
    const service = fragment.chains.get(`service-${base}`)?.rules ?? [];
    // one rule per endpoint (build.ts numgenPick): mod 2 for the first, then a bare goto
    expect(printRule(service[1]?.exprs ?? [])).toBe(`[ numgen reg 1 = random mod 2 ]\n[ cmp eq reg 1 0x00000000 ]\n[ immediate reg 0 goto -> endpoint-${endpointBase(port, port.endpoints[0]!)} ]`);
    expect(printRule(service[2]?.exprs ?? [])).toBe(`[ immediate reg 0 goto -> endpoint-${endpointBase(port, port.endpoints[1]!)} ]`);
    expect(service).toHaveLength(3);
    expect(service.some((rule) => rule.anon)).toBe(false);
  });

  it('no endpoints: the ClusterIP and NodePort go to reject-chain; no chains', () => {
    const { fragment } = build(undefined, []);
    expect(verdictOf(fragment, maps.noEndpointServices, ipProtoPortKey('10.96.0.10', 'tcp', 80))).toEqual({ code: 'goto', chain: 'reject-chain' });
    expect(fragment.elements.get(maps.noEndpointNodePorts)?.size).toBe(1);
    expect(fragment.chains.size).toBe(0);
  });

  it('externalTrafficPolicy Local without local endpoints: external traffic is dropped, the ClusterIP still served', () => {
    const { port, fragment } = build(service('web', '10.96.0.10', [{ name: 'http', port: 80, nodePort: 30080 }], { type: 'NodePort', externalTrafficPolicy: 'Local' }), [{ ip: '10.244.2.2', node: 'node-b' }]);
    expect(fragment.elements.get(maps.noEndpointNodePorts)?.values().next().value?.verdict).toEqual({ code: 'drop' });
    expect(verdictOf(fragment, maps.serviceIPs, ipProtoPortKey('10.96.0.10', 'tcp', 80))).toEqual({ code: 'goto', chain: `service-${chainBase(port)}` });
  });

  it('loadBalancerSourceRanges: a firewall chain and a firewall-ips element per LB IP', () => {
    const svc = { ...service('lb', '10.96.0.11', [{ name: 'http', port: 80, nodePort: 30081 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.168.0.0/24'] }), status: { loadBalancer: { ingress: [{ ip: '10.98.0.1' }] } } };
    const { port, fragment } = build(svc);
    expect(verdictOf(fragment, maps.firewallIPs, ipProtoPortKey('10.98.0.1', 'tcp', 80))).toEqual({ code: 'goto', chain: `firewall-${chainBase(port)}` });
    expect(fragment.chains.get(`firewall-${chainBase(port)}`)?.rules[0]?.anon?.elements.length).toBe(3);
  });

  it('session affinity: one timeout set per endpoint, checked before numgen', () => {
    const { port, fragment } = build(service('web', '10.96.0.10', http, { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }));
    expect([...fragment.sets.values()].map((set) => set.timeoutMs)).toEqual([60_000n, 60_000n]);
    // masquerade of off-cluster sources, one affinity rule per endpoint, then numgen
    expect(fragment.chains.get(`service-${chainBase(port)}`)?.rules.map((rule) => rule.exprs.map((expr) => expr.kind).join(' '))).toEqual([
      'payload cmp meta cmp payload cmp payload cmp immediate',
      'payload lookup immediate',
      'payload lookup immediate',
      'numgen cmp immediate',
      'immediate',
    ]);
  });
});

describe('nftables plan', () => {
  it('a ClusterIP shared by two ports stays in @cluster-ips until both are gone', () => {
    const svc = service('multi', '10.96.0.20', [{ name: 'a', port: 80 }, { name: 'b', port: 81 }]);
    const [a, b] = ports([svc], [slice('multi', [{ name: 'a', port: 80 }, { name: 'b', port: 81 }], [{ ip: '10.244.1.2' }])]).map((port) => serviceFragment(port, options));
    const desired = new Desired(fixedSets, fixedChains(options));
    desired.change(undefined, a, undefined);
    desired.change(undefined, b, undefined);
    const plan = new Plan();
    desired.change(a, undefined, plan);
    expect(plan.delElements.get(maps.clusterIPs)).toBeUndefined();
    expect(plan.staleChains.length).toBeGreaterThan(0);
    const last = new Plan();
    desired.change(b, undefined, last);
    expect(last.delElements.get(maps.clusterIPs)).toHaveLength(1);
  });

  it('emits sets and chains, then chain contents, then elements, then stale chains', () => {
    const desired = new Desired(fixedSets, fixedChains(options));
    const plan = desired.repair({ exists: false, chains: new Map([['old/chain', { key: '' }]]), sets: new Map(), elements: new Map() });
    const batch = plan.toBatch('kube-proxy', 'rules for kube-proxy');
    const last = (prefix: string) => batch.descriptions.map((text) => text.startsWith(prefix)).lastIndexOf(true);
    const first = (prefix: string) => batch.descriptions.findIndex((text) => text.startsWith(prefix));
    expect(batch.descriptions[0]).toBe('add table kube-proxy');
    expect(last('add chain')).toBeLessThan(first('add rule'));
    expect(last('add rule')).toBeLessThan(first('flush chain'));
    expect(batch.descriptions.slice(-2)).toEqual(['flush chain old/chain', 'delete chain old/chain']);
    expect(parseMessages(Buffer.concat(batch.messages))).toHaveLength(batch.size);
  });
});

describe('nftables repair of a table too big to read rules back', () => {
  it('trusts a chain whose rules were not read only if this process wrote it the same', () => {
    const desired = new Desired(fixedSets, fixedChains(options));
    const kernel = { exists: true, chains: new Map([...desired.chains.keys()].map((name) => [name, {}])), sets: new Map(fixedSets.map((set) => [set.name, set])), elements: new Map() };
    expect(desired.repair(kernel).fillChains.length).toBe(desired.chains.size);
    expect(desired.repair(kernel, new Desired(fixedSets, fixedChains(options))).fillChains.length).toBe(0);
  });
});

describe('nf_tables expressions', () => {
  it('decode(encode(x)) is x, and the kernel\'s nat form is canonicalised', () => {
    const exprs: Expr[] = dnatTo('tcp', '10.1.2.3', 8080);
    expect(encodeExprs(decodeExprs(encodeExprs(exprs)))).toEqual(encodeExprs(exprs));
    const kernelNat: Expr[] = [...exprs.slice(0, -1), { kind: 'nat', type: 'dnat', addrMin: 1, addrMax: 1, protoMin: 2, protoMax: 2, flags: 3 }];
    expect(canonicalExprs(kernelNat)).toEqual(canonicalExprs(exprs));
  });

  it('prints data registers as libnftnl does', () => {
    expect(words(Buffer.from([0, 80]))).toBe('0x00005000');
    expect(words(Buffer.from([10, 0, 0, 1, 6]))).toBe('0x0100000a 0x00000006');
  });

  it('merges source ranges into interval elements with nft\'s leading end marker', () => {
    const hex = cidrIntervals(['10.1.0.0/16', '10.1.128.0/17', '203.0.113.0/25']).map((element) => `${element.key.toString('hex')}${element.intervalEnd ? '/end' : ''}`);
    expect(hex).toEqual(['00000000/end', '0a010000', '0a020000/end', 'cb007100', 'cb007180/end']);
  });
});

describe('nftables nodePortAddresses', () => {
  it('the NodePort dispatch looks daddr up in @nodeport-ips instead of fib daddr type local', () => {
    const services = fixedChains({ ...options, nodePortIPsOnly: true }).get('services')?.rules ?? [];
    expect(printRule(services[1]?.exprs ?? [])).toContain('lookup reg 1 set nodeport-ips');
    expect(printRule(services[1]?.exprs ?? [])).not.toContain('fib');
    expect(printRule(fixedChains(options).get('services')?.rules[1]?.exprs ?? [])).toContain('fib');
    expect(fixedSets.map((set) => set.name)).toContain(maps.nodePortIPs);
  });

  it('the local addresses within the CIDRs (kube-proxy GetNodeIPs)', () => {
    expect(localIPv4AddressesIn(['127.0.0.0/8'])).toContain('127.0.0.1');
    expect(localIPv4AddressesIn(['203.0.113.0/24', 'primary', 'garbage'])).toEqual([]);
  });
});

describe('nftables batch: anonymous sets', () => {
  // The kernel's "__map%d" naming sscanf()s every set of the table per new set (quadratic at 10k
  // Services); knode names them itself and refers to a set made in the same batch by id only.
  const attrsOf = (message: Buffer) => {
    const out = new Map<number, Buffer>();
    for (let at = 20; at + 4 <= message.length; ) {
      const length = message.readUInt16LE(at);
      out.set(message.readUInt16LE(at + 2) & 0x3fff, message.subarray(at + 4, at + length));
      at += (length + 3) & ~3;
    }
    return out;
  };
  const numgenRule = { exprs: [{ kind: 'numgen', type: 'random', modulus: 2, offset: 0, dreg: 1 }, { kind: 'lookup', set: '__map%d', sreg: 1, dreg: 0 }] as Expr[], anon: { spec: { keyType: 0, keyLen: 4, flags: 0x1 | 0x2 | 0x8, dataType: 0xffffff00 }, elements: [{ key: Buffer.from([0, 0, 0, 0]), verdict: { code: 'accept' as const } }] } };

  it('get a concrete name, unique across batches, and their elements name the set by id', () => {
    const names = [new Batch('t'), new Batch('t')].map((batch) => {
      batch.addRule('c', numgenRule);
      const [newSet, newElem, newRule] = batch.messages.map((m) => parseMessages(m)[0]);
      expect([newSet?.type, newElem?.type, newRule?.type].map((type) => (type ?? 0) & 0xff)).toEqual([9, 12, 6]);
      const set = attrsOf(batch.messages[0] as Buffer);
      const elem = attrsOf(batch.messages[1] as Buffer);
      expect(elem.has(2)).toBe(false); // NFTA_SET_ELEM_LIST_SET: left out
      expect(elem.get(4)).toEqual(set.get(10)); // NFTA_SET_ELEM_LIST_SET_ID = NFTA_SET_ID
      const name = set.get(2)?.toString('utf8').replace(/\0.*$/s, '') ?? '';
      expect(name).toMatch(/^__map\d+_[0-9a-f]{6}$/);
      const lookup = decodeExprs(attrsOf(batch.messages[2] as Buffer).get(4) ?? Buffer.alloc(0)).find((expr) => expr.kind === 'lookup');
      expect(lookup?.kind === 'lookup' && lookup.set).toBe(name);
      return name;
    });
    expect(names[0]).not.toBe(names[1]);
  });
});
