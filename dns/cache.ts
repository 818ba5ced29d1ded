/**
 * The answer cache for forwarded names, as CoreDNS's cache plugin: positive answers live for the
 * smallest TTL of their records, negative ones (NXDOMAIN, NODATA) for the SOA's TTL bounded by
 * its minimum field (RFC 2308 §5), both capped (3600 s success, 1800 s denial — CoreDNS's
 * defaults); SERVFAIL and truncated answers are not kept. TTLs handed out count down with the
 * time spent in the cache. Bounded: at most `capacity` entries, least recently used evicted first
 * (a Map keeps insertion order; a hit re-inserts).
 */
import type { Answer } from 'dns-packet';
import type { Rcode } from './answer.js';

export interface CachedAnswer {
  rcode: Rcode;
  answers: Answer[];
  authorities: Answer[];
}

interface Entry extends CachedAnswer {
  storedAt: number;
  expiresAt: number;
  negative: boolean;
}

export const cacheKey = (name: string, type: string, klass: string) => `${name.toLowerCase().replace(/\.$/, '')}|${type}|${klass}`;

const ttlOf = (record: Answer): number => ('ttl' in record && typeof record.ttl === 'number' ? record.ttl : 0);

/** How long an answer may be cached (seconds), or 0 when it must not be. Pure. */
export function cacheSeconds(answer: CachedAnswer, maxSuccess = 3600, maxDenial = 1800): { seconds: number; negative: boolean } {
  const records = answer.answers.filter((record) => record.type !== 'OPT');
  if (answer.rcode === 'NOERROR' && records.length > 0) return { seconds: Math.min(maxSuccess, ...records.map(ttlOf)), negative: false };
  if (answer.rcode !== 'NOERROR' && answer.rcode !== 'NXDOMAIN') return { seconds: 0, negative: true };
  const soa = answer.authorities.find((record) => record.type === 'SOA');
  if (!soa || soa.type !== 'SOA') return { seconds: 0, negative: true };
  return { seconds: Math.min(maxDenial, ttlOf(soa), soa.data.minimum ?? ttlOf(soa)), negative: true };
}

const withTtl = (records: Answer[], elapsed: number): Answer[] =>
  records.map((record) => ('ttl' in record && typeof record.ttl === 'number' ? { ...record, ttl: Math.max(0, record.ttl - elapsed) } : record)) as Answer[];

export class AnswerCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly capacity = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * A fresh entry with its TTLs counted down, whether it is a denial, and until when (Date.now())
   * the TTLs shown stay the same; undefined on a miss.
   */
  get(key: string): { answer: CachedAnswer; negative: boolean; freshUntil: number } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const now = this.now();
    if (now >= entry.expiresAt) {
      this.entries.delete(key);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, entry);
    const elapsed = Math.floor((now - entry.storedAt) / 1000);
    const freshUntil = Math.min(entry.expiresAt, entry.storedAt + (elapsed + 1) * 1000);
    return { answer: { rcode: entry.rcode, answers: withTtl(entry.answers, elapsed), authorities: withTtl(entry.authorities, elapsed) }, negative: entry.negative, freshUntil };
  }

  /** Keeps an answer if it may be cached; returns until when its TTLs stay as they are, 0 when not kept. */
  put(key: string, answer: CachedAnswer): number {
    const { seconds, negative } = cacheSeconds(answer);
    if (seconds <= 0) return 0;
    const now = this.now();
    this.entries.delete(key);
    const expiresAt = now + seconds * 1000;
    this.entries.set(key, { ...answer, storedAt: now, expiresAt, negative });
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return Math.min(expiresAt, now + 1000);
  }

  clear(): void {
    this.entries.clear();
  }
}
