/**
 * Building blocks of nf_tables rules, each the expression list nft 1.0 generates for the same
 * nft syntax (checked against `nft --debug=netlink` by test/integration/nftables-encoder.test.ts):
 * `ip daddr 10.0.0.1`, `ip saddr != 10.0.0.0/8`, `ip daddr . meta l4proto . th dport vmap @m`,
 * `numgen random mod 3 0 goto c`, `dnat to 10.1.0.1:80`, `mark set mark or 0x4000`, …
 */
import ipaddr from 'ipaddr.js';
import { FibFlag, NatFlag, reg32, type Expr, type Verdict } from './expr.js';
import { SetFlag } from './wire.js';
import type { AnonSet, Element } from './batch.js';

export type Proto = 'tcp' | 'udp' | 'sctp';
export const protoNumber: Record<Proto, number> = { tcp: 6, udp: 17, sctp: 132 };
/** nft datatypes (src/datatype.h): integer 4, ipv4_addr 7, inet_proto 12, inet_service 13. */
export const DataType = { integer: 4, ipv4Addr: 7, inetProto: 12, inetService: 13 } as const;
export const concatType = (...types: number[]) => types.reduce((out, type) => (out << 6) | type, 0);

const le32 = (value: number) => {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value >>> 0);
  return buffer;
};
const be16 = (value: number) => Buffer.from([(value >> 8) & 0xff, value & 0xff]);
export const ipBytes = (ip: string) => Buffer.from(ipaddr.IPv4.parse(ip).toByteArray());

/** Key bytes of `ipv4_addr . inet_proto . inet_service` (each field padded to 4 bytes). */
export const ipProtoPortKey = (ip: string, proto: Proto, port: number) => Buffer.concat([ipBytes(ip), Buffer.from([protoNumber[proto], 0, 0, 0]), be16(port), Buffer.alloc(2)]);
/** Key bytes of `inet_proto . inet_service`. */
export const protoPortKey = (proto: Proto, port: number) => Buffer.concat([Buffer.from([protoNumber[proto], 0, 0, 0]), be16(port), Buffer.alloc(2)]);

const ipField = (field: 'saddr' | 'daddr', len = 4, dreg = 1): Expr => ({ kind: 'payload', base: 'network', offset: field === 'saddr' ? 12 : 16, len, dreg });

/** `ip saddr|daddr [!=] IP[/bits]`, with nft's short loads for byte-aligned prefixes. */
export function matchIp(field: 'saddr' | 'daddr', cidr: string, op: 'eq' | 'neq' = 'eq'): Expr[] {
  const [ip, bitsText] = cidr.split('/');
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const bytes = ipBytes(ip ?? '');
  if (bits % 8 === 0) return [ipField(field, bits / 8), { kind: 'cmp', op, sreg: 1, data: bytes.subarray(0, bits / 8) }];
  const mask = Buffer.from(ipaddr.IPv4.subnetMaskFromPrefixLength(bits).toByteArray());
  const network = Buffer.from(bytes.map((byte, index) => byte & (mask[index] ?? 0)));
  return [ipField(field), { kind: 'bitwise', sreg: 1, dreg: 1, len: 4, mask, xor: Buffer.alloc(4) }, { kind: 'cmp', op, sreg: 1, data: network }];
}

export const matchL4proto = (proto: Proto): Expr[] => [{ kind: 'meta', key: 'l4proto', dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: Buffer.from([protoNumber[proto]]) }];
export const matchDport = (port: number): Expr[] => [{ kind: 'payload', base: 'transport', offset: 2, len: 2, dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: be16(port) }];
/** `tcp dport 80` (nft: l4proto check, then the port). */
export const matchProtoPort = (proto: Proto, port: number): Expr[] => [...matchL4proto(proto), ...matchDport(port)];

/** `ct state new`. */
export const ctStateNew = (): Expr[] => [
  { kind: 'ct', key: 'state', dreg: 1 },
  { kind: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: le32(0x08), xor: le32(0) },
  { kind: 'cmp', op: 'neq', sreg: 1, data: le32(0) },
];

const RTN_LOCAL = 2;
/** `fib saddr|daddr type local`. */
export const fibLocal = (field: 'saddr' | 'daddr'): Expr[] => [
  { kind: 'fib', flags: FibFlag[field], result: 'type', dreg: 1 },
  { kind: 'cmp', op: 'eq', sreg: 1, data: le32(RTN_LOCAL) },
];

export const verdict = (code: Verdict['code'], chain?: string): Expr => ({ kind: 'immediate', dreg: 0, verdict: chain === undefined ? { code } : { code, chain } });

/** `ip daddr . meta l4proto . th dport vmap @map`. */
export const vmapDaddrProtoPort = (map: string): Expr[] => [
  ipField('daddr'),
  { kind: 'meta', key: 'l4proto', dreg: reg32(1) },
  { kind: 'payload', base: 'transport', offset: 2, len: 2, dreg: reg32(2) },
  { kind: 'lookup', set: map, sreg: 1, dreg: 0 },
];

/** `meta l4proto . th dport vmap @map`. */
export const vmapProtoPort = (map: string): Expr[] => [
  { kind: 'meta', key: 'l4proto', dreg: 1 },
  { kind: 'payload', base: 'transport', offset: 2, len: 2, dreg: reg32(1) },
  { kind: 'lookup', set: map, sreg: 1, dreg: 0 },
];

/** `ip saddr @set` (or `ip daddr @set`). */
export const inSet = (field: 'saddr' | 'daddr', set: string, invert = false): Expr[] => [ipField(field), { kind: 'lookup', set, sreg: 1, ...(invert ? { invert } : {}) }];

/** `update @set { ip saddr }`. */
export const updateSetWithSaddr = (set: string): Expr[] => [ipField('saddr'), { kind: 'dynset', op: 'update', set, sregKey: 1 }];

/** `meta mark set meta mark or|xor VALUE`. */
export function setMark(op: 'or' | 'xor', value: number): Expr[] {
  const mask = op === 'or' ? le32(~value) : le32(0xffffffff);
  return [{ kind: 'meta', key: 'mark', dreg: 1 }, { kind: 'bitwise', sreg: 1, dreg: 1, len: 4, mask, xor: le32(value) }, { kind: 'metaSet', key: 'mark', sreg: 1 }];
}

/** `meta mark and VALUE == 0`. */
export const markClear = (value: number): Expr[] => [
  { kind: 'meta', key: 'mark', dreg: 1 },
  { kind: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: le32(value), xor: le32(0) },
  { kind: 'cmp', op: 'eq', sreg: 1, data: le32(0) },
];

export const masqueradeFullyRandom = (): Expr => ({ kind: 'masq', flags: NatFlag.protoRandomFully });

/** `meta l4proto PROTO dnat to IP:PORT`. */
export const dnatTo = (proto: Proto, ip: string, port: number): Expr[] => [
  ...matchL4proto(proto),
  { kind: 'immediateData', dreg: 1, data: ipBytes(ip) },
  { kind: 'immediateData', dreg: 2, data: be16(port) },
  { kind: 'nat', type: 'dnat', addrMin: 1, protoMin: 2, flags: NatFlag.protoSpecified },
];

/** `reject` (ICMP port unreachable, as nft's default for the ip family). */
export const reject = (): Expr => ({ kind: 'reject', type: 0, code: 3 });

/**
 * An even random choice among targets, one rule each: `numgen random mod N-i 0 goto Ci` for
 * i < N-1, then `goto C(N-1)` — target i is taken with probability 1/N, as iptables mode's
 * `statistic mode random probability 1/(N-i)` rules. kube-proxy writes one rule with an
 * anonymous map instead (`numgen random mod N vmap { 0 : goto C0, … }`), but every set of a
 * table sits on one list that the kernel walks by name for each new set and each rule that
 * uses one (nf_tables_newset, nft_set_lookup_global): one map per Service makes a sync
 * quadratic in the number of Services (measured: 10k × 10 endpoints 12.4 → 7.6 s, 100k × 2
 * 619 s → 26 s). Up to N-1 numgen draws per new connection; later packets follow conntrack.
 */
export function numgenPick(targets: readonly Verdict[]): Expr[][] {
  return targets.map((target, index) => {
    const left = targets.length - index;
    const verdict: Expr = { kind: 'immediate', dreg: 0, verdict: target };
    return left > 1 ? [{ kind: 'numgen', type: 'random', modulus: left, offset: 0, dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: le32(0) }, verdict] : [verdict];
  });
}

/** The interval elements of a set of IPv4 CIDRs, merged, with nft's leading "0.0.0.0 end". */
export function cidrIntervals(cidrs: readonly string[]): Element[] {
  const ranges = cidrs
    .map((cidr) => {
      const [ip, bits] = ipaddr.IPv4.parseCIDR(cidr);
      const start = ip.toByteArray().reduce((out, byte) => out * 256 + byte, 0);
      const size = 2 ** (32 - bits);
      return [start - (start % size), start - (start % size) + size] as [number, number];
    })
    .sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const range of ranges) {
    const last = merged[merged.length - 1];
    if (last && range[0] <= last[1]) last[1] = Math.max(last[1], range[1]);
    else merged.push([...range]);
  }
  const key = (value: number) => {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32BE(value % 2 ** 32);
    return buffer;
  };
  const out: Element[] = [];
  if (merged[0] && merged[0][0] !== 0) out.push({ key: key(0), intervalEnd: true });
  for (const [start, end] of merged) {
    out.push({ key: key(start) });
    if (end < 2 ** 32) out.push({ key: key(end), intervalEnd: true });
  }
  return out;
}

/** `ip saddr != { CIDR, … } drop`. */
export function dropUnlessSaddrIn(cidrs: readonly string[]): { exprs: Expr[]; anon: AnonSet } {
  return {
    exprs: [...inSet('saddr', '__set%d', true), verdict('drop')],
    anon: { spec: { keyType: DataType.ipv4Addr, keyLen: 4, flags: SetFlag.anonymous | SetFlag.constant | SetFlag.interval }, elements: cidrIntervals(cidrs) },
  };
}
