/**
 * The cluster zone's record logic (dns/records.ts, dns/answer.ts) and the forwarder's cache
 * policy (dns/cache.ts): Services and EndpointSlices in, answers out, per the Kubernetes DNS
 * specification (github.com/kubernetes/dns docs/specification.md).
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Answer } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { resolveQuestion, type LocalAnswer } from '../../dns/answer.js';
import { AnswerCache, cacheSeconds } from '../../dns/cache.js';
import { ClusterIndex, reverseName } from '../../dns/records.js';
import { parseResolvConf } from '../../dns/resolv-conf.js';

const svc = (name: string, spec: V1Service['spec'], namespace = 'default'): V1Service => ({ metadata: { name, namespace }, spec });

const slice = (service: string, name: string, endpoints: { ip: string; ready?: boolean; hostname?: string }[], ports = [{ name: 'http', port: 8080, protocol: 'TCP' }], namespace = 'default'): V1EndpointSlice => ({
  metadata: { name, namespace, labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  endpoints: endpoints.map((e) => ({ addresses: [e.ip], hostname: e.hostname, conditions: { ready: e.ready ?? true } })),
  ports,
});

function cluster(): ClusterIndex {
  const index = new ClusterIndex('cluster.local');
  index.upsertService(svc('web', { clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { port: 81 }] }));
  index.upsertService(svc('db', { clusterIP: 'None', ports: [{ name: 'pg', port: 5432 }] }));
  index.upsertSlice(slice('db', 'db-1', [{ ip: '10.244.1.5', hostname: 'db-0' }, { ip: '10.244.2.6' }, { ip: '10.244.2.7', ready: false }], [{ name: 'pg', port: 5432, protocol: 'TCP' }]));
  index.upsertService(svc('ext', { type: 'ExternalName', externalName: 'example.test.' }));
  index.upsertService(svc('alias', { type: 'ExternalName', externalName: 'web.default.svc.cluster.local' }));
  return index;
}

const ask = (index: ClusterIndex, name: string, type = 'A', synced = true) => resolveQuestion(index, { name, type, class: 'IN' }, synced) as LocalAnswer;
const datas = (answers: Answer[]) => answers.map((a) => ('data' in a ? a.data : undefined));

describe('cluster DNS records', () => {
  it('ClusterIP Service: A, SRV for named ports only, PTR (spec 2.3)', () => {
    const index = cluster();
    const a = ask(index, 'web.default.svc.cluster.local.');
    expect(a).toMatchObject({ rcode: 'NOERROR' });
    expect(datas(a.answers)).toEqual(['10.96.0.20']);
    expect(a.answers[0]!.name).toBe('web.default.svc.cluster.local.');
    expect(datas(ask(index, '_http._tcp.web.default.svc.cluster.local', 'SRV').answers)).toEqual([{ priority: 0, weight: 100, port: 80, target: 'web.default.svc.cluster.local' }]);
    expect(ask(index, 'web.default.svc.cluster.local', 'PTR').answers).toEqual([]);
    expect(datas(ask(index, '20.0.96.10.in-addr.arpa', 'PTR').answers)).toEqual(['web.default.svc.cluster.local']);
  });

  it('headless Service: ready endpoints, hostname or dashed-IP names, SRV per endpoint, PTR (spec 2.4)', () => {
    const index = cluster();
    expect(datas(ask(index, 'db.default.svc.cluster.local').answers).sort()).toEqual(['10.244.1.5', '10.244.2.6']);
    expect(datas(ask(index, 'db-0.db.default.svc.cluster.local').answers)).toEqual(['10.244.1.5']);
    expect(datas(ask(index, '10-244-2-6.db.default.svc.cluster.local').answers)).toEqual(['10.244.2.6']);
    expect(ask(index, '10-244-2-7.db.default.svc.cluster.local').rcode).toBe('NXDOMAIN');
    const srv = datas(ask(index, '_pg._tcp.db.default.svc.cluster.local', 'SRV').answers) as { target: string; port: number }[];
    expect(srv.map((s) => `${s.target}:${s.port}`).sort()).toEqual(['10-244-2-6.db.default.svc.cluster.local:5432', 'db-0.db.default.svc.cluster.local:5432']);
    expect(datas(ask(index, '5.1.244.10.in-addr.arpa', 'PTR').answers)).toEqual(['db-0.db.default.svc.cluster.local']);
  });

  it('publishNotReadyAddresses includes not-ready endpoints', () => {
    const index = cluster();
    index.upsertService(svc('db', { clusterIP: 'None', publishNotReadyAddresses: true }));
    expect(datas(ask(index, 'db.default.svc.cluster.local').answers)).toHaveLength(3);
  });

  it('ExternalName: CNAME, chased outside the zone by the caller and inside it here (spec 2.5)', () => {
    const index = cluster();
    const ext = ask(index, 'ext.default.svc.cluster.local');
    expect(ext.answers.map((a) => [a.type, 'data' in a ? a.data : ''])).toEqual([['CNAME', 'example.test']]);
    expect(ext.chase).toBe('example.test');
    const alias = ask(index, 'alias.default.svc.cluster.local');
    expect(alias.answers.map((a) => a.type)).toEqual(['CNAME', 'A']);
    expect(alias.chase).toBeUndefined();
    expect(ask(index, 'ext.default.svc.cluster.local', 'CNAME').chase).toBeUndefined();
  });

  it('NODATA (NOERROR + SOA) for existing names and empty non-terminals, NXDOMAIN + SOA otherwise', () => {
    const index = cluster();
    for (const name of ['web.default.svc.cluster.local', 'default.svc.cluster.local', 'svc.cluster.local', 'cluster.local']) {
      const answer = ask(index, name, 'AAAA');
      expect(answer, name).toMatchObject({ rcode: 'NOERROR', answers: [] });
      expect(answer.authorities[0]!.type).toBe('SOA');
    }
    for (const name of ['nope.default.svc.cluster.local', 'web.other.svc.cluster.local', 'x.cluster.local']) {
      const answer = ask(index, name);
      expect(answer.rcode, name).toBe('NXDOMAIN');
      expect(answer.authorities[0]!.type).toBe('SOA');
    }
    expect(ask(index, 'cluster.local', 'SOA').answers[0]!.type).toBe('SOA');
    expect(datas(ask(index, 'dns-version.cluster.local', 'TXT').answers)).toEqual(['1.1.0']);
  });

  it('case-insensitive; names outside the zone and unknown reverse names are forwarded', () => {
    const index = cluster();
    expect(datas(ask(index, 'WEB.Default.SVC.cluster.LOCAL').answers)).toEqual(['10.96.0.20']);
    expect(resolveQuestion(index, { name: 'example.org', type: 'A' }, true)).toEqual({ kind: 'forward' });
    expect(resolveQuestion(index, { name: '1.0.0.127.in-addr.arpa', type: 'PTR' }, true)).toEqual({ kind: 'forward' });
  });

  it('pods insecure: a-b-c-d.<ns>.pod.<zone> → A; malformed → NXDOMAIN', () => {
    const index = cluster();
    expect(datas(ask(index, '10-244-1-9.anyns.pod.cluster.local').answers)).toEqual(['10.244.1.9']);
    expect(ask(index, '10-244-1-9.anyns.pod.cluster.local', 'AAAA')).toMatchObject({ rcode: 'NOERROR', answers: [] });
    expect(ask(index, '10-244-1-999.anyns.pod.cluster.local').rcode).toBe('NXDOMAIN');
    expect(ask(index, 'anyns.pod.cluster.local').rcode).toBe('NOERROR');
  });

  it('not synced yet: SERVFAIL, never a false NXDOMAIN; non-IN class REFUSED', () => {
    const index = cluster();
    expect(ask(index, 'web.default.svc.cluster.local', 'A', false).rcode).toBe('SERVFAIL');
    expect((resolveQuestion(index, { name: 'web.default.svc.cluster.local', type: 'A', class: 'CH' }, true) as LocalAnswer).rcode).toBe('REFUSED');
  });

  it('updates incrementally: delete, rename of a slice, endpoints leaving', () => {
    const index = cluster();
    index.deleteService(svc('web', {}));
    expect(ask(index, 'web.default.svc.cluster.local').rcode).toBe('NXDOMAIN');
    expect(resolveQuestion(index, { name: '20.0.96.10.in-addr.arpa', type: 'PTR' }, true)).toEqual({ kind: 'forward' });
    index.upsertSlice(slice('db', 'db-1', [{ ip: '10.244.3.3' }]));
    expect(datas(ask(index, 'db.default.svc.cluster.local').answers)).toEqual(['10.244.3.3']);
    index.deleteSlice(slice('db', 'db-1', []));
    expect(ask(index, 'db.default.svc.cluster.local')).toMatchObject({ rcode: 'NOERROR', answers: [] });
    expect(index.hasDescendants('default.svc.cluster.local')).toBe(true);
    index.deleteService(svc('db', {}));
    index.deleteService(svc('ext', {}));
    index.deleteService(svc('alias', {}));
    expect(index.hasDescendants('default.svc.cluster.local')).toBe(false);
    expect(ask(index, 'default.svc.cluster.local').rcode).toBe('NXDOMAIN');
  });

  it('reverse names for IPv4 and IPv6', () => {
    expect(reverseName('10.96.0.10')).toBe('10.0.96.10.in-addr.arpa');
    expect(reverseName('fd00::a')).toBe(`a.${'0.'.repeat(27)}0.0.d.f.ip6.arpa`);
    expect(reverseName('nope')).toBeUndefined();
  });
});

describe('forwarding cache policy and resolv.conf', () => {
  const soa = (ttl: number, minimum: number): Answer => ({ name: 'test', type: 'SOA', ttl, data: { mname: 'a', rname: 'b', minimum } });
  it('positive: min TTL; negative: min(SOA TTL, minimum); SERVFAIL and no-SOA denials not cached', () => {
    expect(cacheSeconds({ rcode: 'NOERROR', answers: [{ name: 'x', type: 'A', ttl: 30, data: '1.2.3.4' }, { name: 'x', type: 'A', ttl: 10, data: '1.2.3.5' }], authorities: [] })).toEqual({ seconds: 10, negative: false });
    expect(cacheSeconds({ rcode: 'NXDOMAIN', answers: [], authorities: [soa(300, 60)] })).toEqual({ seconds: 60, negative: true });
    expect(cacheSeconds({ rcode: 'NOERROR', answers: [], authorities: [soa(20, 60)] })).toEqual({ seconds: 20, negative: true });
    expect(cacheSeconds({ rcode: 'SERVFAIL', answers: [], authorities: [] }).seconds).toBe(0);
    expect(cacheSeconds({ rcode: 'NXDOMAIN', answers: [], authorities: [] }).seconds).toBe(0);
  });

  it('counts TTLs down, expires, and stays bounded (LRU)', () => {
    let now = 0;
    const cache = new AnswerCache(2, () => now);
    const answer = { rcode: 'NOERROR' as const, answers: [{ name: 'x', type: 'A' as const, ttl: 10, data: '1.2.3.4' }], authorities: [] };
    cache.put('a', answer);
    cache.put('b', answer);
    now = 4000;
    expect((cache.get('a')!.answer.answers[0] as { ttl: number }).ttl).toBe(6);
    cache.put('c', answer);
    expect(cache.size).toBe(2);
    expect(cache.get('a')).toBeDefined(); // refreshed by the hit above, so b was evicted
    expect(cache.get('b')).toBeUndefined();
    now = 11_000;
    expect(cache.get('a')).toBeUndefined();
  });

  it('resolv.conf: nameservers in order, at most 3, loops to ourselves dropped', () => {
    const text = '# c\nsearch x\nnameserver 10.96.0.10\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver 127.0.0.1:5353\nnameserver bogus\nnameserver 192.0.2.9\n';
    expect(parseResolvConf(text, ['10.96.0.10'])).toEqual([{ host: '192.0.2.1', port: 53 }, { host: 'fe80::1', port: 53 }, { host: '127.0.0.1', port: 5353 }]);
    expect(parseResolvConf('nameserver 127.0.0.1:5353\nnameserver 127.0.0.1\n', ['127.0.0.1:53'])).toEqual([{ host: '127.0.0.1', port: 5353 }]);
  });
});
