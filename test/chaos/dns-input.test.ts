/**
 * Bad input for `knode dns`'s server (dns/server.ts): random bytes, every truncation and bit
 * flips of valid queries, oversize and lying TCP frames, unknown query types and classes, a
 * flood of forwarded queries towards an upstream that never answers (in-flight bounded, REFUSED
 * beyond it, memory bounded), and 100 Service changes per second through a real control plane
 * while a stable name must keep answering right. Nothing may throw or crash; every reply must
 * decode. Loopback only; counts and times bounded.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig, type V1Service } from '@kubernetes/client-node';
import * as dnsPacket from 'dns-packet';
import type { Packet } from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnswerCache } from '../../dns/cache.js';
import { DnsDaemon } from '../../dns/daemon.js';
import { Forwarder } from '../../dns/forward.js';
import { DnsMetrics } from '../../dns/metrics.js';
import { ClusterIndex } from '../../dns/records.js';
import { DnsServer } from '../../dns/server.js';
import { createLogger } from '../../lib/log.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { dig, lines } from '../helpers/dns.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

/** dns-packet decodes the rcode but its types do not name it. */
const decodeReply = (bytes: Buffer) => dnsPacket.decode(bytes) as Packet & { rcode?: string };

const log = createLogger('dns', process.env.KNODE_TEST_LOG_LEVEL ?? 'silent');
const query = (name: string, type = 'A', klass = 'IN', extra: Partial<Packet> = {}): Buffer =>
  dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: klass } as dnsPacket.Question], ...extra });

/** A UDP socket bound on loopback that reads queries and never answers (a dead upstream). */
async function blackhole(): Promise<{ port: number; received: () => number; close(): void }> {
  const socket = createSocket('udp4');
  let received = 0;
  socket.on('message', () => received++);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, received: () => received, close: () => socket.close() };
}

describe('knode dns: bad input and floods', () => {
  let server: DnsServer;
  /** The same zone with no upstream: forwarded names fail at once, so fuzzing is not slowed by timeouts. */
  let local: DnsServer;
  let hole: Awaited<ReturnType<typeof blackhole>>;
  let port: number;
  const index = new ClusterIndex('cluster.local');
  const forwarder = { current: undefined as Forwarder | undefined };

  beforeAll(async () => {
    index.upsertService({ metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80 }] } });
    hole = await blackhole();
    forwarder.current = new Forwarder([{ host: '127.0.0.1', port: hole.port }], { timeoutMs: 1500, maxInFlight: 200 });
    server = new DnsServer({ index, synced: () => true, forwarder: forwarder.current, cache: new AnswerCache(1000), metrics: new DnsMetrics(), log, host: '127.0.0.1', port: 0, maxPending: 1000 });
    port = await server.start();
    local = new DnsServer({ index, synced: () => true, forwarder: new Forwarder([]), cache: new AnswerCache(1000), metrics: new DnsMetrics(), log, host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    hole?.close();
  });

  /** Every reply must be a decodable response with the query's ID. */
  const checkReply = (input: Buffer, reply: Buffer | undefined) => {
    if (!reply) return;
    const decoded = decodeReply(reply);
    expect(decoded.type).toBe('response');
    if (input.length >= 2) expect(decoded.id).toBe(input.readUInt16BE(0));
  };

  it('random bytes (20 000 messages of 0–600 bytes): no throw, replies decode or nothing is sent', async () => {
    for (let i = 0; i < 20_000; i++) {
      const input = randomBytes(Math.floor(Math.random() * 600));
      if (input.length >= 4) input[2]! &= 0x7f; // mostly "queries", so the FORMERR path runs too
      checkReply(input, await local.answer(input, 'udp', 'IPv4'));
    }
  });

  it('every truncation and 5 000 bit flips of valid queries', async () => {
    const valid = [query('web.default.svc.cluster.local'), query('_http._tcp.web.default.svc.cluster.local', 'SRV'), query('web.default.svc.cluster.local', 'A', 'IN', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as unknown as dnsPacket.Answer] })];
    for (const message of valid) {
      for (let length = 0; length < message.length; length++) checkReply(message.subarray(0, length), await local.answer(message.subarray(0, length), 'udp', 'IPv4'));
      for (let i = 0; i < 5000 / valid.length; i++) {
        const flipped = Buffer.from(message);
        const bit = Math.floor(Math.random() * flipped.length * 8);
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        checkReply(flipped, await local.answer(flipped, 'udp', 'IPv4'));
      }
    }
  });

  it('unknown types and classes, several questions, other opcodes, responses', async () => {
    for (const type of ['UNKNOWN_65280', 'UNKNOWN_0', 'NULL', 'ANY', 'AXFR', 'HINFO']) {
      const reply = decodeReply((await server.answer(query('web.default.svc.cluster.local', type), 'udp', 'IPv4'))!);
      expect(['NOERROR', 'REFUSED'], type).toContain(reply.rcode);
    }
    for (const klass of ['CH', 'HS', 'UNKNOWN_254']) {
      const reply = decodeReply((await server.answer(query('web.default.svc.cluster.local', 'A', klass), 'udp', 'IPv4'))!);
      expect(reply.rcode).toBe('REFUSED');
    }
    const two = dnsPacket.encode({ type: 'query', id: 7, questions: [{ name: 'a.cluster.local', type: 'A' }, { name: 'b.cluster.local', type: 'A' }] });
    expect(decodeReply((await server.answer(two, 'udp', 'IPv4'))!).rcode).toBe('FORMERR');
    const none = dnsPacket.encode({ type: 'query', id: 8, questions: [] });
    expect(decodeReply((await server.answer(none, 'udp', 'IPv4'))!).rcode).toBe('FORMERR');
    const notify = dnsPacket.encode({ type: 'query', id: 9, flags: 4 << 11, questions: [{ name: 'cluster.local', type: 'SOA' }] });
    expect(decodeReply((await server.answer(notify, 'udp', 'IPv4'))!).rcode).toBe('NOTIMP');
    const response = dnsPacket.encode({ type: 'response', id: 10, questions: [{ name: 'web.default.svc.cluster.local', type: 'A' }] });
    expect(await server.answer(response, 'udp', 'IPv4')).toBeUndefined();
  });

  it('TCP: lying length prefixes, an oversize frame, garbage, abrupt closes; the server keeps serving', async () => {
    const send = (bytes: Buffer) =>
      new Promise<Buffer>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port });
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(Buffer.concat(chunks)));
        socket.write(bytes, () => setTimeout(() => socket.destroy(), 300));
      });
    await send(Buffer.from([0xff, 0xff, 1, 2, 3])); // promises 65535 bytes, sends 3
    await send(Buffer.concat([Buffer.from([0xff, 0xff]), randomBytes(70_000)]));
    await send(randomBytes(4096));
    await send(Buffer.from([0x00]));
    const good = query('web.default.svc.cluster.local');
    const reply = await send(Buffer.concat([Buffer.from([good.length >> 8, good.length & 255]), good, Buffer.from([good.length >> 8, good.length & 255]), good]));
    expect(reply.readUInt16BE(0)).toBeGreaterThan(12);
    expect(lines(await dig('127.0.0.1', port, ['+short', '+tcp', 'web.default.svc.cluster.local']))).toEqual(['10.96.0.20']);
  });

  it('a flood of forwarded queries to a dead upstream: in flight bounded, REFUSED beyond, memory bounded, cluster names still answer', async () => {
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const client = createSocket('udp4');
    const rcodes = new Map<string, number>();
    client.on('message', (message) => {
      const rcode = decodeReply(message).rcode ?? '?';
      rcodes.set(rcode, (rcodes.get(rcode) ?? 0) + 1);
    });
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
    let maxInFlight = 0;
    for (let i = 0; i < 20_000; i++) {
      client.send(query(`n${i}.flood.test`), port, '127.0.0.1');
      if (i % 500 === 0) {
        await new Promise((resolve) => setImmediate(resolve));
        maxInFlight = Math.max(maxInFlight, forwarder.current!.pending);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    maxInFlight = Math.max(maxInFlight, forwarder.current!.pending);
    expect(maxInFlight).toBeLessThanOrEqual(200);
    expect(rcodes.get('REFUSED') ?? 0).toBeGreaterThan(0);
    expect(lines(await dig('127.0.0.1', port, ['+short', 'web.default.svc.cluster.local']))).toEqual(['10.96.0.20']);
    await waitFor('the forwarded queries to time out', () => forwarder.current!.pending === 0, 20_000);
    client.close();
    global.gc?.();
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(100 * 1024 * 1024);
  });
});

const env = await prerequisites('command:dig');

describe.skipIf(env.skip)('knode dns: answers stay right under 100 Service changes per second', () => {
  let cp: TestControlPlane;
  let daemon: DnsDaemon;

  beforeAll(async () => {
    cp = await startTestControlPlane();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    daemon = new DnsDaemon({ kubeConfig: kc, log, nodeName: 'n', clusterDomain: 'cluster.local', bindAddress: '127.0.0.1', port: 0, upstreams: [], healthAddress: '' });
    await daemon.start();
    await daemon.ready;
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    await cp?.stop();
  });

  it('200 creates/deletes in 2 s: the stable name never misanswers; the end state matches the API', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    const core = kc.makeApiClient(CoreV1Api);
    const service = (name: string, ip: string): V1Service => ({ metadata: { name, namespace: 'default' }, spec: { clusterIP: ip, ports: [{ port: 80 }] } });
    await core.createNamespacedService({ namespace: 'default', body: service('stable', '10.96.1.1') });
    const churn = (async () => {
      for (let i = 0; i < 100; i++) {
        const started = Date.now();
        await core.createNamespacedService({ namespace: 'default', body: service(`churn-${i}`, `10.96.2.${i + 1}`) });
        if (i % 2 === 1) await core.deleteNamespacedService({ name: `churn-${i}`, namespace: 'default' });
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 20 - (Date.now() - started))));
      }
    })();
    const answers: string[] = [];
    let done = false;
    void churn.finally(() => (done = true));
    while (!done) answers.push((await dig('127.0.0.1', daemon.port, ['+short', 'stable.default.svc.cluster.local'])).trim());
    await churn;
    expect(answers.length).toBeGreaterThan(3);
    expect(new Set(answers)).toEqual(new Set(['10.96.1.1']));
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const i of [0, 1, 50, 98, 99]) {
      const out = (await dig('127.0.0.1', daemon.port, ['+short', `churn-${i}.default.svc.cluster.local`])).trim();
      expect(out, `churn-${i}`).toBe(i % 2 === 0 ? `10.96.2.${i + 1}` : '');
    }
  });
});
