/**
 * The server's hot path: answers already encoded, kept by the question they answer, so that a
 * repeated question costs a header check, a Map lookup and a copy instead of a dns-packet
 * decode, a lookup and an encode (with 10k Services and a pod's resolver asking the same names
 * over and over, most queries are repeats).
 *
 *  - `parseQuery` reads only the header, the question and an optional EDNS0 OPT record, and
 *    gives up (undefined: the full decode in ./server.ts handles it, FORMERR/NOTIMP/BADVERS
 *    included) on anything unusual: a response, an opcode other than QUERY, other than one
 *    question, answer or authority records, a compressed or non-ASCII name, EDNS version > 0,
 *    trailing bytes.
 *  - The key is what the encoded reply depends on: the lower-cased name, type, class, the RD and
 *    CD bits (echoed), whether there was an OPT record and the size limit it sets (UDP) or TCP,
 *    and the protocol and family (metric labels). The DO bit is not in it: the server does no
 *    DNSSEC and its OPT never sets DO. The map is keyed by a 30-bit hash of it computed while
 *    the name is validated (no string is built per query: building, flattening and hashing a
 *    string key was the largest share of this path in a profile of the daemon); a hit is checked
 *    against the whole key, so a collision is a miss, never a wrong answer.
 *  - A hit copies the reply and patches the ID and the question name's bytes with the query's
 *    own (DNS 0x20 — resolvers that randomise the case expect it back), also where an owner
 *    name equals the question's name.
 *  - Validity: an answer built from the cluster zone lives while the index's generation is the
 *    one it was built from (every Service or EndpointSlice change bumps it, so a change is seen
 *    by the next query); a forwarded answer lives until the next whole second of its time in
 *    the answer cache (./cache.ts), when the TTLs it shows drop by one, or its expiry.
 *  - Bounded: at most `capacity` entries; a full cache forgets its oldest entry first.
 */
import type { BoundQueryMetrics } from './metrics.js';

const QR_OPCODE_MASK = 0xf800;
const OPT = 41;

/** An ASCII byte in lower case. */
const lower = (c: number) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

export interface WireQuery {
  /** Offset of the byte ending the question's name (the root label). */
  nameEnd: number;
  /** Everything in the key but the name, packed in one number: type, class, RD/CD, size limit, family. */
  rest: number;
  /** The map key: a hash of the lower-cased name and `rest` (see the file comment). */
  hash: number;
}

/** The size limit of a UDP reply to a query with this OPT payload size (RFC 6891 §6.2.5). */
export const udpLimit = (payloadSize: number) => Math.min(4096, Math.max(512, payloadSize));

/**
 * Header, question and optional OPT of a plain query, or undefined for anything else. Never
 * throws; reads only inside the message.
 */
export function parseQuery(message: Buffer, proto: 'udp' | 'tcp', family: string): WireQuery | undefined {
  const length = message.length;
  if (length < 17) return undefined;
  const flags = message.readUInt16BE(2);
  if ((flags & QR_OPCODE_MASK) !== 0) return undefined;
  if (message.readUInt16BE(4) !== 1 || message.readUInt16BE(6) !== 0 || message.readUInt16BE(8) !== 0) return undefined;
  const additional = message.readUInt16BE(10);
  if (additional > 1) return undefined;
  let offset = 12;
  let hash = 0x811c9dc5; // FNV-1a over the lower-cased name's wire bytes
  for (;;) {
    if (offset >= length) return undefined;
    const label = message[offset]!;
    if (label === 0) break;
    // > 63: a compression pointer or an extended label type; the full decoder deals with those.
    if (label > 63 || offset + 1 + label > length) return undefined;
    hash = Math.imul(hash ^ label, 0x01000193);
    for (let i = offset + 1; i <= offset + label; i++) {
      const c = message[i]!;
      // Non-ASCII, and bytes a dotted name would have to escape: left to the full decoder.
      if (c >= 0x80 || c === 0x2e || c === 0x5c || c <= 0x20) return undefined;
      hash = Math.imul(hash ^ lower(c), 0x01000193);
    }
    offset += label + 1;
  }
  const nameEnd = offset;
  if (nameEnd + 1 - 12 > 255) return undefined;
  offset = nameEnd + 5;
  if (offset > length) return undefined;
  // The size limit, coded: 0 UDP without OPT, 1 TCP without, 2 TCP with, else the UDP limit (≥ 512).
  let limit: number;
  if (additional === 0) {
    if (offset !== length) return undefined;
    limit = proto === 'tcp' ? 1 : 0;
  } else {
    if (offset + 11 > length || message[offset] !== 0 || message.readUInt16BE(offset + 1) !== OPT || message[offset + 6] !== 0) return undefined;
    if (offset + 11 + message.readUInt16BE(offset + 9) !== length) return undefined;
    limit = proto === 'tcp' ? 2 : udpLimit(message.readUInt16BE(offset + 3));
  }
  const rdCd = ((flags >> 8) & 1) | ((flags >> 3) & 2);
  // type (16 bits), class (16), limit (13), RD/CD (2), family (1): 48 bits, exact in a double.
  const low = (limit << 3) | (rdCd << 1) | (family === 'IPv6' ? 1 : 0);
  const rest = message.readUInt32BE(nameEnd + 1) * 65536 + low;
  hash = Math.imul(hash ^ message.readUInt32BE(nameEnd + 1), 0x01000193);
  hash = Math.imul(hash ^ low, 0x01000193);
  // 30 bits: a small integer, which V8's Map hashes without allocating.
  return { nameEnd, rest, hash: (hash >>> 2) & 0x3fffffff };
}

/** What the server keeps for a question (the cache adds the key it checks hits against). */
interface WireReply {
  bytes: Buffer;
  /** Where the question's name starts in `bytes` (12, and owner names equal to it). */
  nameOffsets: number[];
  /** The index generation the answer was built from; undefined: it does not depend on the index. */
  generation: number | undefined;
  /** Date.now() after which the entry is stale (Infinity: only the generation decides). */
  freshUntil: number;
  metrics: BoundQueryMetrics;
}

/**
 * A class, not an object spread: every entry has one shape, so the hot path's property loads
 * stay monomorphic (spread-built entries showed as LoadIC misses in the daemon's profile).
 */
class WireEntry implements WireReply {
  readonly bytes: Buffer;
  readonly nameOffsets: number[];
  readonly generation: number | undefined;
  readonly freshUntil: number;
  readonly metrics: BoundQueryMetrics;

  constructor(
    reply: WireReply,
    /** The question's name, lower-cased, as on the wire without the root label. */
    readonly name: Buffer,
    readonly rest: number,
  ) {
    this.bytes = reply.bytes;
    this.nameOffsets = reply.nameOffsets;
    this.generation = reply.generation;
    this.freshUntil = reply.freshUntil;
    this.metrics = reply.metrics;
  }
}

export class WireCache {
  private readonly entries = new Map<number, WireEntry>();

  constructor(
    readonly capacity = 20_000,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** A usable reply for this query (parsed from `message`), given the index's current generation. */
  get(query: WireQuery, message: Buffer, generation: number): WireReply | undefined {
    const entry = this.entries.get(query.hash);
    if (!entry || entry.rest !== query.rest || entry.name.length !== query.nameEnd - 12 || !sameName(message, 12, entry.name)) return undefined;
    if ((entry.generation !== undefined && entry.generation !== generation) || (entry.freshUntil !== Infinity && this.now() >= entry.freshUntil)) {
      this.entries.delete(query.hash);
      return undefined;
    }
    return entry;
  }

  /** Keeps `reply` for `query` (a reply whose question is at offset 12, as `nameOffsets` checks). */
  set(query: WireQuery, reply: WireReply): void {
    const name = Buffer.from(reply.bytes.subarray(12, query.nameEnd));
    for (let i = 0; i < name.length; i++) name[i] = lower(name[i]!);
    this.entries.delete(query.hash);
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(query.hash, new WireEntry(reply, name, query.rest));
  }

  clear(): void {
    this.entries.clear();
  }
}

/** The cached reply for this query: its ID and its question name's bytes (case) patched in. */
export function patchedReply(entry: WireReply, message: Buffer, query: WireQuery): Buffer {
  // TypedArray set and a byte loop rather than Buffer#copy: copy's argument checks showed in
  // the daemon's profile; the name is at most 255 bytes.
  const out = Buffer.allocUnsafe(entry.bytes.length);
  out.set(entry.bytes);
  out[0] = message[0]!;
  out[1] = message[1]!;
  const nameLength = query.nameEnd - 12;
  for (const at of entry.nameOffsets) for (let i = 0; i < nameLength; i++) out[at + i] = message[12 + i]!;
  return out;
}

/**
 * The offsets in an encoded reply where the question's name is written in full (the question
 * and owner names equal to it, case-insensitively), or undefined when the reply does not walk
 * as expected (then it is not cached). `nameLength` is the question name's wire length without
 * its root label.
 */
export function nameOffsets(reply: Buffer, nameLength: number): number[] | undefined {
  if (reply.length < 12 || reply.readUInt16BE(4) !== 1) return undefined;
  const question = reply.subarray(12, 12 + nameLength + 1);
  const offsets = [12];
  let offset = skipName(reply, 12);
  if (offset === undefined || offset !== 12 + nameLength + 1) return undefined;
  offset += 4;
  const records = reply.readUInt16BE(6) + reply.readUInt16BE(8) + reply.readUInt16BE(10);
  for (let i = 0; i < records; i++) {
    const end = skipName(reply, offset);
    if (end === undefined || end + 10 > reply.length) return undefined;
    if (end - offset === nameLength + 1 && sameName(reply, offset, question)) offsets.push(offset);
    offset = end + 10 + reply.readUInt16BE(end + 8);
  }
  return offset === reply.length ? offsets : undefined;
}

function skipName(buffer: Buffer, start: number): number | undefined {
  let offset = start;
  while (offset < buffer.length) {
    const label = buffer[offset]!;
    if (label === 0) return offset + 1;
    if ((label & 0xc0) === 0xc0) return offset + 2 <= buffer.length ? offset + 2 : undefined;
    if (label > 63) return undefined;
    offset += label + 1;
  }
  return undefined;
}

function sameName(buffer: Buffer, offset: number, name: Buffer): boolean {
  for (let i = 0; i < name.length; i++) {
    const a = buffer[offset + i]!;
    const b = name[i]!;
    if (a === b) continue;
    // Equal but for the case of an ASCII letter (length bytes never are letters: they are < 64).
    const lower = a | 0x20;
    if (lower !== (b | 0x20) || lower < 0x61 || lower > 0x7a) return false;
  }
  return true;
}
