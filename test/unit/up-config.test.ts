/**
 * Pure policy of `knode up` (bin/up-config.ts): no root, no I/O. (Kept beside up.test.ts, the
 * files this task owns; it belongs with the unit tests.)
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { chooseInterface, conflistText, examplePodText, kubeletConfigText, kubeProxyConfigText, netConfText, runtimeScopeFor, tenthAddress, upLayout, type UpSettings } from '../../bin/up-config.js';

const addresses = [
  '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
  '2: eth0    inet 192.168.1.10/24 brd 192.168.1.255 scope global eth0\\       valid_lft forever preferred_lft forever',
  '3: cni0    inet 10.244.0.1/24 brd 10.244.0.255 scope global cni0\\       valid_lft forever preferred_lft forever',
  '4: ens5    inet 172.16.0.4/16 scope global ens5\\       valid_lft forever preferred_lft forever',
].join('\n');

describe('chooseInterface', () => {
  it.each([
    ['the default-route interface', 'default via 172.16.0.1 dev ens5 proto dhcp', addresses, { iface: 'ens5', address: '172.16.0.4' }],
    ['without a default route: the first non-loopback with IPv4', '', addresses, { iface: 'eth0', address: '192.168.1.10' }],
    ['skips our own cni0/flannel devices', '', addresses.split('\n').filter((l) => !l.includes('eth0')).join('\n'), { iface: 'ens5', address: '172.16.0.4' }],
    ['a default route on an interface without IPv4 falls back', 'default dev wg0 scope link', addresses, { iface: 'eth0', address: '192.168.1.10' }],
    ['only loopback: none', '', addresses.split('\n')[0]!, undefined],
  ])('%s', (_name, routes, addrs, expected) => {
    expect(chooseInterface(routes, addrs)).toEqual(expected);
  });
});

describe('configs', () => {
  const layout = upLayout('/srv/knode');
  const settings: UpSettings = { nodeName: 'n1', clusterCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', clusterDns: tenthAddress('10.96.0.0/12'), listen: '127.0.0.1:6443' };

  it('puts everything under the data dir', () => {
    expect(layout.kubeconfig).toBe('/srv/knode/controlplane/admin.kubeconfig');
    expect(layout.subnetFile).toBe('/srv/knode/run/subnet.env');
    expect(upLayout('relative').dataDir).toMatch(/^\/.*\/relative$/);
  });

  it('kubeadm-style DNS address and a stable runtime scope per data dir', () => {
    expect(tenthAddress('10.96.0.0/12')).toBe('10.96.0.10');
    expect(tenthAddress('172.20.0.250/16')).toBe('172.20.0.10');
    expect(runtimeScopeFor('/srv/knode')).toBe(runtimeScopeFor('/srv/knode/'));
    expect(runtimeScopeFor('/srv/knode')).not.toBe(runtimeScopeFor('/srv/other'));
    expect(runtimeScopeFor('/srv/knode')).toMatch(/^io\.knode\.up=[0-9a-f]{12}$/);
  });

  it('renders the kubelet, kube-proxy, flannel and CNI configs', () => {
    const kubelet = parse(kubeletConfigText(layout, settings)) as Record<string, unknown>;
    expect(kubelet).toMatchObject({ kind: 'KubeletConfiguration', staticPodPath: '/srv/knode/manifests', clusterDNS: ['10.96.0.10'], clusterDomain: 'cluster.local' });
    // The kubelet trusts the cluster CA, which joined nodes' certificates share: Webhook authorization.
    expect(kubelet).toMatchObject({ authentication: { anonymous: { enabled: false }, webhook: { enabled: true } }, authorization: { mode: 'Webhook' } });
    const proxy = parse(kubeProxyConfigText(layout, settings)) as Record<string, unknown>;
    expect(proxy).toMatchObject({ kind: 'KubeProxyConfiguration', clusterCIDR: '10.244.0.0/16', hostnameOverride: 'n1', clientConnection: { kubeconfig: layout.kubeconfig } });
    expect(JSON.parse(netConfText(settings))).toEqual({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
    const conflist = JSON.parse(conflistText(layout)) as { plugins: Record<string, unknown>[] };
    expect(conflist.plugins[0]).toMatchObject({ type: 'knode', subnetFile: layout.subnetFile, dataDir: layout.ipamDir });
    expect(conflist.plugins[1]).toMatchObject({ type: 'portmap' });
    expect(parse(examplePodText('img:1'))).toMatchObject({ kind: 'Pod', metadata: { name: 'hello' }, spec: { containers: [{ image: 'img:1' }] } });
  });
});
