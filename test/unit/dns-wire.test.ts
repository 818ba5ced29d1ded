/**
 * The server's cache of encoded replies (dns/wire.ts through DnsServer.answer): a repeated
 * question gets the same bytes a full decode-resolve-encode would give — its own ID and its own
 * case in the question (DNS 0x20) — the cluster zone's changes are seen by the next query,
 * forwarded answers show their remaining TTL, denials keep their SOA, and anything unusual still
 * takes the full path (FORMERR, NOTIMP, BADVERS).
 */
import * as dnsPacket from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { AnswerCache, cacheKey } from '../../dns/cache.js';
import { Forwarder } from '../../dns/forward.js';
import { DnsMetrics } from '../../dns/metrics.js';
import { ClusterIndex } from '../../dns/records.js';
import { DnsServer } from '../../dns/server.js';
import { parseQuery } from '../../dns/wire.js';
import { createLogger } from '../../lib/log.js';

type Reply = Packet & { rcode?: string };
const log = createLogger('dns', 'silent');

function setup(wireCacheSize?: number) {
  let now = 1_000_000;
  const index = new ClusterIndex('cluster.local');
  index.upsertService({ metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80 }] } });
  index.upsertService({ metadata: { name: 'db', namespace: 'default' }, spec: { clusterIP: 'None' } });
  index.upsertSlice({ metadata: { name: 'db-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'db' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.244.1.5'], hostname: 'db-0' }, { addresses: ['10.244.2.6'] }], ports: [{ name: 'pg', port: 5432 }] });
  const cache = new AnswerCache(100, () => now);
  const metrics = new DnsMetrics();
  // No upstream: a name not in the answer cache gets SERVFAIL at once (forwarded answers are put in the cache by the tests).
  const server = new DnsServer({ index, synced: () => true, forwarder: new Forwarder([]), cache, metrics, log, host: '127.0.0.1', port: 0, wireCacheSize, now: () => now });
  return { index, cache, metrics, server, advance: (ms: number) => (now += ms) };
}

const query = (name: string, type = 'A', id = 4242, extra: Partial<Packet> = {}): Buffer =>
  dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' } as dnsPacket.Question], ...extra });
const edns = (size: number): Partial<Packet> => ({ additionals: [{ type: 'OPT', name: '.', udpPayloadSize: size, flags: 0 } as unknown as Answer] });

async function ask(server: DnsServer, message: Buffer, proto: 'udp' | 'tcp' = 'udp'): Promise<Buffer> {
  const bytes = await server.answer(message, proto, 'IPv4');
  if (!bytes) throw new Error('no reply');
  return bytes;
}
const decode = (bytes: Buffer) => dnsPacket.decode(bytes) as Reply;
const ttls = (records: Answer[] | undefined) => (records ?? []).map((r) => ('ttl' in r ? r.ttl : undefined));

/** Flips the case of every other letter: another 0x20 spelling of the same name. */
const mixCase = (name: string, seed: number) => [...name].map((c, i) => ((i + seed) % 2 === 0 ? c.toUpperCase() : c.toLowerCase())).join('');

async function hits(metrics: DnsMetrics): Promise<number> {
  const text = await metrics.registry.metrics();
  return [...text.matchAll(/^coredns_cache_hits_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

describe('wire cache of encoded replies', () => {
  it('answers a repeated question byte for byte as the full path does, with its own ID and case', async () => {
    const cached = setup();
    const plain = setup(0);
    const questions: [string, string][] = [
      ['web.default.svc.cluster.local', 'A'],
      ['web.default.svc.cluster.local', 'AAAA'],
      ['_http._tcp.web.default.svc.cluster.local', 'SRV'],
      ['db.default.svc.cluster.local', 'A'],
      ['db-0.db.default.svc.cluster.local', 'A'],
      ['missing.default.svc.cluster.local', 'A'],
      ['svc.cluster.local', 'A'],
      ['cluster.local', 'SOA'],
      ['20.0.96.10.in-addr.arpa', 'PTR'],
      ['10-1-2-3.default.pod.cluster.local', 'A'],
    ];
    for (const [name, type] of questions) {
      for (let round = 0; round < 4; round++) {
        const spelled = mixCase(name, round);
        for (const extra of [{}, edns(4096), edns(100)]) {
          const message = query(spelled, type, 1000 + round, extra);
          const ours = await ask(cached.server, message);
          expect(ours.equals(await ask(plain.server, message)), `${spelled} ${type} round ${round}`).toBe(true);
          const reply = decode(ours);
          expect(reply.id).toBe(1000 + round);
          expect(reply.questions?.[0]?.name).toBe(spelled);
          for (const answer of reply.answers ?? []) if (answer.name.toLowerCase() === name) expect(answer.name).toBe(spelled);
        }
      }
    }
    // TCP has no size limit and its own entries.
    const big = query('db.default.svc.cluster.local', 'A', 7);
    expect((await ask(cached.server, big, 'tcp')).equals(await ask(plain.server, big, 'tcp'))).toBe(true);
  });

  it('sees every change of the cluster zone at the next query', async () => {
    const { index, server } = setup();
    const a = async (name: string) => {
      const reply = decode(await ask(server, query(name)));
      return { rcode: reply.rcode, data: (reply.answers ?? []).map((r) => ('data' in r ? r.data : undefined)) };
    };
    expect(await a('web.default.svc.cluster.local')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.20'] });
    expect(await a('web.default.svc.cluster.local')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.20'] });
    expect(await a('new.default.svc.cluster.local')).toMatchObject({ rcode: 'NXDOMAIN' });
    index.upsertService({ metadata: { name: 'new', namespace: 'default' }, spec: { clusterIP: '10.96.0.30' } });
    expect(await a('new.default.svc.cluster.local')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.30'] });
    index.upsertService({ metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.21' } });
    expect(await a('web.default.svc.cluster.local')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.21'] });
    index.deleteService({ metadata: { name: 'web', namespace: 'default' } });
    expect(await a('web.default.svc.cluster.local')).toMatchObject({ rcode: 'NXDOMAIN' });
    // An endpoint leaving a headless Service.
    expect((await a('db.default.svc.cluster.local')).data.sort()).toEqual(['10.244.1.5', '10.244.2.6']);
    index.upsertSlice({ metadata: { name: 'db-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'db' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.244.1.5'] }] });
    expect((await a('db.default.svc.cluster.local')).data).toEqual(['10.244.1.5']);
  });

  it('keeps answers right under a stream of Service changes', async () => {
    const { index, server } = setup();
    for (let i = 0; i < 300; i++) {
      const ip = `10.96.${1 + (i >> 8)}.${i & 255}`;
      index.upsertService({ metadata: { name: `s${i % 7}`, namespace: 'default' }, spec: { clusterIP: ip } });
      for (let k = 0; k < 2; k++) {
        const reply = decode(await ask(server, query(mixCase(`s${i % 7}.default.svc.cluster.local`, k), 'A', i)));
        expect(reply.answers?.map((r) => ('data' in r ? r.data : undefined))).toEqual([ip]);
      }
    }
  });

  it('shows a forwarded answer with its remaining TTL, and forgets it when it expires', async () => {
    const { cache, metrics, server, advance } = setup();
    cache.put(cacheKey('www.outside.test', 'A', 'IN'), { rcode: 'NOERROR', answers: [{ name: 'www.outside.test', type: 'A', class: 'IN', ttl: 60, data: '192.0.2.10' }], authorities: [] });
    const ttl = async (spelled: string) => ttls(decode(await ask(server, query(spelled))).answers);
    expect(await ttl('www.outside.test')).toEqual([60]);
    expect(await ttl('WWW.outside.test')).toEqual([60]);
    advance(999);
    expect(await ttl('www.OUTSIDE.test')).toEqual([60]);
    advance(1);
    expect(await ttl('www.outside.test')).toEqual([59]);
    advance(10_500);
    expect(await ttl('www.outside.test')).toEqual([49]);
    expect(await ttl('www.outside.test')).toEqual([49]);
    expect(await hits(metrics)).toBe(6);
    advance(49_000);
    expect(decode(await ask(server, query('www.outside.test'))).rcode).toBe('SERVFAIL');
  });

  it('keeps negative answers with their SOA, forwarded ones counting down', async () => {
    const { cache, server, advance } = setup();
    const soa: Answer = { name: 'outside.test', type: 'SOA', class: 'IN', ttl: 30, data: { mname: 'ns.outside.test', rname: 'h.outside.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 20 } };
    cache.put(cacheKey('gone.outside.test', 'A', 'IN'), { rcode: 'NXDOMAIN', answers: [], authorities: [soa] });
    const first = decode(await ask(server, query('gone.outside.test')));
    expect(first).toMatchObject({ rcode: 'NXDOMAIN', answers: [] });
    expect(first.authorities?.map((r) => r.type)).toEqual(['SOA']);
    advance(5_000);
    const later = decode(await ask(server, query('GONE.outside.test')));
    expect(later.rcode).toBe('NXDOMAIN');
    expect(ttls(later.authorities)).toEqual([25]);
    // In the zone: NXDOMAIN with the zone's SOA, the same for any spelling.
    for (const spelled of ['nope.default.svc.cluster.local', 'NOPE.default.svc.cluster.local']) {
      const reply = decode(await ask(server, query(spelled)));
      expect(reply.rcode).toBe('NXDOMAIN');
      expect(reply.authorities?.map((r) => `${r.type} ${r.name}`)).toEqual(['SOA cluster.local']);
    }
  });

  it('counts requests and responses answered from it', async () => {
    const { metrics, server } = setup();
    for (let i = 0; i < 5; i++) await ask(server, query('web.default.svc.cluster.local'));
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/coredns_dns_requests_total\{[^}]*type="A"[^}]*\} 5/);
    expect(text).toMatch(/coredns_dns_responses_total\{[^}]*rcode="NOERROR"[^}]*\} 5/);
    expect(text).toMatch(/coredns_dns_request_duration_seconds_count\{[^}]*\} 5/);
  });

  it('keys every spelling of a name alike, and nothing else', () => {
    const key = (message: Buffer) => {
      const parsed = parseQuery(message, 'udp', 'IPv4');
      return parsed && `${parsed.hash}/${parsed.rest}`;
    };
    const name = 'web.default.svc.cluster.local';
    const base = key(query(name));
    expect(base).toBeDefined();
    for (const spelled of [name.toUpperCase(), mixCase(name, 0), mixCase(name, 1)]) expect(key(query(spelled))).toBe(base);
    expect(key(query('wEb.default.svc.cluster.locaL', 'AAAA'))).not.toBe(base);
    expect(key(query('web.default.svc.cluster.localx'))).not.toBe(base);
    // Type bytes that look like letters (65 HTTPS, 97 unassigned) are not folded.
    const withType = (type: number) => {
      const message = query(name);
      message.writeUInt16BE(type, message.length - 4);
      return message;
    };
    expect(key(withType(65))).toBeDefined();
    expect(key(withType(65))).not.toBe(key(withType(97)));
  });

  it('answers two questions whose keys hash alike each with its own reply', async () => {
    const { index, server } = setup();
    // Found by search: the two names' keys share one 30-bit hash.
    const names = ['s8634', 's44559'];
    const [a, b] = names.map((name) => parseQuery(query(`${name}.default.svc.cluster.local`), 'udp', 'IPv4')!);
    expect(a!.hash).toBe(b!.hash);
    names.forEach((name, i) => index.upsertService({ metadata: { name, namespace: 'default' }, spec: { clusterIP: `10.96.1.${i + 1}`, ports: [{ name: 'http', port: 80 }] } }));
    for (let round = 0; round < 3; round++) {
      for (const [i, name] of names.entries()) {
        const reply = decode(await ask(server, query(`${name}.default.svc.cluster.local`)));
        expect(reply.answers).toMatchObject([{ name: `${name}.default.svc.cluster.local`, data: `10.96.1.${i + 1}` }]);
      }
    }
  });

  it('leaves anything unusual to the full decoder', async () => {
    const plain = query('web.default.svc.cluster.local');
    expect(parseQuery(plain, 'udp', 'IPv4')).toBeDefined();
    const response = Buffer.from(plain);
    response[2]! |= 0x80;
    const notify = Buffer.from(plain);
    notify[2]! |= 4 << 3;
    const trailing = Buffer.concat([plain, Buffer.from([0])]);
    const pointer = Buffer.from(plain);
    pointer[12] = 0xc0;
    const two = dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'a.test', type: 'A' }, { name: 'b.test', type: 'A' }] });
    const version1 = query('web.default.svc.cluster.local', 'A', 9, { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, ednsVersion: 1, flags: 0 } as unknown as Answer] });
    for (const message of [response, notify, trailing, pointer, two, version1, plain.subarray(0, 20)]) expect(parseQuery(message, 'udp', 'IPv4')).toBeUndefined();
    const { server } = setup();
    for (let i = 0; i < 2; i++) {
      expect(decode(await ask(server, notify)).rcode).toBe('NOTIMP');
      expect(decode(await ask(server, two)).rcode).toBe('FORMERR');
      // BADVERS: extended rcode 1 in the reply's OPT (RFC 6891 §6.1.3).
      expect(decode(await ask(server, version1)).additionals).toMatchObject([{ type: 'OPT', extendedRcode: 1 }]);
    }
  });
});
