/**
 * A batch of nf_tables messages (tables, chains, rules, sets/maps and their elements) and the
 * parsers of what GET dumps return. The messages go between NFNL_MSG_BATCH_BEGIN and END
 * (./socket.ts), and the kernel commits them as one transaction. `cut()` marks where a batch
 * too big for one socket write may be split (see ./socket.ts for why that can be needed).
 */
import { encodeExprs, encodeVerdict, type Expr, type Verdict } from './expr.js';
import {
  ChainAttr, HookAttr, Hook, LIST_ELEM, Msg, NFPROTO_IPV4, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, NF_ACCEPT, RuleAttr, SetAttr, SetDescAttr,
  SetElemAttr, SetElemListAttr, SetFlag, TableAttr, DataAttr, attr, attrMap, be64, message, nested, nftType, readBe32, readBe64, readStr,
  strAttr, u32Attr, type HookName,
} from './wire.js';
import { decodeVerdict } from './expr.js';

export interface BaseChainSpec {
  type: 'filter' | 'nat';
  hook: HookName;
  priority: number;
}

export interface SetSpec {
  name: string;
  /** nft datatype number (7 ipv4_addr, 12 inet_proto, 13 inet_service; concatenations in 6-bit groups). */
  keyType: number;
  keyLen: number;
  flags: number;
  /** DATA_TYPE_VERDICT for verdict maps. */
  dataType?: number;
  timeoutMs?: bigint;
  comment?: string;
  /** Key byte order for nft's printing (NFTNL_UDATA_SET_KEYBYTEORDER: 1 host, 2 big endian). */
  keyByteOrder?: 1 | 2;
}

export interface Element {
  key: Buffer;
  verdict?: Verdict;
  intervalEnd?: boolean;
  comment?: string;
}

/** An anonymous set or map that belongs to one rule (`{ … }` in nft syntax). */
export interface AnonSet {
  spec: Omit<SetSpec, 'name'>;
  elements: Element[];
}

/** A rule; a lookup of "__set%d"/"__map%d" in it refers to `anon`. */
export interface Rule {
  exprs: Expr[];
  anon?: AnonSet;
  comment?: string;
}

const tlv = (type: number, value: Buffer) => Buffer.concat([Buffer.from([type, value.length]), value]);
const commentTlv = (type: number, text: string) => tlv(type, Buffer.from(`${text.slice(0, 120)}\0`));
const u32le = (value: number) => {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value);
  return buffer;
};

export class Batch {
  readonly messages: Buffer[] = [];
  /** What each message does, for error messages (same index as `messages`). */
  readonly descriptions: string[] = [];
  /** Indexes after which the batch may be split into separate transactions. */
  readonly cuts = new Set<number>();
  private nextSetId = 1;
  bytes = 0;

  constructor(readonly table: string, private readonly family = NFPROTO_IPV4) {}

  /** A batch from its serialised parts (a batch carried to a process in another netns). */
  static fromParts(table: string, messages: readonly Buffer[], descriptions: readonly string[], cuts: readonly number[]): Batch {
    const batch = new Batch(table);
    batch.messages.push(...messages);
    batch.descriptions.push(...descriptions);
    for (const cut of cuts) batch.cuts.add(cut);
    batch.bytes = messages.reduce((sum, m) => sum + m.length, 0);
    return batch;
  }

  get size(): number {
    return this.messages.length;
  }

  private push(msg: number, flags: number, attrs: Buffer[], description: string): void {
    const out = message(nftType(msg), NLM_F_REQUEST | flags, this.family, attrs);
    this.messages.push(out);
    this.descriptions.push(description);
    this.bytes += out.length;
  }

  cut(): void {
    if (this.messages.length > 0) this.cuts.add(this.messages.length - 1);
  }

  addTable(comment?: string): void {
    const attrs = [strAttr(TableAttr.name, this.table), u32Attr(TableAttr.flags, 0)];
    if (comment) attrs.push(attr(TableAttr.userdata, commentTlv(0, comment)));
    this.push(Msg.newTable, NLM_F_CREATE, attrs, `add table ${this.table}`);
  }

  deleteTable(): void {
    this.push(Msg.delTable, 0, [strAttr(TableAttr.name, this.table)], `delete table ${this.table}`);
  }

  addChain(name: string, base?: BaseChainSpec, comment?: string): void {
    const attrs = [strAttr(ChainAttr.table, this.table), strAttr(ChainAttr.name, name)];
    if (base) {
      attrs.push(nested(ChainAttr.hook, [u32Attr(HookAttr.hooknum, Hook[base.hook]), u32Attr(HookAttr.priority, base.priority)]));
      attrs.push(u32Attr(ChainAttr.policy, NF_ACCEPT), strAttr(ChainAttr.type, base.type));
    }
    if (comment) attrs.push(attr(ChainAttr.userdata, commentTlv(0, comment)));
    this.push(Msg.newChain, NLM_F_CREATE, attrs, `add chain ${name}`);
  }

  /** DELRULE with only the chain: removes every rule of the chain. */
  flushChain(name: string): void {
    this.push(Msg.delRule, 0, [strAttr(RuleAttr.table, this.table), strAttr(RuleAttr.chain, name)], `flush chain ${name}`);
  }

  deleteChain(name: string): void {
    this.push(Msg.delChain, 0, [strAttr(ChainAttr.table, this.table), strAttr(ChainAttr.name, name)], `delete chain ${name}`);
  }

  addRule(chain: string, rule: Rule): void {
    let exprs = rule.exprs;
    if (rule.anon) {
      const id = this.nextSetId++;
      const name = rule.anon.spec.flags & SetFlag.map ? '__map%d' : '__set%d';
      this.addSet({ ...rule.anon.spec, name }, id);
      this.addElements(name, rule.anon.elements, id);
      exprs = exprs.map((expr) => (expr.kind === 'lookup' && expr.set.startsWith('__') ? { ...expr, set: name, setId: id } : expr));
    }
    const attrs = [strAttr(RuleAttr.table, this.table), strAttr(RuleAttr.chain, chain), nested(RuleAttr.expressions, [encodeExprs(exprs)])];
    if (rule.comment) attrs.push(attr(RuleAttr.userdata, commentTlv(0, rule.comment)));
    this.push(Msg.newRule, NLM_F_CREATE | NLM_F_APPEND, attrs, `add rule to chain ${chain}`);
  }

  addSet(spec: SetSpec, id = this.nextSetId++): void {
    const attrs = [
      strAttr(SetAttr.table, this.table), strAttr(SetAttr.name, spec.name), u32Attr(SetAttr.flags, spec.flags),
      u32Attr(SetAttr.keyType, spec.keyType), u32Attr(SetAttr.keyLen, spec.keyLen),
    ];
    if (spec.dataType !== undefined) attrs.push(u32Attr(SetAttr.dataType, spec.dataType), u32Attr(SetAttr.dataLen, 0));
    attrs.push(u32Attr(SetAttr.id, id));
    if (spec.timeoutMs) attrs.push(attr(SetAttr.timeout, be64(spec.timeoutMs)));
    const udata: Buffer[] = [];
    if (spec.keyByteOrder) udata.push(tlv(0, u32le(spec.keyByteOrder)));
    if (spec.comment) udata.push(commentTlv(7, spec.comment));
    if (udata.length > 0) attrs.push(attr(SetAttr.userdata, Buffer.concat(udata)));
    this.push(Msg.newSet, NLM_F_CREATE, attrs, `add set ${spec.name}`);
  }

  deleteSet(name: string): void {
    this.push(Msg.delSet, 0, [strAttr(SetAttr.table, this.table), strAttr(SetAttr.name, name)], `delete set ${name}`);
  }

  /** DELSETELEM without elements: empties the set. */
  flushSet(name: string): void {
    this.push(Msg.delSetElem, 0, [strAttr(SetElemListAttr.table, this.table), strAttr(SetElemListAttr.set, name)], `flush set ${name}`);
  }

  /** `cuts`: the batch may be split between the messages of these elements. */
  addElements(set: string, elements: readonly Element[], setId?: number, cuts = false): void {
    this.elements(Msg.newSetElem, NLM_F_CREATE, set, elements, setId, cuts);
  }

  deleteElements(set: string, elements: readonly Element[], cuts = false): void {
    this.elements(Msg.delSetElem, 0, set, elements.map((element) => ({ key: element.key, intervalEnd: element.intervalEnd })), undefined, cuts);
  }

  /** Elements go in messages of at most 512 (a message is limited to 64 KiB by the u16 attribute length). */
  private elements(msg: number, flags: number, set: string, elements: readonly Element[], setId?: number, cuts = false): void {
    for (let start = 0; start < elements.length; start += 512) {
      const list = elements.slice(start, start + 512).map(encodeElement);
      const attrs = [strAttr(SetElemListAttr.table, this.table), strAttr(SetElemListAttr.set, set)];
      if (setId !== undefined) attrs.push(u32Attr(SetElemListAttr.setId, setId));
      attrs.push(nested(SetElemListAttr.elements, list));
      this.push(msg, flags, attrs, `${msg === Msg.newSetElem ? 'add' : 'delete'} ${list.length} element(s) of ${set}`);
      if (cuts) this.cut();
    }
  }
}

function encodeElement(element: Element): Buffer {
  const children = [nested(SetElemAttr.key, [attr(DataAttr.value, element.key)])];
  if (element.verdict) children.push(nested(SetElemAttr.data, [encodeVerdict(element.verdict)]));
  if (element.intervalEnd) children.push(u32Attr(SetElemAttr.flags, 1));
  if (element.comment) children.push(attr(SetElemAttr.userdata, commentTlv(0, element.comment)));
  return nested(LIST_ELEM, children);
}

// ---- parsers of GET dumps (payload = nfgenmsg + attributes) ----

const attrsOf = (payload: Buffer) => attrMap(payload.subarray(4));

interface ChainInfo {
  name: string;
  handle: bigint;
  hook?: number;
  priority?: number;
  type?: string;
}

export function parseChain(payload: Buffer): ChainInfo {
  const a = attrsOf(payload);
  const info: ChainInfo = { name: readStr(a.get(ChainAttr.name)) ?? '', handle: readBe64(a.get(ChainAttr.handle)) ?? 0n };
  const hook = a.get(ChainAttr.hook);
  if (hook) {
    const h = attrMap(hook);
    info.hook = readBe32(h.get(HookAttr.hooknum));
    const priority = readBe32(h.get(HookAttr.priority));
    info.priority = priority === undefined ? undefined : priority | 0;
    info.type = readStr(a.get(ChainAttr.type));
  }
  return info;
}

interface RuleInfo {
  chain: string;
  handle: bigint;
  /** The payload of NFTA_RULE_EXPRESSIONS. */
  exprs: Buffer;
}

export function parseRule(payload: Buffer): RuleInfo {
  const a = attrsOf(payload);
  return { chain: readStr(a.get(RuleAttr.chain)) ?? '', handle: readBe64(a.get(RuleAttr.handle)) ?? 0n, exprs: a.get(RuleAttr.expressions) ?? Buffer.alloc(0) };
}

interface SetInfo {
  name: string;
  flags: number;
  keyType: number;
  keyLen: number;
  dataType?: number;
  timeoutMs?: bigint;
}

export function parseSet(payload: Buffer): SetInfo {
  const a = attrsOf(payload);
  const info: SetInfo = { name: readStr(a.get(SetAttr.name)) ?? '', flags: readBe32(a.get(SetAttr.flags)) ?? 0, keyType: readBe32(a.get(SetAttr.keyType)) ?? 0, keyLen: readBe32(a.get(SetAttr.keyLen)) ?? 0 };
  if (a.has(SetAttr.dataType)) info.dataType = readBe32(a.get(SetAttr.dataType));
  const timeout = readBe64(a.get(SetAttr.timeout));
  if (timeout) info.timeoutMs = timeout;
  return info;
}

export function parseElements(payload: Buffer): Element[] {
  const list = attrsOf(payload).get(SetElemListAttr.elements);
  if (!list) return [];
  const out: Element[] = [];
  let offset = 0;
  while (offset + 4 <= list.length) {
    const length = list.readUInt16LE(offset);
    if (length < 4 || offset + length > list.length) break;
    const a = attrMap(list.subarray(offset + 4, offset + length));
    const keyAttr = a.get(SetElemAttr.key);
    const element: Element = { key: keyAttr ? attrMap(keyAttr).get(DataAttr.value) ?? Buffer.alloc(0) : Buffer.alloc(0) };
    const verdict = decodeVerdict(a.get(SetElemAttr.data));
    if (verdict) element.verdict = verdict;
    if ((readBe32(a.get(SetElemAttr.flags)) ?? 0) & 1) element.intervalEnd = true;
    out.push(element);
    offset += (length + 3) & ~3;
  }
  return out;
}

