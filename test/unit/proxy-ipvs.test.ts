import { describe, expect, it } from 'vitest';
import ipaddr from 'ipaddr.js';
import { buildProxyModel } from '../../proxy/model.js';
import { desiredIpvs, diffIpvs, type IpvsTable } from '../../proxy/ipvs/diff.js';
import { decodeDest, decodeService, encodeDest, encodeService, nlattr, parseAttrs } from '../../proxy/ipvs/netlink-ipvs.js';
import { ipsetSyncScript, parseIpsetSave } from '../../proxy/ipvs/ipset.js';
import { service, slice } from './proxy-fixtures.js';

const model = (ips: { ip: string; ready?: boolean; serving?: boolean; terminating?: boolean; node?: string }[], spec = {}) =>
  buildProxyModel([service('web', '10.96.0.10', [{ name: 'http', port: 80, nodePort: 30080 }], { type: 'NodePort', ...spec })], [slice('web', [{ name: 'http', port: 8080 }], ips)], 'node-a');

describe('IPVS desired table', () => {
  it('a virtual server per service IP and node IP, real servers for endpoints, terminating ones at weight 0', () => {
    const table = desiredIpvs(model([{ ip: '10.244.0.1' }, { ip: '10.244.0.2', ready: false, serving: true, terminating: true }], { sessionAffinity: 'ClientIP' }), { scheduler: 'wrr', nodeIPs: ['192.168.1.5'] });
    expect([...table.keys()].sort()).toEqual(['TCP:10.96.0.10:80', 'TCP:192.168.1.5:30080']);
    const entry = table.get('TCP:10.96.0.10:80')!;
    expect(entry.vs).toMatchObject({ scheduler: 'wrr', persistence: 10800 });
    expect(entry.dests).toEqual([{ address: '10.244.0.1', port: 8080, weight: 1 }, { address: '10.244.0.2', port: 8080, weight: 0 }]);
  });

  it('externalTrafficPolicy Local: the NodePort virtual server only has local endpoints', () => {
    const table = desiredIpvs(model([{ ip: '10.244.0.1', node: 'node-a' }, { ip: '10.244.1.1', node: 'node-b' }], { externalTrafficPolicy: 'Local' }), { scheduler: 'rr', nodeIPs: ['192.168.1.5'] });
    expect(table.get('TCP:192.168.1.5:30080')!.dests.map((dest) => dest.address)).toEqual(['10.244.0.1']);
    expect(table.get('TCP:10.96.0.10:80')!.dests).toHaveLength(2);
  });
});

describe('IPVS diff', () => {
  const vs = { address: '10.96.0.10', port: 80, protocol: 'TCP' as const, scheduler: 'rr', persistence: 0 };
  const table = (entries: { scheduler?: string; dests: { address: string; weight: number; activeConnections?: number; inactiveConnections?: number }[] }[]): IpvsTable =>
    new Map(entries.map((entry) => [`TCP:10.96.0.10:80`, { vs: { ...vs, scheduler: entry.scheduler ?? 'rr' }, dests: entry.dests.map((dest) => ({ port: 8080, ...dest })) }]));

  it.each([
    ['nothing to do', table([{ dests: [{ address: 'a', weight: 1 }] }]), table([{ dests: [{ address: 'a', weight: 1 }] }]), []],
    ['new service', table([{ dests: [{ address: 'a', weight: 1 }] }]), new Map(), ['add-service', 'add-dest a']],
    ['scheduler change', table([{ scheduler: 'sh', dests: [] }]), table([{ dests: [] }]), ['update-service']],
    ['weight change', table([{ dests: [{ address: 'a', weight: 0 }] }]), table([{ dests: [{ address: 'a', weight: 1 }] }]), ['update-dest a']],
    ['idle endpoint gone: deleted', table([{ dests: [] }]), table([{ dests: [{ address: 'a', weight: 1 }] }]), ['delete-dest a']],
    ['busy endpoint gone: weight 0 first', table([{ dests: [] }]), table([{ dests: [{ address: 'a', weight: 1, activeConnections: 2 }] }]), ['update-dest a']],
    ['busy endpoint at weight 0: wait', table([{ dests: [] }]), table([{ dests: [{ address: 'a', weight: 0, inactiveConnections: 1 }] }]), []],
    ['service gone', new Map(), table([{ dests: [{ address: 'a', weight: 1 }] }]), ['delete-service']],
    ['unchanged, read back newest first', table([{ dests: [{ address: 'a', weight: 1 }, { address: 'b', weight: 1 }, { address: 'c', weight: 0 }] }]), table([{ dests: [{ address: 'c', weight: 0 }, { address: 'b', weight: 1 }, { address: 'a', weight: 1 }] }]), []],
    ['unchanged, other order', table([{ dests: [{ address: 'a', weight: 1 }, { address: 'b', weight: 1 }, { address: 'c', weight: 1 }] }]), table([{ dests: [{ address: 'b', weight: 1 }, { address: 'a', weight: 1 }, { address: 'c', weight: 1 }] }]), []],
    ['reversed but one weight differs', table([{ dests: [{ address: 'a', weight: 1 }, { address: 'b', weight: 0 }] }]), table([{ dests: [{ address: 'b', weight: 1 }, { address: 'a', weight: 1 }] }]), ['update-dest b']],
    ['same count, one replaced', table([{ dests: [{ address: 'a', weight: 1 }, { address: 'b', weight: 1 }] }]), table([{ dests: [{ address: 'a', weight: 1 }, { address: 'x', weight: 1 }] }]), ['add-dest b', 'delete-dest x']],
  ])('%s', (_name, desired, actual, expected) => {
    expect(diffIpvs(desired as IpvsTable, actual as IpvsTable).map((op) => ('rs' in op ? `${op.op} ${op.rs.address}` : op.op))).toEqual(expected);
  });
});

describe('IPVS netlink attributes', () => {
  it('encodes and decodes a service and a destination (round trip)', () => {
    const vs = { address: '10.96.0.10', port: 443, protocol: 'UDP' as const, scheduler: 'sh', persistence: 60 };
    expect(decodeService(encodeService(vs))).toEqual(vs);
    const rs = decodeDest(encodeDest({ address: '10.244.3.4', port: 8443, weight: 3 }));
    expect(rs).toMatchObject({ address: '10.244.3.4', port: 8443, weight: 3 });
  });
  it('reads the connection counters and skips attributes it does not know (a dump reply has stats nests)', () => {
    const stats = nlattr(12, Buffer.alloc(40));
    const inner = Buffer.concat([stats, nlattr(1, Buffer.from([10, 244, 0, 7, ...Array<number>(12).fill(0)])), nlattr(2, Buffer.from([0x1f, 0x90])), nlattr(4, Buffer.from([2, 0, 0, 0])), nlattr(7, Buffer.from([3, 0, 0, 0])), nlattr(8, Buffer.from([5, 0, 0, 0]))]);
    expect(decodeDest(nlattr(2, inner))).toEqual({ address: '10.244.0.7', port: 8080, weight: 2, activeConnections: 3, inactiveConnections: 5 });
  });
  it('encodes a non-canonical address as ipaddr.js reads it', () => {
    const vs = { address: '10.96.0.010', port: 80, protocol: 'TCP' as const, scheduler: 'rr', persistence: 0 };
    expect(decodeService(encodeService(vs))?.address).toBe(ipaddr.parse('10.96.0.010').toString());
    expect(() => encodeService({ ...vs, address: '10.96.0.256' })).toThrow();
  });
  it('pads attributes to 4 bytes', () => {
    const attr = nlattr(6, Buffer.from('rr\0'));
    expect(attr.length).toBe(8);
    expect(attr.readUInt16LE(0)).toBe(7);
    expect(parseAttrs(Buffer.concat([attr, nlattr(1, Buffer.from([2, 0]))])).get(1)).toEqual(Buffer.from([2, 0]));
  });
});

describe('ipset sync by difference (kube-proxy syncIPSetEntries)', () => {
  const spec = (name: string, type: string, entries: string[]) => ({ name, type, entries });
  const saved = [
    'create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536',
    'add KUBE-CLUSTER-IP 10.96.0.1,tcp:443',
    'add KUBE-CLUSTER-IP 10.96.0.9,udp:53',
    'create KUBE-NODE-PORT-TCP bitmap:port range 0-65535',
    'create OTHER hash:ip family inet',
    'add OTHER 192.0.2.1',
  ].join('\n');

  it('reads sets and entries back from ipset save', () => {
    const sets = parseIpsetSave(saved);
    expect([...sets.keys()]).toEqual(['KUBE-CLUSTER-IP', 'KUBE-NODE-PORT-TCP', 'OTHER']);
    expect([...sets.get('KUBE-CLUSTER-IP')!]).toEqual(['10.96.0.1,tcp:443', '10.96.0.9,udp:53']);
    expect(sets.get('KUBE-NODE-PORT-TCP')!.size).toBe(0);
  });

  it('creates missing sets, deletes before it adds, leaves other sets and equal entries alone', () => {
    const script = ipsetSyncScript(parseIpsetSave(saved), [
      spec('KUBE-CLUSTER-IP', 'hash:ip,port', ['10.96.0.1,tcp:443', '10.96.0.2,tcp:80']),
      spec('KUBE-NODE-PORT-TCP', 'bitmap:port', ['30080']),
      spec('KUBE-LOOP-BACK', 'hash:ip,port,ip', []),
    ]);
    expect(script.trim().split('\n')).toEqual([
      'del KUBE-CLUSTER-IP 10.96.0.9,udp:53 -exist',
      'add KUBE-CLUSTER-IP 10.96.0.2,tcp:80 -exist',
      'add KUBE-NODE-PORT-TCP 30080 -exist',
      'create KUBE-LOOP-BACK hash:ip,port,ip -exist',
    ]);
  });

  it('is empty when the kernel already holds the desired sets', () => {
    expect(ipsetSyncScript(parseIpsetSave(saved), [spec('KUBE-CLUSTER-IP', 'hash:ip,port', ['10.96.0.9,udp:53', '10.96.0.1,tcp:443']), spec('KUBE-NODE-PORT-TCP', 'bitmap:port', [])])).toBe('');
  });
});
