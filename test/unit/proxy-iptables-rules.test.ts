import { describe, expect, it } from 'vitest';
import { buildProxyModel } from '../../proxy/model.js';
import { buildRestorePayload, jumpRules, portChainNames, type RuleOptions } from '../../proxy/iptables/rules.js';
import { parseRestore, tracePacket, type TraceContext } from '../helpers/iptables-trace.js';
import { endpointChainName, serviceChainName, externalChainName, base32 } from '../../proxy/iptables/chain-names.js';
import { service, slice } from './proxy-fixtures.js';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';

const options: RuleOptions = { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 };
const nodeIP = '192.168.50.2';

function ruleset(services: V1Service[], slices: V1EndpointSlice[], node = 'node-a') {
  const model = buildProxyModel(services, slices, node);
  const out = buildRestorePayload({ model, options, changed: 'all', existingChains: new Set() });
  return parseRestore(out.payload, jumpRules);
}

/** A deterministic random source (LCG), so distributions are repeatable. */
function context(seed = 1): TraceContext {
  let state = seed;
  return {
    localAddresses: [nodeIP, '127.0.0.1'],
    random: () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31),
    now: 1000,
    recent: new Map(),
  };
}

const web = () => service('web', '10.96.0.10', [{ name: 'http', port: 80, nodePort: 30080 }], { type: 'NodePort' });
const webEndpoints = (extra: Partial<{ node: string }> = {}) =>
  slice('web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.1', node: 'node-a', ...extra }, { ip: '10.244.2.1', node: 'node-b' }, { ip: '10.244.3.1', node: 'node-b' }]);

describe('chain names (golden, from kube-proxy test data)', () => {
  it('matches kube-proxy names', () => {
    expect(serviceChainName('ns1/svc1:p80', 'TCP')).toBe('KUBE-SVC-XPGD46QRK7WJZT7O');
    expect(endpointChainName('ns1/svc1:p80', 'TCP', '10.180.0.1:80')).toBe('KUBE-SEP-SXIVWICOYRO3J4NJ');
    expect(serviceChainName('ns2/svc2:p80', 'TCP')).toBe('KUBE-SVC-GNZBNJ2PO5MGZ6GT');
    expect(serviceChainName('ns3/svc3:p80', 'TCP')).toBe('KUBE-SVC-X27LE4BHSL4DOUIK');
    expect(serviceChainName('ns4/svc4:p80', 'TCP')).toBe('KUBE-SVC-4SW47YFZTEDKD3PK');
    expect(externalChainName('ns5/svc5:p80', 'TCP')).toBe('KUBE-EXT-NUKIZ6OKUXPJNT4C');
  });
  it('base32 is RFC 4648', () => {
    expect(base32(Buffer.from('foobar'))).toBe('MZXW6YTBOI');
  });
});

describe('iptables rules, traced', () => {
  it('ClusterIP from a pod reaches every endpoint, roughly uniformly, without masquerade', () => {
    const rules = ruleset([web()], [webEndpoints()]);
    const ctx = context();
    const hits = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const result = tracePacket(rules, { src: '10.244.1.7', dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, 'remote', ctx);
      hits.set(result.dnat!, (hits.get(result.dnat!) ?? 0) + 1);
      expect(result.masquerade).toBe(false);
    }
    expect([...hits.keys()].sort()).toEqual(['10.244.1.1:8080', '10.244.2.1:8080', '10.244.3.1:8080']);
    for (const count of hits.values()) expect(count).toBeGreaterThan(800);
  });

  it('ClusterIP from outside the cluster CIDR (the node itself) is masqueraded', () => {
    const result = tracePacket(ruleset([web()], [webEndpoints()]), { src: nodeIP, dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, 'local', context());
    expect(result.dnat).toMatch(/^10\.244\.\d\.1:8080$/);
    expect(result.masquerade).toBe(true);
  });

  it('hairpin: an endpoint reaching itself through the service is masqueraded', () => {
    const rules = ruleset([web()], [slice('web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.1' }])]);
    const result = tracePacket(rules, { src: '10.244.1.1', dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, 'remote', context());
    expect(result.dnat).toBe('10.244.1.1:8080');
    expect(result.masquerade).toBe(true);
  });

  it('wrong port or protocol is not touched', () => {
    const rules = ruleset([web()], [webEndpoints()]);
    expect(tracePacket(rules, { src: '10.244.1.7', dst: '10.96.0.10', protocol: 'tcp', dport: 81 }, 'remote', context()).dnat).toBeUndefined();
    expect(tracePacket(rules, { src: '10.244.1.7', dst: '10.96.0.10', protocol: 'udp', dport: 80 }, 'remote', context()).dnat).toBeUndefined();
  });

  it('NodePort on a node address reaches the endpoints and is masqueraded (Cluster policy)', () => {
    const rules = ruleset([web()], [webEndpoints()]);
    const result = tracePacket(rules, { src: '192.168.50.9', dst: nodeIP, protocol: 'tcp', dport: 30080 }, 'remote', context());
    expect(result.dnat).toMatch(/^10\.244\.\d\.1:8080$/);
    expect(result.masquerade).toBe(true);
    expect(result.visited).toContain('nat/KUBE-NODEPORTS');
    expect(tracePacket(rules, { src: '192.168.50.9', dst: '192.168.50.77', protocol: 'tcp', dport: 30080 }, 'remote', context()).dnat).toBeUndefined();
  });

  it('nodePortAddresses limits NodePorts to local addresses in those CIDRs', () => {
    const model = buildProxyModel([web()], [webEndpoints()], 'node-a');
    const limited = parseRestore(buildRestorePayload({ model, options: { ...options, nodePortAddresses: ['192.168.50.0/24'] }, changed: 'all', existingChains: new Set() }).payload, jumpRules);
    const ctx = { ...context(), localAddresses: [nodeIP, '172.16.0.1'] };
    expect(tracePacket(limited, { src: '192.168.50.9', dst: nodeIP, protocol: 'tcp', dport: 30080 }, 'remote', ctx).dnat).toBeDefined();
    expect(tracePacket(limited, { src: '192.168.50.9', dst: '172.16.0.1', protocol: 'tcp', dport: 30080 }, 'remote', ctx).dnat).toBeUndefined();
  });

  it('externalTrafficPolicy Local: NodePort only to local endpoints, client IP kept; none local → DROP', () => {
    const svc = service('web', '10.96.0.10', [{ name: 'http', port: 80, nodePort: 30080 }], { type: 'NodePort', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 });
    const rules = ruleset([svc], [webEndpoints()]);
    const ctx = context();
    for (let i = 0; i < 50; i++) {
      const result = tracePacket(rules, { src: '192.168.50.9', dst: nodeIP, protocol: 'tcp', dport: 30080 }, 'remote', ctx);
      expect(result.dnat).toBe('10.244.1.1:8080');
      expect(result.masquerade).toBe(false);
    }
    const onB = ruleset([svc], [webEndpoints()], 'node-c');
    const dropped = tracePacket(onB, { src: '192.168.50.9', dst: nodeIP, protocol: 'tcp', dport: 30080 }, 'remote', ctx);
    expect(dropped.dnat).toBeUndefined();
    expect(dropped.filter).toBe('DROP');
    // cluster IP traffic still goes anywhere
    expect(tracePacket(onB, { src: '10.244.1.7', dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, 'remote', ctx).dnat).toBeDefined();
    // the health check node port is accepted
    expect(tracePacket(onB, { src: '192.168.50.9', dst: nodeIP, protocol: 'tcp', dport: 32000 }, 'remote', ctx).filter).toBe('ACCEPT');
  });

  it('internalTrafficPolicy Local: cluster IP only to local endpoints', () => {
    const svc = service('web', '10.96.0.10', [{ name: 'http', port: 80 }], { internalTrafficPolicy: 'Local' });
    const ctx = context();
    for (let i = 0; i < 30; i++) {
      expect(tracePacket(ruleset([svc], [webEndpoints()]), { src: '10.244.1.7', dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, 'remote', ctx).dnat).toBe('10.244.1.1:8080');
    }
    const none = tracePacket(ruleset([svc], [webEndpoints()], 'node-z'), { src: '10.244.1.7', dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, 'remote', ctx);
    expect(none.dnat).toBeUndefined();
    expect(none.filter).toBe('DROP');
  });

  it('a service without endpoints is REJECTed (cluster IP and NodePort)', () => {
    const rules = ruleset([web()], [slice('web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.1', ready: false, serving: false }])]);
    const local = tracePacket(rules, { src: nodeIP, dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, 'local', context());
    expect(local.dnat).toBeUndefined();
    expect(local.filter).toBe('REJECT');
    const forwarded = tracePacket(rules, { src: '10.244.1.7', dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, 'remote', context());
    expect(forwarded.filter).toBe('REJECT');
    const nodePort = tracePacket(rules, { src: '192.168.50.9', dst: nodeIP, protocol: 'tcp', dport: 30080 }, 'remote', context());
    expect(nodePort.filter).toBe('REJECT');
  });

  it('session affinity ClientIP sticks per client and expires after the timeout', () => {
    const svc = service('web', '10.96.0.10', [{ name: 'http', port: 80 }], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } });
    const rules = ruleset([svc], [webEndpoints()]);
    const ctx = context(7);
    const packet = (src: string) => ({ src, dst: '10.96.0.10', protocol: 'tcp' as const, dport: 80 });
    const first = tracePacket(rules, packet('10.244.9.9'), 'remote', ctx).dnat;
    for (let i = 0; i < 40; i++) {
      ctx.now += 1;
      expect(tracePacket(rules, packet('10.244.9.9'), 'remote', ctx).dnat).toBe(first);
    }
    const others = new Set<string>();
    for (let i = 0; i < 40; i++) others.add(tracePacket(rules, packet(`10.244.8.${i + 1}`), 'remote', ctx).dnat!);
    expect(others.size).toBeGreaterThan(1);
    ctx.now += 1000;
    const after = new Set<string>();
    for (let i = 0; i < 40; i++) {
      ctx.now += 100;
      after.add(tracePacket(rules, packet('10.244.9.9'), 'remote', ctx).dnat!);
    }
    expect(after.size).toBeGreaterThan(1);
  });

  it('external IPs reach the service; UDP works like TCP', () => {
    const svc = service('dns', '10.96.0.53', [{ name: 'dns', port: 53, protocol: 'UDP' }], { externalIPs: ['203.0.113.5'] });
    const rules = ruleset([svc], [slice('dns', [{ name: 'dns', port: 5353, protocol: 'UDP' }], [{ ip: '10.244.1.5' }])]);
    expect(tracePacket(rules, { src: '10.244.1.7', dst: '10.96.0.53', protocol: 'udp', dport: 53 }, 'remote', context()).dnat).toBe('10.244.1.5:5353');
    const external = tracePacket(rules, { src: '198.51.100.1', dst: '203.0.113.5', protocol: 'udp', dport: 53 }, 'remote', context());
    expect(external.dnat).toBe('10.244.1.5:5353');
    expect(external.masquerade).toBe(true);
  });
});

describe('loadBalancerSourceRanges (KUBE-FW-* and KUBE-PROXY-FIREWALL), traced', () => {
  const lbIP = '203.0.113.40';
  const lb = (ranges: string[], type = 'LoadBalancer') => {
    const svc = service('lb', '10.96.0.40', [{ name: 'http', port: 80, nodePort: 30040 }], { type, loadBalancerSourceRanges: ranges });
    svc.status = { loadBalancer: { ingress: [{ ip: lbIP }] } };
    return svc;
  };
  const lbEndpoints = () => slice('lb', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.40' }, { ip: '10.244.2.40' }]);
  const toLB = (src: string) => ({ src, dst: lbIP, protocol: 'tcp' as const, dport: 80 });

  it('sources inside a range reach an endpoint (masqueraded); others are dropped by KUBE-PROXY-FIREWALL', () => {
    const rules = ruleset([lb([' 198.51.100.0/24', '192.0.2.7/32', 'not-a-cidr'])], [lbEndpoints()]);
    for (const src of ['198.51.100.1', '198.51.100.254', '192.0.2.7']) {
      const allowed = tracePacket(rules, toLB(src), 'remote', context());
      expect(allowed.dnat, src).toMatch(/^10\.244\.[12]\.40:8080$/);
      expect([undefined, 'ACCEPT'], src).toContain(allowed.filter);
      expect(allowed.masquerade).toBe(true);
    }
    for (const src of ['198.51.101.1', '192.0.2.8', '10.244.1.5']) {
      const denied = tracePacket(rules, toLB(src), 'remote', context());
      expect(denied.dnat, src).toBeUndefined();
      expect(denied.filter, src).toBe('DROP');
      expect(denied.visited).toContain('filter/KUBE-PROXY-FIREWALL');
    }
  });

  it('the ranges do not restrict the cluster IP or the NodePort', () => {
    const rules = ruleset([lb(['198.51.100.0/24'])], [lbEndpoints()]);
    expect(tracePacket(rules, { src: '10.244.5.5', dst: '10.96.0.40', protocol: 'tcp', dport: 80 }, 'remote', context()).dnat).toMatch(/:8080$/);
    const nodePort = tracePacket(rules, { src: '192.0.2.99', dst: nodeIP, protocol: 'tcp', dport: 30040 }, 'remote', context());
    expect(nodePort.dnat).toMatch(/:8080$/);
    expect([undefined, 'ACCEPT']).toContain(nodePort.filter);
  });

  it('without ranges, or for a service that is not a LoadBalancer, every source reaches the LB IP', () => {
    for (const svc of [lb([]), lb(['198.51.100.0/24'], 'NodePort')]) {
      const rules = ruleset([svc], [lbEndpoints()]);
      const result = tracePacket(rules, toLB('192.0.2.8'), 'remote', context());
      expect(result.dnat).toMatch(/:8080$/);
      expect(result.visited.some((chain) => chain.startsWith('nat/KUBE-FW-'))).toBe(false);
    }
  });

  it('with ranges but no endpoints every source is refused (KUBE-PROXY-FIREWALL comes first, as in kube-proxy)', () => {
    const rules = ruleset([lb(['198.51.100.0/24'])], []);
    for (const src of ['198.51.100.1', '192.0.2.8']) {
      const result = tracePacket(rules, toLB(src), 'remote', context());
      expect(result.dnat).toBeUndefined();
      expect(result.filter).toBe('DROP');
    }
  });

  it('the model normalises the ranges and keeps only IPv4 CIDRs', () => {
    const port = buildProxyModel([lb(['198.51.100.77/24', 'bogus', '2001:db8::/64', '192.0.2.7/32'])], [], 'node-a').ports[0]!;
    expect(port.loadBalancerSourceRanges).toEqual(['192.0.2.7/32', '198.51.100.0/24']);
  });
});

describe('partial sync payloads (KEP-3453)', () => {
  const services = [web(), service('other', '10.96.0.11', [{ port: 443 }])];
  const slices = [webEndpoints(), slice('other', [{ port: 8443 }], [{ ip: '10.244.5.5' }])];

  it('rewrites only changed services, keeps referencing the others, deletes stale chains', () => {
    const model = buildProxyModel(services, slices, 'node-a');
    const full = buildRestorePayload({ model, options, changed: 'all', existingChains: new Set() });
    expect(full.writtenPorts).toBe(2);
    const otherChain = serviceChainName('ns1/other', 'TCP');
    const changedModel = buildProxyModel(services, [slice('web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.1' }]), slices[1]!], 'node-a');
    const partial = buildRestorePayload({ model: changedModel, options, changed: new Set(['ns1/web:http']), existingChains: full.chains });
    expect(partial.writtenPorts).toBe(1);
    expect(partial.payload).not.toContain(`:${otherChain} `);
    expect(partial.payload).toContain(`-j ${otherChain}`);
    const removed = endpointChainName('ns1/web:http', 'TCP', '10.244.2.1:8080');
    expect(partial.payload).toContain(`-X ${removed}`);
    expect(partial.chains.has(removed)).toBe(false);
    // the kernel's view after both payloads (noflush semantics) routes web only to the remaining endpoint
    const kernel = applyNoflush([full.payload, partial.payload]);
    const rules = parseRestore(kernel, jumpRules);
    for (let i = 0; i < 20; i++) {
      expect(tracePacket(rules, { src: '10.244.1.7', dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, 'remote', context(i + 1)).dnat).toBe('10.244.1.1:8080');
    }
    expect(tracePacket(rules, { src: '10.244.1.7', dst: '10.96.0.11', protocol: 'tcp', dport: 443 }, 'remote', context()).dnat).toBe('10.244.5.5:8443');
  });

  it('writes a service whose chains are missing even when it is not marked changed', () => {
    const model = buildProxyModel(services, slices, 'node-a');
    const out = buildRestorePayload({ model, options, changed: new Set(), existingChains: new Set() });
    expect(out.writtenPorts).toBe(2);
  });
});

/** Simulates `iptables-restore --noflush`: declared chains are flushed, others kept. */
function applyNoflush(payloads: string[]): string {
  const tables = new Map<string, Map<string, string[]>>();
  for (const payload of payloads) {
    let table: Map<string, string[]> | undefined;
    for (const line of payload.split('\n')) {
      if (line.startsWith('*')) {
        table = tables.get(line) ?? new Map();
        tables.set(line, table);
      } else if (line.startsWith(':')) table!.set(line.slice(1).split(' ')[0]!, []);
      else if (line.startsWith('-A ')) table!.get(line.split(' ')[1]!)!.push(line);
      else if (line.startsWith('-X ')) table!.delete(line.slice(3));
    }
  }
  return [...tables].map(([name, chains]) => [name, ...[...chains.keys()].map((chain) => `:${chain} - [0:0]`), ...[...chains.values()].flat(), 'COMMIT'].join('\n')).join('\n');
}

describe('portChainNames', () => {
  it('names exactly the chains a full write declares, for every kind of service port', () => {
    const services = [
      web(),
      service('local', '10.96.0.20', [{ name: 'http', port: 80, nodePort: 30081 }], { type: 'NodePort', externalTrafficPolicy: 'Local' }),
      service('ext', '10.96.0.21', [{ port: 80 }], { externalIPs: ['203.0.113.9'], internalTrafficPolicy: 'Local' }),
      service('none', '10.96.0.22', [{ port: 80 }]),
      { ...service('fw', '10.96.0.23', [{ port: 80, nodePort: 30082 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ['198.51.100.0/24'] }), status: { loadBalancer: { ingress: [{ ip: '203.0.113.23' }] } } },
    ];
    const slices = [webEndpoints(), slice('local', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.1', node: 'node-a' }, { ip: '10.244.2.1', node: 'node-b' }]), slice('ext', [{ port: 80 }], [{ ip: '10.244.1.3', node: 'node-a' }, { ip: '10.244.2.3', node: 'node-b' }]), slice('fw', [{ port: 80 }], [{ ip: '10.244.1.4' }])];
    const model = buildProxyModel(services, slices, 'node-a');
    for (const port of model.ports) {
      const alone = buildRestorePayload({ model: { ports: [port], skipped: [] }, options, changed: 'all', existingChains: new Set() });
      expect(new Set(portChainNames(port))).toEqual(alone.chains);
    }
  });
});
