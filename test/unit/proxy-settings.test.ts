/**
 * KubeProxyConfiguration settings of the iptables rules (issue 22's table test names these):
 * masqueradeAll, masqueradeBit, clusterCIDR, traced through the generated iptables-restore
 * payload with the rule tracer (test/helpers/iptables-trace.ts).
 */
import { describe, expect, it } from 'vitest';
import { buildProxyModel } from '../../proxy/model.js';
import { buildRestorePayload, jumpRules, type RuleOptions } from '../../proxy/iptables/rules.js';
import { parseRestore, tracePacket, type TraceContext } from '../helpers/iptables-trace.js';
import { service, slice } from './proxy-fixtures.js';

const base: RuleOptions = { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 };
const context = (): TraceContext => ({ localAddresses: ['192.168.50.2', '127.0.0.1'], random: () => 0.1, now: 1000, recent: new Map() });
const web = service('web', '10.96.0.10', [{ name: 'http', port: 80 }]);
const endpoints = slice('web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.1', node: 'node-a' }]);

function trace(options: RuleOptions, src: string) {
  const model = buildProxyModel([web], [endpoints], 'node-a');
  const { payload } = buildRestorePayload({ model, options, changed: 'all', existingChains: new Set() });
  return { payload, result: tracePacket(parseRestore(payload, jumpRules), { src, dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, 'remote', context()) };
}

describe('kube-proxy iptables settings', () => {
  it('masqueradeAll masquerades pod traffic to a ClusterIP too', () => {
    expect(trace(base, '10.244.2.5').result.masquerade).toBe(false);
    expect(trace({ ...base, masqueradeAll: true }, '10.244.2.5').result.masquerade).toBe(true);
  });

  it('clusterCIDR decides which sources are masqueraded', () => {
    expect(trace(base, '10.244.2.5').result.masquerade).toBe(false);
    expect(trace({ ...base, clusterCIDRs: ['10.100.0.0/16'] }, '10.244.2.5').result.masquerade).toBe(true);
  });

  it('masqueradeBit picks the fwmark bit', () => {
    const { payload, result } = trace({ ...base, masqueradeBit: 5 }, '192.168.50.9');
    expect(result.masquerade).toBe(true);
    expect(payload).toContain('--or-mark 0x20');
    expect(payload).not.toContain('0x4000');
  });
});

describe('iptables.localhostNodePorts', () => {
  const nodePort = service('np', '10.96.0.20', [{ name: 'http', port: 80, nodePort: 30080 }], { type: 'NodePort' });
  const npEndpoints = slice('np', [{ name: 'http', port: 8080 }], [{ ip: '10.244.1.1', node: 'node-a' }]);
  const rules = (localhostNodePorts: boolean) => {
    const model = buildProxyModel([nodePort], [npEndpoints], 'node-a');
    const { payload } = buildRestorePayload({ model, options: { ...base, localhostNodePorts }, changed: 'all', existingChains: new Set() });
    return { payload, ruleset: parseRestore(payload, jumpRules) };
  };
  const fromLocalhost = { src: '127.0.0.1', dst: '127.0.0.1', protocol: 'tcp' as const, dport: 30080 };

  it('true: a NodePort answers on 127.0.0.1, masqueraded; outside packets to 127.0.0.0/8 are dropped', () => {
    const { payload, ruleset } = rules(true);
    const result = tracePacket(ruleset, fromLocalhost, 'local', context());
    expect(result.dnat).toBe('10.244.1.1:8080');
    expect(result.masquerade).toBe(true);
    expect(payload).toContain('-A KUBE-NODEPORTS -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP');
  });

  it('false: NodePorts exclude 127.0.0.0/8, other local addresses still answer', () => {
    const { payload, ruleset } = rules(false);
    expect(tracePacket(ruleset, fromLocalhost, 'local', context()).dnat).toBeUndefined();
    expect(tracePacket(ruleset, { ...fromLocalhost, src: '192.168.50.9', dst: '192.168.50.2' }, 'remote', context()).dnat).toBe('10.244.1.1:8080');
    expect(payload).not.toContain('block incoming localnet connections');
    expect(payload).toContain('--dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS');
  });
});
