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
