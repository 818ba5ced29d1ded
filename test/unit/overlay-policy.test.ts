import { describe, expect, it } from 'vitest';
import { annotations, desiredPeers, leaseFromNode, ownAnnotations, peerFromNode, planPeers, sameL2, subnetEnvText, vxlanMtu, type NodeView, type Peer } from '../../overlay/policy.js';
import { overlayMasqRules } from '../../overlay/masq.js';
import { parseNetConf } from '../../lib/config/netconf.js';
import { cniSocketFor } from '../../overlay/daemon.js';
import { kernelNeedsTxOffWorkaround } from '../../overlay/vxlan.js';

const network = '10.244.0.0/16';
const node = (name: string, podCIDR?: string, mac = '0a:00:00:00:00:01', ip = '192.168.1.2', vni = 1): NodeView => ({
  name,
  podCIDR,
  annotations: podCIDR ? ownAnnotations(vni, mac, ip) : {},
});

describe('overlay lease and annotations', () => {
  it('leases podCIDR inside Network, refuses the rest', () => {
    expect(leaseFromNode(node('a', '10.244.3.0/24'), network)).toBe('10.244.3.0/24');
    expect(() => leaseFromNode(node('a'), network)).toThrow(/no spec.podCIDR/);
    expect(() => leaseFromNode(node('a', '10.9.0.0/24'), network)).toThrow(/not inside/);
    expect(() => leaseFromNode(node('a', 'nope'), network)).toThrow(/invalid podCIDR/);
  });
  it('net-conf SubnetMin/SubnetMax bound the lease', () => {
    const bounds = { SubnetMin: '10.244.10.0', SubnetMax: '10.244.20.0' };
    expect(leaseFromNode(node('a', '10.244.10.0/24'), network, bounds)).toBe('10.244.10.0/24');
    expect(leaseFromNode(node('a', '10.244.20.0/24'), network, bounds)).toBe('10.244.20.0/24');
    expect(() => leaseFromNode(node('a', '10.244.9.0/24'), network, bounds)).toThrow(/below net-conf SubnetMin 10.244.10.0/);
    expect(() => leaseFromNode(node('a', '10.244.21.0/24'), network, bounds)).toThrow(/above net-conf SubnetMax 10.244.20.0/);
    expect(() => parseNetConf({ Network: '10.244.0.0/16', SubnetMin: '10.245.0.0' }, 'f')).toThrow(/SubnetMin.*not inside the Network/);
    expect(() => parseNetConf({ Network: '10.244.0.0/16', SubnetMin: '10.244.30.0', SubnetMax: '10.244.20.0' }, 'f')).toThrow(/SubnetMin.*larger than SubnetMax/);
  });
  it('publishes flannel keys', () => {
    expect(ownAnnotations(1, 'aa:bb:cc:dd:ee:ff', '192.168.1.2')).toEqual({
      [annotations.backendType]: 'vxlan',
      [annotations.backendData]: '{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}',
      [annotations.publicIp]: '192.168.1.2',
      [annotations.kubeSubnetManager]: 'true',
    });
  });
  it.each([
    ['complete', node('b', '10.244.2.0/24'), true],
    ['no podCIDR', node('b'), false],
    ['outside Network', node('b', '10.9.2.0/24'), false],
    ['bad MAC', { ...node('b', '10.244.2.0/24'), annotations: { ...ownAnnotations(1, 'zz', '1.2.3.4') } }, false],
    ['bad JSON', { ...node('b', '10.244.2.0/24'), annotations: { ...ownAnnotations(1, '0a:00:00:00:00:01', '1.2.3.4'), [annotations.backendData]: '{' } }, false],
    ['other backend', { ...node('b', '10.244.2.0/24'), annotations: { ...ownAnnotations(1, '0a:00:00:00:00:01', '1.2.3.4'), [annotations.backendType]: 'host-gw' } }, false],
  ])('peer from node: %s', (_name, view, usable) => expect(peerFromNode(view, network) !== undefined).toBe(usable));
  it('wants every other node with the same VNI', () => {
    const peers = desiredPeers([node('a', '10.244.1.0/24'), node('b', '10.244.2.0/24'), node('c', '10.244.3.0/24', undefined, undefined, 2)], 'a', network, 1);
    expect(peers.map((peer) => peer.node)).toEqual(['b']);
  });
});

describe('overlay peer planning', () => {
  const peer = (subnet: string, mac = '0a:00:00:00:00:01', ip = '192.168.1.2'): Peer => ({ node: subnet, subnet, publicIp: ip, vtepMac: mac, vni: 1 });
  it.each([
    ['nothing to do', [peer('10.244.2.0/24')], [peer('10.244.2.0/24')], [], []],
    ['new peer', [], [peer('10.244.2.0/24')], ['10.244.2.0/24'], []],
    ['peer gone', [peer('10.244.2.0/24')], [], [], ['10.244.2.0/24']],
    ['VTEP MAC changed', [peer('10.244.2.0/24')], [peer('10.244.2.0/24', '0a:00:00:00:00:02')], ['10.244.2.0/24'], ['10.244.2.0/24']],
    ['public IP changed', [peer('10.244.2.0/24')], [peer('10.244.2.0/24', undefined, '192.168.1.9')], ['10.244.2.0/24'], ['10.244.2.0/24']],
  ])('%s', (_name, programmed, desired, add, remove) => {
    const plan = planPeers(new Map(programmed.map((p) => [p.subnet, p])), desired);
    expect(plan.add.map((p) => p.subnet)).toEqual(add);
    expect(plan.remove.map((p) => p.subnet)).toEqual(remove);
  });
});

describe('overlay details', () => {
  it('writes subnet.env as flannel does', () => {
    expect(subnetEnvText(network, '10.244.7.0/24', 1450, true)).toBe('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
  });
  it('sizes the VXLAN MTU 50 below the underlay unless configured', () => {
    expect(vxlanMtu(1500)).toBe(1450);
    expect(vxlanMtu(9000, 1400)).toBe(1400);
  });
  it('uses DirectRouting only on the same L2 subnet', () => {
    expect(sameL2('192.168.1.5/24', '192.168.1.9')).toBe(true);
    expect(sameL2('192.168.1.5/24', '192.168.2.9')).toBe(false);
  });
  it('never masquerades pod to pod', () => {
    const rules = overlayMasqRules(network, '10.244.1.0/24');
    expect(rules[0]).toContain('-s 10.244.1.0/24 -d 10.244.0.0/16');
    expect(rules[0]).toMatch(/-j RETURN$/);
    expect(rules.filter((rule) => rule.endsWith('MASQUERADE --random-fully'))).toHaveLength(2);
  });
  it('puts the CNI socket next to the subnet file', () => {
    expect(cniSocketFor('/run/flannel/subnet.env')).toBe('/run/flannel/knode-cni.sock');
  });
  it.each([
    ['4.19.0-26-amd64', true],
    ['5.4.0', true],
    ['5.7.0', false],
    ['6.18.1', false],
    ['garbage', true],
  ])('kernel %s needs the tx-offload workaround: %s', (kernel, needs) => expect(kernelNeedsTxOffWorkaround(kernel)).toBe(needs));
});
