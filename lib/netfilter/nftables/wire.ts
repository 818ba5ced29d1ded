/**
 * nf_tables netlink wire format: netlink attributes, nfnetlink message headers and the
 * constants of include/uapi/linux/netfilter/nf_tables.h and nfnetlink.h that knode uses.
 * No npm package speaks nf_tables, so this is the small
 * hand-written layer under the encoder; integers inside nf_tables attributes are big-endian
 * (NLA_BE32/NLA_BE64), netlink headers are host-endian (x86/arm64: little-endian).
 */

export const NETLINK_NETFILTER = 12;
export const NFNL_SUBSYS_NFTABLES = 10;
export const NFNL_MSG_BATCH_BEGIN = 16;
export const NFNL_MSG_BATCH_END = 17;
export const NFPROTO_IPV4 = 2;

export const NLM_F_REQUEST = 0x1;
const NLM_F_MULTI = 0x2;
const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

/** NFT_MSG_* (the message type is NFNL_SUBSYS_NFTABLES << 8 | msg). */
export const Msg = {
  newTable: 0, getTable: 1, delTable: 2,
  newChain: 3, getChain: 4, delChain: 5,
  newRule: 6, getRule: 7, delRule: 8,
  newSet: 9, getSet: 10, delSet: 11,
  newSetElem: 12, getSetElem: 13, delSetElem: 14,
  newGen: 15, getGen: 16,
} as const;

export const TableAttr = { name: 1, flags: 2, use: 3, handle: 4, userdata: 6 } as const;
export const ChainAttr = { table: 1, handle: 2, name: 3, hook: 4, policy: 5, use: 6, type: 7, flags: 10, userdata: 12 } as const;
export const HookAttr = { hooknum: 1, priority: 2 } as const;
export const RuleAttr = { table: 1, chain: 2, handle: 3, expressions: 4, userdata: 7 } as const;
export const SetAttr = { table: 1, name: 2, flags: 3, keyType: 4, keyLen: 5, dataType: 6, dataLen: 7, policy: 8, desc: 9, id: 10, timeout: 11, userdata: 13 } as const;
export const SetDescAttr = { size: 1 } as const;
export const SetElemListAttr = { table: 1, set: 2, elements: 3, setId: 4 } as const;
export const SetElemAttr = { key: 1, data: 2, flags: 3, timeout: 4, expiration: 5, userdata: 6 } as const;
export const DataAttr = { value: 1, verdict: 2 } as const;
export const VerdictAttr = { code: 1, chain: 2 } as const;
export const ExprAttr = { name: 1, data: 2 } as const;
export const LIST_ELEM = 1;

export const SetFlag = { anonymous: 0x1, constant: 0x2, interval: 0x4, map: 0x8, timeout: 0x10, eval: 0x20 } as const;
const SET_ELEM_INTERVAL_END = 0x1;
/** NFT_DATA_VERDICT as a set data type. */
export const DATA_TYPE_VERDICT = 0xffffff00;
export const Hook = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 } as const;
export type HookName = keyof typeof Hook;
const NF_DROP = 0;
export const NF_ACCEPT = 1;

/** One attribute: 4-byte header (length, type) and the payload padded to 4 bytes. */
export function attr(type: number, payload: Buffer): Buffer {
  // allocUnsafe takes small buffers from Node's pool: a 10k-Service sync makes millions of these
  const length = 4 + payload.length;
  const padded = (length + 3) & ~3;
  const out = Buffer.allocUnsafe(padded);
  out.writeUInt16LE(length, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  if (padded > length) out.fill(0, length);
  return out;
}

export const nested = (type: number, children: readonly Buffer[]) => attr(type | NLA_F_NESTED, Buffer.concat(children));
const strz = (text: string) => Buffer.from(`${text}\0`, 'utf8');
const be32 = (value: number) => {
  const buffer = Buffer.allocUnsafe(4);
  buffer.writeUInt32BE(value >>> 0);
  return buffer;
};
export const be64 = (value: bigint) => {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(value);
  return buffer;
};
export const strAttr = (type: number, text: string) => attr(type, strz(text));
export const u32Attr = (type: number, value: number) => attr(type, be32(value));

interface Attr {
  type: number;
  nested: boolean;
  data: Buffer;
}

/** Parses a run of attributes (bounded by the buffer; a malformed length ends the run). */
export function parseAttrs(data: Buffer): Attr[] {
  const out: Attr[] = [];
  let offset = 0;
  while (offset + 4 <= data.length) {
    const length = data.readUInt16LE(offset);
    const rawType = data.readUInt16LE(offset + 2);
    if (length < 4 || offset + length > data.length) break;
    out.push({ type: rawType & NLA_TYPE_MASK, nested: (rawType & NLA_F_NESTED) !== 0, data: data.subarray(offset + 4, offset + length) });
    offset += (length + 3) & ~3;
  }
  return out;
}

/** type → payload (the last one wins, as in the kernel's nla_parse). */
export function attrMap(data: Buffer): Map<number, Buffer> {
  return new Map(parseAttrs(data).map((a) => [a.type, a.data]));
}

export const readStr = (data: Buffer | undefined) => (data ? data.toString('utf8').replace(/\0.*$/s, '') : undefined);
export const readBe32 = (data: Buffer | undefined) => (data && data.length >= 4 ? data.readUInt32BE(0) : undefined);
export const readBe64 = (data: Buffer | undefined) => (data && data.length >= 8 ? data.readBigUInt64BE(0) : undefined);

/** nlmsghdr + nfgenmsg + attributes. `seq` is patched in when the batch is sent. */
export function message(type: number, flags: number, family: number, attrs: readonly Buffer[], resId = 0): Buffer {
  const body = Buffer.concat(attrs);
  const out = Buffer.allocUnsafe(20 + body.length);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt32LE(0, 8);
  out.writeUInt32LE(0, 12);
  out.writeUInt8(family, 16);
  out.writeUInt8(0, 17);
  out.writeUInt16BE(resId, 18);
  body.copy(out, 20);
  return out;
}

export const nftType = (msg: number) => (NFNL_SUBSYS_NFTABLES << 8) | msg;

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  /** The payload after the nlmsghdr (for nf_tables: nfgenmsg + attributes). */
  payload: Buffer;
}

/** Splits a datagram into netlink messages. */
export function parseMessages(data: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let offset = 0;
  while (offset + 16 <= data.length) {
    const length = data.readUInt32LE(offset);
    if (length < 16 || offset + length > data.length) break;
    out.push({ type: data.readUInt16LE(offset + 4), flags: data.readUInt16LE(offset + 6), seq: data.readUInt32LE(offset + 8), payload: data.subarray(offset + 16, offset + length) });
    offset += (length + 3) & ~3;
  }
  return out;
}
