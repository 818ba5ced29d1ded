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
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer, type Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Answer, Packet, Question } from 'dns-packet';
import type { Logger } from '../lib/log.js';
import { inZone, normalize, resolveQuestion, type LocalAnswer, type Rcode } from './answer.js';
import { AnswerCache, cacheKey, type CachedAnswer } from './cache.js';
import { ForwardBusyError, type Forwarder } from './forward.js';
import { typeLabel, type DnsMetrics } from './metrics.js';
import type { ClusterIndex } from './records.js';

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
}

interface Reply {
  rcode: Rcode;
  answers: Answer[];
  authorities: Answer[];
  authoritative: boolean;
  extendedRcode?: number;
}

type OptRecord = { type: 'OPT'; udpPayloadSize?: number; ednsVersion?: number };

export class DnsServer {
  private udp?: UdpSocket;
  private tcp?: TcpServer;
  private readonly connections = new Set<Socket>();
  private pending = 0;
  private serverLabel: string;

  constructor(private readonly options: DnsServerOptions) {
    this.serverLabel = `dns://${options.host}:${options.port}`;
  }

  /** Binds UDP and TCP on host:port (port 0: the same free port for both); returns the port. */
  async start(): Promise<number> {
    const { host } = this.options;
    const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    udp.on('message', (message, remote) => this.onUdp(message, remote.address, remote.port, remote.family));
    udp.on('error', (error) => this.options.log.warn({ err: error }, 'DNS UDP socket error'));
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
   * answers and as a promise when an upstream must. Never throws for bad input.
   */
  answer(message: Buffer, proto: 'udp' | 'tcp', family: string): Buffer | undefined | Promise<Buffer | undefined> {
    const started = process.hrtime.bigint();
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
      const limit = proto === 'tcp' ? 65535 : opt ? Math.min(4096, Math.max(512, opt.udpPayloadSize ?? 512)) : 512;
      const bytes = encodeReply(request, reply, opt, limit);
      this.options.metrics.response(labels, reply.extendedRcode ? 'BADVERS' : reply.rcode, Number(process.hrtime.bigint() - started) / 1e9);
      return bytes;
    };
    const reply = this.reply(request, opt);
    return reply instanceof Promise ? reply.then(finish) : finish(reply);
  }

  private reply(request: Packet, opt: OptRecord | undefined): Reply | Promise<Reply> {
    const plain = (rcode: Rcode): Reply => ({ rcode, answers: [], authorities: [], authoritative: false });
    if (opt && (opt.ednsVersion ?? 0) > 0) return { ...plain('NOERROR'), extendedRcode: 1 };
    if ((((request.flags ?? 0) & OPCODE_MASK) >> 11) !== 0) return plain('NOTIMP');
    if (request.questions?.length !== 1) return plain('FORMERR');
    const question = request.questions[0]!;
    if (question.type === 'AXFR' || question.type === 'IXFR') return plain('REFUSED');
    const local = resolveQuestion(this.options.index, question, this.options.synced());
    if (local.kind === 'forward') return this.forwarded(question).then((answer) => ({ ...answer, authoritative: false }));
    if (!local.chase) return { ...local, authoritative: true };
    return this.chased(local, question).then((answer) => ({ ...answer, authoritative: true }));
  }

  /** An ExternalName's CNAME plus the answer for its target from outside the zone. */
  private async chased(local: LocalAnswer, question: Question): Promise<Reply> {
    const target = await this.forwarded({ name: local.chase!, type: question.type, class: question.class });
    return { rcode: target.rcode, answers: [...local.answers, ...target.answers], authorities: target.authorities, authoritative: true };
  }

  private async forwarded(question: Question): Promise<CachedAnswer> {
    const { cache, metrics, forwarder, log } = this.options;
    const key = cacheKey(question.name, question.type, question.class ?? 'IN');
    const hit = cache.get(key);
    if (hit) {
      metrics.cacheHits.inc({ server: this.serverLabel, type: hit.negative ? 'denial' : 'success' });
      return hit.answer;
    }
    metrics.cacheMisses.inc({ server: this.serverLabel });
    try {
      const answer = await forwarder.resolve({ name: question.name, type: question.type, class: question.class ?? 'IN' });
      cache.put(key, answer);
      return answer;
    } catch (error) {
      if (error instanceof ForwardBusyError) {
        metrics.forwardMaxConcurrentRejects.inc();
        return { rcode: 'REFUSED', answers: [], authorities: [] };
      }
      log.debug({ err: error, name: question.name, type: question.type }, 'forwarding failed');
      return { rcode: 'SERVFAIL', answers: [], authorities: [] };
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
