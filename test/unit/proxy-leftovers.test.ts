import { describe, expect, it } from 'vitest';
import { iptablesModeLeftovers, ipvsModeLeftovers } from '../../proxy/leftovers.js';
import { buildRestorePayload } from '../../proxy/iptables/rules.js';
import { ipvsRestorePayload } from '../../proxy/ipvs/rules.js';
import { buildProxyModel } from '../../proxy/model.js';
import { service, slice } from './proxy-fixtures.js';

const save = (payload: string) => payload; // a restore payload declares chains as iptables-save does
const options = { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 };

describe('leftovers of the other proxy mode', () => {
  it('finds the iptables-mode chains in what the iptables mode writes, none in what the IPVS mode writes', () => {
    const model = buildProxyModel([service('web', '10.96.0.10', [{ name: 'http', port: 80, nodePort: 30080 }], { type: 'NodePort' })], [slice('web', [{ name: 'http', port: 80 }], [{ ip: '10.244.1.2' }])], 'n');
    const iptablesMode = buildRestorePayload({ model, options, changed: 'all', existingChains: new Set() }).payload;
    const found = iptablesModeLeftovers([save(iptablesMode)]);
    expect(found).toEqual(expect.arrayContaining(['KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL', 'KUBE-EXTERNAL-SERVICES']));
    expect(found.filter((chain) => /^KUBE-(SVC|SEP|EXT)-/.test(chain))).toHaveLength(3);
    expect(found).not.toContain('KUBE-SERVICES');
    expect(iptablesModeLeftovers([save(ipvsRestorePayload(options))])).toEqual([]);
    expect(iptablesModeLeftovers([':INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n'])).toEqual([]);
  });

  it('finds kube-ipvs0, the IPVS sets and KUBE-NODE-PORT; ignores other sets and the iptables-mode layout', () => {
    expect(ipvsModeLeftovers({ dummy: true, sets: ['KUBE-CLUSTER-IP', 'other-set'], natChains: new Set(['KUBE-NODE-PORT', 'KUBE-SERVICES']) })).toEqual(['kube-ipvs0', 'KUBE-CLUSTER-IP', 'KUBE-NODE-PORT']);
    expect(ipvsModeLeftovers({ dummy: false, sets: ['mine'], natChains: new Set(['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING']) })).toEqual([]);
  });
});
