/**
 * Forwarding outside the cluster zone to the node's resolvers, as CoreDNS's `forward` plugin:
 * UDP first with an EDNS0 buffer of 1232 bytes (the DNS flag day 2020 size), TCP when the
 * upstream truncates (TC) the answer, the next upstream after a timeout or an error, SERVFAIL
 * to the client when all fail. Bounded: at most `maxInFlight` distinct questions at once
 * (CoreDNS's `max_concurrent`; beyond it the caller answers REFUSED), identical questions in
 * flight share one upstream query. Each UDP query goes out on its own socket with a random ID
 * (and so a random source port), and an answer counts only when it comes from the upstream the
 * query went to with the same ID and question.
 */
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { connect, isIPv6 } from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Answer, Packet, Question } from 'dns-packet';
import type { Rcode } from './answer.js';
import type { CachedAnswer } from './cache.js';
import type { Upstream } from './resolv-conf.js';

const upstreamUdpSize = 1232;
const maxTcpMessage = 65535;

export class ForwardBusyError extends Error {
  constructor(limit: number) {
    super(`more than ${limit} forwarded queries in flight`);
    this.name = 'ForwardBusyError';
  }
}

const knownRcodes = new Set<string>(['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED']);

function query(question: Question): { id: number; bytes: Buffer } {
  const id = randomInt(65536);
  const packet: Packet = {
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [question],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: upstreamUdpSize, flags: 0 } as unknown as Answer],
  };
  return { id, bytes: dnsPacket.encode(packet) };
}

/** Whether a decoded message answers our query (same ID and question). */
function answers(response: Packet, id: number, question: Question): boolean {
  const q = response.questions?.[0];
  return response.type === 'response' && response.id === id && q !== undefined && q.name.toLowerCase() === question.name.toLowerCase() && q.type === question.type;
}

function toCached(response: Packet): CachedAnswer {
  const rcode = (response as { rcode?: string }).rcode ?? 'SERVFAIL';
  return {
    rcode: (knownRcodes.has(rcode) ? rcode : 'SERVFAIL') as Rcode,
    answers: (response.answers ?? []).filter((r) => r.type !== 'OPT'),
    authorities: (response.authorities ?? []).filter((r) => r.type !== 'OPT'),
  };
}

function udpExchange(upstream: Upstream, question: Question, timeoutMs: number): Promise<Packet> {
  const { id, bytes } = query(question);
  const socket = createSocket(isIPv6(upstream.host) ? 'udp6' : 'udp4');
  return new Promise<Packet>((resolve, reject) => {
    const finish = (error: Error | undefined, packet?: Packet) => {
      clearTimeout(timer);
      socket.close();
      if (error) reject(error);
      else resolve(packet!);
    };
    const timer = setTimeout(() => finish(new Error(`no answer from ${upstream.host}:${upstream.port} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (error) => finish(new Error(`UDP query to ${upstream.host}:${upstream.port} failed`, { cause: error })));
    socket.on('message', (message, from) => {
      if (from.address !== upstream.host || from.port !== upstream.port) return;
      let packet: Packet;
      try {
        packet = dnsPacket.decode(message);
      } catch {
        return; // not a DNS message: keep waiting for the real answer
      }
      if (answers(packet, id, question)) finish(undefined, packet);
    });
    socket.send(bytes, upstream.port, upstream.host);
  });
}

function tcpExchange(upstream: Upstream, question: Question, timeoutMs: number): Promise<Packet> {
  const { id, bytes } = query(question);
  return new Promise<Packet>((resolve, reject) => {
    const socket = connect({ host: upstream.host, port: upstream.port });
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (error: Error | undefined, packet?: Packet) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(packet!);
    };
    const timer = setTimeout(() => finish(new Error(`no TCP answer from ${upstream.host}:${upstream.port} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (error) => finish(new Error(`TCP query to ${upstream.host}:${upstream.port} failed`, { cause: error })));
    socket.on('connect', () => socket.write(Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 255]), bytes])));
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length > maxTcpMessage + 2) return finish(new Error(`TCP answer from ${upstream.host}:${upstream.port} too long`));
      if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
      try {
        const packet = dnsPacket.decode(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        if (!answers(packet, id, question)) return finish(new Error(`TCP answer from ${upstream.host}:${upstream.port} does not match the query`));
        finish(undefined, packet);
      } catch (error) {
        finish(new Error(`undecodable TCP answer from ${upstream.host}:${upstream.port}`, { cause: error }));
      }
    });
    socket.on('end', () => finish(new Error(`${upstream.host}:${upstream.port} closed the TCP connection without an answer`)));
  });
}

export class Forwarder {
  private readonly inFlight = new Map<string, Promise<CachedAnswer>>();

  constructor(
    private readonly upstreams: readonly Upstream[],
    private readonly options: { timeoutMs?: number; maxInFlight?: number } = {},
  ) {}

  get pending(): number {
    return this.inFlight.size;
  }

  get configured(): readonly Upstream[] {
    return this.upstreams;
  }

  /** The upstream's answer to one question; throws ForwardBusyError or when every upstream fails. */
  resolve(question: Question): Promise<CachedAnswer> {
    const key = `${question.name.toLowerCase()}|${question.type}|${question.class ?? 'IN'}`;
    const shared = this.inFlight.get(key);
    if (shared) return shared;
    const limit = this.options.maxInFlight ?? 1000;
    if (this.inFlight.size >= limit) return Promise.reject(new ForwardBusyError(limit));
    const pending = this.exchange(question).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, pending);
    return pending;
  }

  private async exchange(question: Question): Promise<CachedAnswer> {
    if (this.upstreams.length === 0) throw new Error('no upstream resolvers (no usable nameserver in --resolv-conf)');
    const timeoutMs = this.options.timeoutMs ?? 2000;
    const failures: unknown[] = [];
    for (const upstream of this.upstreams) {
      try {
        let packet = await udpExchange(upstream, question, timeoutMs);
        if (((packet.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) !== 0) packet = await tcpExchange(upstream, question, timeoutMs);
        return toCached(packet);
      } catch (error) {
        failures.push(error);
      }
    }
    throw new AggregateError(failures, `every upstream failed for ${question.name} ${question.type}`);
  }
}
