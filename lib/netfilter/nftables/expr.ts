/**
 * nf_tables expressions: a typed form, its netlink encoding (NFTA_EXPR_NAME + NFTA_EXPR_DATA,
 * attribute numbers of include/uapi/linux/netfilter/nf_tables.h) and the decoding of what the
 * kernel dumps back. encode(decode(kernelBytes)) is the canonical form used to compare the
 * kernel's rules with the wanted ones: what the kernel adds (counter values, default flags,
 * nesting flags) does not count as drift.
 */
import { DataAttr, ExprAttr, LIST_ELEM, NlWriter, VerdictAttr, attrMap, parseAttrs, readBe32, readBe64, readStr } from './wire.js';

const Reg = { verdict: 0, r1: 1, r2: 2 } as const;
/** NFT_REG32_00 + n: the 32-bit registers used for concatenations (reg32 0 overlaps reg 1). */
export const reg32 = (n: number) => 8 + n;

type PayloadBase = 'link' | 'network' | 'transport' | 'inner';
type CmpOp = 'eq' | 'neq' | 'lt' | 'lte' | 'gt' | 'gte';
type MetaKey = 'len' | 'protocol' | 'mark' | 'iif' | 'oif' | 'nfproto' | 'l4proto';
type CtKey = 'state' | 'direction' | 'status' | 'mark';
type VerdictCode = 'drop' | 'accept' | 'continue' | 'break' | 'jump' | 'goto' | 'return';

export interface Verdict {
  code: VerdictCode;
  chain?: string;
}

export type Expr =
  | { kind: 'payload'; base: PayloadBase; offset: number; len: number; dreg: number }
  | { kind: 'cmp'; op: CmpOp; sreg: number; data: Buffer }
  | { kind: 'meta'; key: MetaKey; dreg: number }
  | { kind: 'metaSet'; key: MetaKey; sreg: number }
  | { kind: 'ct'; key: CtKey; dreg: number }
  | { kind: 'bitwise'; sreg: number; dreg: number; len: number; mask: Buffer; xor: Buffer }
  | { kind: 'lookup'; set: string; setId?: number; sreg: number; dreg?: number; invert?: boolean }
  | { kind: 'immediate'; dreg: 0; verdict: Verdict }
  | { kind: 'immediateData'; dreg: number; data: Buffer }
  | { kind: 'numgen'; type: 'inc' | 'random'; modulus: number; offset: number; dreg: number }
  | { kind: 'nat'; type: 'snat' | 'dnat'; addrMin?: number; addrMax?: number; protoMin?: number; protoMax?: number; flags: number }
  | { kind: 'masq'; flags: number }
  | { kind: 'counter'; packets: bigint; bytes: bigint }
  | { kind: 'dynset'; op: 'add' | 'update' | 'delete'; set: string; setId?: number; sregKey: number; timeoutMs?: bigint }
  | { kind: 'reject'; type: number; code: number }
  | { kind: 'fib'; flags: number; result: 'oif' | 'oifname' | 'type'; dreg: number }
  | { kind: 'unknown'; name: string; data: Buffer };

const bases: readonly PayloadBase[] = ['link', 'network', 'transport', 'inner'];
const cmpOps: readonly CmpOp[] = ['eq', 'neq', 'lt', 'lte', 'gt', 'gte'];
const metaKeys: Record<MetaKey, number> = { len: 0, protocol: 1, mark: 3, iif: 4, oif: 5, nfproto: 15, l4proto: 16 };
const ctKeys: Record<CtKey, number> = { state: 0, direction: 1, status: 2, mark: 3 };
const verdictCodes: Record<VerdictCode, number> = { drop: 0, accept: 1, continue: -1, break: -2, jump: -3, goto: -4, return: -5 };
const dynsetOps = ['add', 'update', 'delete'] as const;
const fibResults = { oif: 1, oifname: 2, type: 3 } as const;
export const FibFlag = { saddr: 1, daddr: 2, mark: 4, iif: 8, oif: 16 } as const;
/** nf_nat.h NF_NAT_RANGE_* flags. */
export const NatFlag = { mapIps: 0x1, protoSpecified: 0x2, protoRandom: 0x4, persistent: 0x8, protoRandomFully: 0x10 } as const;
const NFPROTO_IPV4 = 2;

const keyOf = <K extends string>(table: Record<K, number>, value: number | undefined): K | undefined =>
  (Object.keys(table) as K[]).find((key) => table[key] === value);

const value = (w: NlWriter, type: number, data: Buffer) => {
  const handle = w.nest(type);
  w.bytes(DataAttr.value, data);
  w.end(handle);
};

export function writeVerdict(w: NlWriter, verdict: Verdict): void {
  const handle = w.nest(DataAttr.verdict);
  w.u32(VerdictAttr.code, verdictCodes[verdict.code]);
  if (verdict.chain !== undefined) w.str(VerdictAttr.chain, verdict.chain);
  w.end(handle);
}

function writeData(w: NlWriter, expr: Expr): void {
  switch (expr.kind) {
    case 'payload': w.u32(1, expr.dreg); w.u32(2, bases.indexOf(expr.base)); w.u32(3, expr.offset); w.u32(4, expr.len); return;
    case 'cmp': w.u32(1, expr.sreg); w.u32(2, cmpOps.indexOf(expr.op)); value(w, 3, expr.data); return;
    case 'meta': w.u32(2, metaKeys[expr.key]); w.u32(1, expr.dreg); return;
    case 'metaSet': w.u32(2, metaKeys[expr.key]); w.u32(3, expr.sreg); return;
    case 'ct': w.u32(2, ctKeys[expr.key]); w.u32(1, expr.dreg); return;
    case 'bitwise': w.u32(1, expr.sreg); w.u32(2, expr.dreg); w.u32(3, expr.len); value(w, 4, expr.mask); value(w, 5, expr.xor); return;
    case 'lookup':
      w.u32(2, expr.sreg);
      if (expr.dreg !== undefined) w.u32(3, expr.dreg);
      w.str(1, expr.set);
      if (expr.setId !== undefined) w.u32(4, expr.setId);
      if (expr.invert) w.u32(5, 1);
      return;
    case 'immediate': {
      w.u32(1, 0);
      const handle = w.nest(2);
      writeVerdict(w, expr.verdict);
      w.end(handle);
      return;
    }
    case 'immediateData': w.u32(1, expr.dreg); value(w, 2, expr.data); return;
    case 'numgen': w.u32(1, expr.dreg); w.u32(2, expr.modulus); w.u32(3, expr.type === 'random' ? 1 : 0); w.u32(4, expr.offset); return;
    case 'nat':
      w.u32(1, expr.type === 'dnat' ? 1 : 0);
      w.u32(2, NFPROTO_IPV4);
      if (expr.addrMin !== undefined) w.u32(3, expr.addrMin);
      if (expr.addrMax !== undefined) w.u32(4, expr.addrMax);
      if (expr.protoMin !== undefined) w.u32(5, expr.protoMin);
      if (expr.protoMax !== undefined) w.u32(6, expr.protoMax);
      if (expr.flags) w.u32(7, expr.flags);
      return;
    case 'masq': if (expr.flags) w.u32(1, expr.flags); return;
    case 'counter': w.u64(1, expr.bytes); w.u64(2, expr.packets); return;
    case 'dynset':
      w.u32(4, expr.sregKey);
      w.u32(3, dynsetOps.indexOf(expr.op));
      if (expr.timeoutMs) w.u64(6, expr.timeoutMs);
      w.str(1, expr.set);
      if (expr.setId !== undefined) w.u32(2, expr.setId);
      return;
    case 'reject': w.u32(1, expr.type); w.bytes(2, Buffer.from([expr.code])); return;
    case 'fib': w.u32(1, expr.dreg); w.u32(2, fibResults[expr.result]); w.u32(3, expr.flags); return;
    case 'unknown': w.raw(expr.data); return;
  }
}

const exprName = (expr: Expr) => (expr.kind === 'metaSet' ? 'meta' : expr.kind === 'immediateData' ? 'immediate' : expr.kind);

/** One NFTA_LIST_ELEM holding the expression, written in place. */
export function writeExpr(w: NlWriter, expr: Expr): void {
  const elem = w.nest(LIST_ELEM);
  w.str(ExprAttr.name, exprName(expr));
  if (expr.kind === 'unknown') {
    w.bytes(ExprAttr.data | 0x8000, expr.data);
  } else {
    const data = w.nest(ExprAttr.data);
    writeData(w, expr);
    w.end(data);
  }
  w.end(elem);
}

/** The payload of NFTA_RULE_EXPRESSIONS as a Buffer (rule keys, tests). */
const scratch = new NlWriter(64 * 1024);

export function encodeExprs(exprs: readonly Expr[]): Buffer {
  const w = scratch;
  for (const expr of exprs) writeExpr(w, expr);
  return w.take();
}


function decodeDataValue(data: Buffer | undefined): Buffer {
  return data ? attrMap(data).get(DataAttr.value) ?? Buffer.alloc(0) : Buffer.alloc(0);
}

export function decodeVerdict(data: Buffer | undefined): Verdict | undefined {
  const verdict = data ? attrMap(data).get(DataAttr.verdict) : undefined;
  if (!verdict) return undefined;
  const attrs = attrMap(verdict);
  const code = keyOf(verdictCodes, readBe32(attrs.get(VerdictAttr.code)) === undefined ? undefined : (readBe32(attrs.get(VerdictAttr.code)) ?? 0) | 0);
  if (!code) return undefined;
  const chain = readStr(attrs.get(VerdictAttr.chain));
  return chain === undefined ? { code } : { code, chain };
}

function decodeOne(name: string, raw: Buffer): Expr {
  const a = attrMap(raw);
  const n = (type: number) => readBe32(a.get(type)) ?? 0;
  switch (name) {
    case 'payload': return { kind: 'payload', dreg: n(1), base: bases[n(2)] ?? 'link', offset: n(3), len: n(4) };
    case 'cmp': return { kind: 'cmp', sreg: n(1), op: cmpOps[n(2)] ?? 'eq', data: decodeDataValue(a.get(3)) };
    case 'meta': {
      const key = keyOf(metaKeys, n(2));
      if (!key) break;
      return a.has(3) ? { kind: 'metaSet', key, sreg: n(3) } : { kind: 'meta', key, dreg: n(1) };
    }
    case 'ct': {
      const key = keyOf(ctKeys, n(2));
      if (!key || a.has(3) || a.has(4)) break;
      return { kind: 'ct', key, dreg: n(1) };
    }
    case 'bitwise': return { kind: 'bitwise', sreg: n(1), dreg: n(2), len: n(3), mask: decodeDataValue(a.get(4)), xor: decodeDataValue(a.get(5)) };
    case 'lookup': {
      const expr: Expr = { kind: 'lookup', set: readStr(a.get(1)) ?? '', sreg: n(2) };
      if (a.has(3)) expr.dreg = n(3);
      if (n(5) & 1) expr.invert = true;
      return expr;
    }
    case 'immediate': {
      if (n(1) === 0) {
        const verdict = decodeVerdict(a.get(2));
        if (verdict) return { kind: 'immediate', dreg: 0, verdict };
        break;
      }
      return { kind: 'immediateData', dreg: n(1), data: decodeDataValue(a.get(2)) };
    }
    case 'numgen': return { kind: 'numgen', dreg: n(1), modulus: n(2), type: n(3) === 1 ? 'random' : 'inc', offset: n(4) };
    case 'nat': {
      const expr: Expr = { kind: 'nat', type: n(1) === 1 ? 'dnat' : 'snat', flags: n(7) };
      if (a.has(3)) expr.addrMin = n(3);
      if (a.has(4)) expr.addrMax = n(4);
      if (a.has(5)) expr.protoMin = n(5);
      if (a.has(6)) expr.protoMax = n(6);
      return expr;
    }
    case 'masq': return { kind: 'masq', flags: n(1) };
    case 'counter': return { kind: 'counter', bytes: readBe64(a.get(1)) ?? 0n, packets: readBe64(a.get(2)) ?? 0n };
    case 'dynset': {
      const expr: Expr = { kind: 'dynset', op: dynsetOps[n(3)] ?? 'add', set: readStr(a.get(1)) ?? '', sregKey: n(4) };
      const timeout = readBe64(a.get(6));
      if (timeout) expr.timeoutMs = timeout;
      return expr;
    }
    case 'reject': return { kind: 'reject', type: n(1), code: a.get(2)?.[0] ?? 0 };
    case 'fib': {
      const result = keyOf(fibResults, n(2));
      if (!result) break;
      return { kind: 'fib', dreg: n(1), result, flags: n(3) };
    }
  }
  return { kind: 'unknown', name, data: raw };
}

/** Decodes the payload of NFTA_RULE_EXPRESSIONS (a list of NFTA_LIST_ELEM). */
export function decodeExprs(list: Buffer): Expr[] {
  return parseAttrs(list)
    .filter((elem) => elem.type === LIST_ELEM)
    .map((elem) => {
      const a = attrMap(elem.data);
      return decodeOne(readStr(a.get(ExprAttr.name)) ?? '', a.get(ExprAttr.data) ?? Buffer.alloc(0));
    });
}

/**
 * The canonical bytes of a rule for comparisons: counters zeroed and anonymous set names
 * (the kernel turns "__set%d" into "__set0") and set ids left out.
 */
export function canonicalExprs(exprs: readonly Expr[]): Buffer {
  return encodeExprs(
    exprs.map((expr): Expr => {
      if (expr.kind === 'counter') return { kind: 'counter', packets: 0n, bytes: 0n };
      // the kernel dumps max registers equal to the min ones and adds the MAP_IPS/PROTO flags
      if (expr.kind === 'nat') {
        return {
          kind: 'nat', type: expr.type, addrMin: expr.addrMin, protoMin: expr.protoMin,
          addrMax: expr.addrMax === expr.addrMin ? undefined : expr.addrMax,
          protoMax: expr.protoMax === expr.protoMin ? undefined : expr.protoMax,
          flags: expr.flags | (expr.addrMin !== undefined ? NatFlag.mapIps : 0) | (expr.protoMin !== undefined ? NatFlag.protoSpecified : 0),
        };
      }
      if (expr.kind === 'lookup' && /^__(set|map)/.test(expr.set)) return { ...expr, set: '__anon', setId: undefined };
      if (expr.kind === 'lookup' || expr.kind === 'dynset') return { ...expr, setId: undefined };
      return expr;
    }),
  );
}

