/**
 * The DNS server: UDP and TCP listeners around one `answer(message)` that decodes with
 * dns-packet, answers from the cluster zone (./answer.ts) or from the forwarder through the cache,
 * and encodes the reply. Wire behaviour (RFC 1035, RFC 6891, RFC 7766):
 *  - UDP replies fit the client's limit: 512 bytes without EDNS0, the OPT record's payload size
 *    (at least 512, at most 4096) with it; a larger reply is sent empty with TC set so that the
 *    client retries over TCP. Replies to an EDNS0 query carry our OPT (1232 bytes); an EDNS
 *    version above 0 gets BADVERS;
 *  - TCP: 2-byte length prefixed messages, several per connection, answered in order; idle
 *    connections close after 10 s; at most `maxTcpConnections` at once;
 *  - undecodable input: FORMERR when the 12-byte header is readable and it is a query, dropped
 *    otherwise (never answer a response, so that two servers cannot loop); opcodes other than
 *    QUERY get NOTIMP, zone transfers REFUSED, more or less than one question FORMERR;
 *  - bounded: at most `maxPending` queries being answered at once (more UDP queries are dropped
 *    as a full socket buffer would drop them; TCP reading pauses).
 * A question asked before is answered from its encoded reply (./wire.ts: the ID and the name's
 * case patched in), kept while the records it came from are unchanged; everything else takes
 * the path above.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer, type Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Answer, Packet, Question } from 'dns-packet';
import type { Logger } from '../lib/log.js';
import { inZone, isReverse, normalize, resolveQuestion, type LocalAnswer, type Rcode } from './answer.js';
import { AnswerCache, cacheKey, type CachedAnswer } from './cache.js';
import { ForwardBusyError, type Forwarder } from './forward.js';
import { typeLabel, type DnsMetrics } from './metrics.js';
import type { ClusterIndex } from './records.js';
import { nameOffsets, parseQuery, patchedReply, udpLimit, WireCache, type WireQuery } from './wire.js';

const rcodeNumber: Record<Rcode, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const ourUdpSize = 1232;
const QR = 1 << 15;
const OPCODE_MASK = 0x7800;

interface DnsServerOptions {
  index: ClusterIndex;
  synced: () => boolean;
  forwarder: Forwarder;
  cache: AnswerCache;
  metrics: DnsMetrics;
  log: Logger;
  host: string;
  port: number;
  maxPending?: number;
  maxTcpConnections?: number;
  tcpIdleMs?: number;
  /** Encoded replies kept for repeated questions (./wire.ts); 0: none. */
  wireCacheSize?: number;
  /** The clock of the answer cache (tests); Date.now by default. */
  now?: () => number;
  /**
   * A UDP socket already bound on host:port, shared with the main process (./serving.ts): this
   * server answers what arrives on it and does not listen on TCP (the main process does).
   */
  sharedUdp?: UdpSocket;
}

/** What a reply may be kept for (./wire.ts): absent when it must not be. */
interface Reusable {
  /** The index generation it was built from; undefined: it does not depend on the index. */
  generation: number | undefined;
  freshUntil: number;
  /** Forwarded answers: a later use counts as a cache hit of this kind. */
  hit?: 'success' | 'denial';
}

interface Reply {
  rcode: Rcode;
  answers: Answer[];
  authorities: Answer[];
  authoritative: boolean;
  extendedRcode?: number;
  reusable?: Reusable;
}

type OptRecord = { type: 'OPT'; udpPayloadSize?: number; ednsVersion?: number };

export class DnsServer {
  private udp?: UdpSocket;
  private tcp?: TcpServer;
  private readonly connections = new Set<Socket>();
  private pending = 0;
  private serverLabel: string;
  private readonly wire?: WireCache;

  constructor(private readonly options: DnsServerOptions) {
    this.serverLabel = `dns://${options.host}:${options.port}`;
    if (options.wireCacheSize !== 0) this.wire = new WireCache(options.wireCacheSize ?? 20_000, options.now);
  }

  /** Binds UDP and TCP on host:port (port 0: the same free port for both); returns the port. */
  async start(): Promise<number> {
    const { host, sharedUdp } = this.options;
    if (sharedUdp) {
      this.listenUdp(sharedUdp);
      this.udp = sharedUdp;
      this.serverLabel = `dns://${host}:${sharedUdp.address().port}`;
      return sharedUdp.address().port;
    }
    // Replies go to the address a query came from, always an IP literal: no dns.lookup (and its
    // extra tick) per reply.
    const family = host.includes(':') ? 6 : 4;
    const udp = createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: (address, _options, callback) => callback(null, address, family) });
    this.listenUdp(udp);
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.options.port, host, () => (udp.off('error', reject), resolve()));
    });
    this.udp = udp;
    const port = udp.address().port;
    const tcp = createServer((socket) => this.onTcp(socket));
    tcp.maxConnections = this.options.maxTcpConnections ?? 1000;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, host, () => (tcp.off('error', reject), resolve()));
    });
    tcp.on('error', (error) => this.options.log.warn({ err: error }, 'DNS TCP listener error'));
    this.tcp = tcp;
    this.serverLabel = `dns://${host}:${port}`;
    return port;
  }

  /** The bound UDP socket (after start), to hand to serving processes (./serving.ts). */
  get udpSocket(): UdpSocket | undefined {
    return this.udp;
  }

  private listenUdp(udp: UdpSocket): void {
    udp.on('message', (message, remote) => this.onUdp(message, remote.address, remote.port, remote.family));
    udp.on('error', (error) => this.options.log.warn({ err: error }, 'DNS UDP socket error'));
  }

  async stop(): Promise<void> {
    this.udp?.close();
    for (const socket of this.connections) socket.destroy();
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
  }

  private onUdp(message: Buffer, address: string, port: number, family: string): void {
    if (this.pending >= (this.options.maxPending ?? 4096)) return;
    let result: Buffer | undefined | Promise<Buffer | undefined>;
    try {
      result = this.answer(message, 'udp', family);
    } catch (error) {
      this.options.log.warn({ err: error }, 'DNS query failed');
      return;
    }
    if (!(result instanceof Promise)) {
      if (result) this.udp?.send(result, port, address);
      return;
    }
    this.pending++;
    result.then(
      (reply) => {
        this.pending--;
        if (reply) this.udp?.send(reply, port, address);
      },
      (error: unknown) => {
        this.pending--;
        this.options.log.warn({ err: error }, 'DNS query failed');
      },
    );
  }

  private onTcp(socket: Socket): void {
    this.connections.add(socket);
    socket.setTimeout(this.options.tcpIdleMs ?? 10_000, () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    let chain = Promise.resolve();
    let inConnection = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const length = buffered.readUInt16BE(0);
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        if (length === 0) continue;
        inConnection++;
        this.pending++;
        if (inConnection >= 16 || this.pending >= (this.options.maxPending ?? 4096)) socket.pause();
        const reply = Promise.resolve().then(() => this.answer(Buffer.from(message), 'tcp', socket.remoteFamily ?? 'IPv4'));
        // Replies leave in the order of the queries.
        chain = chain.then(async () => {
          const bytes = await reply.catch(() => undefined);
          inConnection--;
          this.pending--;
          if (socket.isPaused() && inConnection < 16) socket.resume();
          if (bytes && !socket.destroyed) socket.write(Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 255]), bytes]));
        });
      }
    });
  }

  /**
   * One message in, one reply out (undefined: send nothing), synchronously when the cluster zone
   * or a cache answers and as a promise when an upstream must. Never throws for bad input.
   */
  answer(message: Buffer, proto: 'udp' | 'tcp', family: string): Buffer | undefined | Promise<Buffer | undefined> {
    const started = performance.now();
    const query = this.wire ? parseQuery(message, proto, family) : undefined;
    if (query) {
      const entry = this.wire!.get(query, message, this.options.index.generation);
      if (entry) {
        const bytes = patchedReply(entry, message, query);
        entry.metrics.answered((performance.now() - started) / 1000);
        return bytes;
      }
    }
    let request: Packet;
    try {
      if (!plausible(message)) throw new Error('implausible header counts');
      request = dnsPacket.decode(message);
    } catch {
      this.options.metrics.malformed.inc();
      return formatError(message);
    }
    if (request.type !== 'query') return undefined;
    const question = request.questions?.[0];
    const zone = question && inZone(normalize(question.name), this.options.index.zone) ? this.options.index.zone : '.';
    const type = typeLabel(question?.type ?? 'other');
    const labels = { server: this.serverLabel, zone, proto, family: family === 'IPv6' ? '2' : '1', type };
    this.options.metrics.request(labels);
    const opt = request.additionals?.find((record) => record.type === 'OPT') as OptRecord | undefined;
    const finish = (reply: Reply) => {
      const limit = proto === 'tcp' ? 65535 : opt ? udpLimit(opt.udpPayloadSize ?? 512) : 512;
      const bytes = encodeReply(request, reply, opt, limit);
      const rcode = reply.extendedRcode ? 'BADVERS' : reply.rcode;
      this.options.metrics.response(labels, rcode, (performance.now() - started) / 1000);
      if (query && reply.reusable) this.keep(query, bytes, reply.reusable, labels, rcode);
      return bytes;
    };
    const reply = this.reply(request, opt);
    return reply instanceof Promise ? reply.then(finish) : finish(reply);
  }

  /** Keeps an encoded reply for the same question asked again (./wire.ts). */
  private keep(query: WireQuery, bytes: Buffer, reusable: Reusable, labels: Parameters<DnsMetrics['bind']>[0], rcode: string): void {
    const offsets = nameOffsets(bytes, query.nameEnd - 12);
    if (!offsets) return;
    const metrics = this.options.metrics.bind(labels, rcode, reusable.hit);
    this.wire!.set(query, { bytes, nameOffsets: offsets, generation: reusable.generation, freshUntil: reusable.freshUntil, metrics });
  }

  private reply(request: Packet, opt: OptRecord | undefined): Reply | Promise<Reply> {
    const plain = (rcode: Rcode): Reply => ({ rcode, answers: [], authorities: [], authoritative: false });
    if (opt && (opt.ednsVersion ?? 0) > 0) return { ...plain('NOERROR'), extendedRcode: 1 };
    if ((((request.flags ?? 0) & OPCODE_MASK) >> 11) !== 0) return plain('NOTIMP');
    if (request.questions?.length !== 1) return plain('FORMERR');
    const question = request.questions[0]!;
    if (question.type === 'AXFR' || question.type === 'IXFR') return plain('REFUSED');
    const { index } = this.options;
    const generation = index.generation;
    const synced = this.options.synced();
    const local = resolveQuestion(index, question, synced);
    if (local.kind === 'forward') {
      // A reverse name goes upstream only while the index does not know it: such an answer is
      // reusable only as long as the index is unchanged.
      const dependsOnIndex = isReverse(normalize(question.name));
      return this.forwarded(question).then(({ answer, freshUntil, negative }) => ({
        ...answer,
        authoritative: false,
        reusable: freshUntil > 0 ? { generation: dependsOnIndex ? generation : undefined, freshUntil, hit: negative ? 'denial' : 'success' } : undefined,
      }));
    }
    if (!local.chase) {
      const reusable = synced && (local.rcode === 'NOERROR' || local.rcode === 'NXDOMAIN') ? { generation, freshUntil: Infinity } : undefined;
      return { ...local, authoritative: true, reusable };
    }
    return this.chased(local, question).then((answer) => ({ ...answer, authoritative: true }));
  }

  /** An ExternalName's CNAME plus the answer for its target from outside the zone. */
  private async chased(local: LocalAnswer, question: Question): Promise<Reply> {
    const target = await this.forwarded({ name: local.chase!, type: question.type, class: question.class });
    return { rcode: target.answer.rcode, answers: [...local.answers, ...target.answer.answers], authorities: target.answer.authorities, authoritative: true };
  }

  /** The answer from the cache or the upstream, and until when it may be reused as it is (0: not). */
  private async forwarded(question: Question): Promise<{ answer: CachedAnswer; freshUntil: number; negative: boolean }> {
    const { cache, metrics, forwarder, log } = this.options;
    const key = cacheKey(question.name, question.type, question.class ?? 'IN');
    const hit = cache.get(key);
    if (hit) {
      metrics.cacheHit(this.serverLabel, hit.negative ? 'denial' : 'success');
      return hit;
    }
    metrics.cacheMisses.inc({ server: this.serverLabel });
    try {
      const answer = await forwarder.resolve({ name: question.name, type: question.type, class: question.class ?? 'IN' });
      const freshUntil = cache.put(key, answer);
      return { answer, freshUntil, negative: answer.rcode !== 'NOERROR' || answer.answers.length === 0 };
    } catch (error) {
      if (error instanceof ForwardBusyError) {
        metrics.forwardMaxConcurrentRejects.inc();
        return { answer: { rcode: 'REFUSED', answers: [], authorities: [] }, freshUntil: 0, negative: true };
      }
      log.debug({ err: error, name: question.name, type: question.type }, 'forwarding failed');
      return { answer: { rcode: 'SERVFAIL', answers: [], authorities: [] }, freshUntil: 0, negative: true };
    }
  }
}

/**
 * Whether the header's counts can fit the message: at most one question, and every record at
 * least 11 bytes (5 for a question). dns-packet allocates arrays as long as these counts before
 * it reads a byte of them, which made random 600-byte messages cost milliseconds each; this
 * check keeps junk at microseconds. The decoding itself stays dns-packet's.
 */
function plausible(message: Buffer): boolean {
  if (message.length < 12) return false;
  const questions = message.readUInt16BE(4);
  const records = message.readUInt16BE(6) + message.readUInt16BE(8) + message.readUInt16BE(10);
  return questions <= 1 && questions * 5 + records * 11 <= message.length - 12;
}

/** FORMERR for a message dns-packet cannot decode, if its header says it is a query. */
function formatError(message: Buffer): Buffer | undefined {
  if (message.length < 12 || (message.readUInt16BE(2) & QR) !== 0) return undefined;
  const flags = (message.readUInt16BE(2) & OPCODE_MASK) | rcodeNumber.FORMERR;
  return dnsPacket.encode({ type: 'response', id: message.readUInt16BE(0), flags, questions: [], answers: [], authorities: [], additionals: [] });
}

function encodeReply(request: Packet, reply: Reply, opt: OptRecord | undefined, limit: number): Buffer {
  const flags =
    ((request.flags ?? 0) & (OPCODE_MASK | dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED)) |
    dnsPacket.RECURSION_AVAILABLE |
    (reply.authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) |
    rcodeNumber[reply.rcode];
  const additionals = opt ? [{ type: 'OPT', name: '.', udpPayloadSize: ourUdpSize, extendedRcode: reply.extendedRcode ?? 0, ednsVersion: 0, flags: 0, options: [] } as unknown as Answer] : [];
  const packet: Packet = { type: 'response', id: request.id, flags, questions: request.questions ?? [], answers: reply.answers, authorities: reply.authorities, additionals };
  let bytes: Buffer;
  try {
    bytes = dnsPacket.encode(packet);
  } catch {
    // A record that cannot be encoded (e.g. a too-long upstream name): SERVFAIL, not a crash.
    return dnsPacket.encode({ ...packet, flags: (flags & ~0xf) | rcodeNumber.SERVFAIL, answers: [], authorities: [] });
  }
  if (bytes.length <= limit) return bytes;
  return dnsPacket.encode({ ...packet, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [] });
}
