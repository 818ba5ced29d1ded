/**
 * A batch of nf_tables messages (tables, chains, rules, sets/maps and their elements) and the
 * parsers of what GET dumps return. The messages go between NFNL_MSG_BATCH_BEGIN and END
 * (./socket.ts), and the kernel commits them as one transaction. `cut()` marks where a batch
 * too big for one socket write may be split (see ./socket.ts for why that can be needed).
 */
import { writeExpr, writeVerdict, type Expr, type Verdict } from './expr.js';
import {
  ChainAttr, HookAttr, Hook, LIST_ELEM, Msg, NFPROTO_IPV4, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, NF_ACCEPT, RuleAttr, SetAttr, SetDescAttr,
  SetElemAttr, SetElemListAttr, SetFlag, TableAttr, DataAttr, NlWriter, attrMap, nftType, readBe32, readBe64, readStr, type HookName,
} from './wire.js';
import { decodeVerdict } from './expr.js';
import { randomBytes } from 'node:crypto';

/**
 * Anonymous sets get a concrete, unique name ("__map17_3fa2c1") instead of nft's "__map%d".
 * With "%d" the kernel picks the lowest free number by sscanf()-ing the name of every set in
 * the table (nf_tables_set_alloc_name): quadratic in the number of Services, ~20 % of a
 * 10k × 10 full sync's CPU (perf). The flag NFT_SET_ANONYMOUS, not the name, makes a set
 * anonymous (bound to its rule, printed inline by nft); readback ignores anonymous names
 * (canonicalExprs). The per-process tag keeps names apart from sets left by an earlier
 * process; the counter from the others of this one.
 */
const anonTag = randomBytes(3).toString('hex');
let anonCount = 0;
const anonName = (map: boolean) => `__${map ? 'map' : 'set'}${anonCount++}_${anonTag}`;

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

/** A rule; a lookup of a set named "__set…"/"__map…" in it refers to `anon`. */
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
  /**
   * What each message does, for error messages (same index as `messages`): a constant verb and
   * the name it acts on, joined only when asked — a 100k-Service sync has 700k messages.
   */
  private readonly verbs: string[] = [];
  private readonly names: string[] = [];
  /** Indexes after which the batch may be split into separate transactions (ascending). */
  readonly cuts: number[] = [];
  private nextSetId = 1;
  private readonly w = new NlWriter();
  bytes = 0;

  constructor(readonly table: string, private readonly family = NFPROTO_IPV4) {}

  /** A batch from its serialised parts (a batch carried to a process in another netns). */
  static fromParts(table: string, messages: readonly Buffer[], descriptions: readonly string[], cuts: readonly number[]): Batch {
    const batch = new Batch(table);
    batch.messages.push(...messages);
    batch.verbs.push(...descriptions);
    batch.names.push(...descriptions.map(() => ''));
    batch.cuts.push(...cuts);
    batch.bytes = messages.reduce((sum, m) => sum + m.length, 0);
    return batch;
  }

  get size(): number {
    return this.messages.length;
  }

  description(index: number): string | undefined {
    const verb = this.verbs[index];
    const name = this.names[index];
    return verb === undefined ? undefined : name ? `${verb} ${name}` : verb;
  }

  get descriptions(): string[] {
    return this.messages.map((_, index) => this.description(index) ?? '');
  }

  /** Starts a message whose attributes the caller then writes; finish() closes it. */
  private start(msg: number, flags: number): NlWriter {
    this.w.beginMessage(nftType(msg), NLM_F_REQUEST | flags, this.family);
    return this.w;
  }

  private finish(verb: string, name: string): void {
    const out = this.w.endMessage();
    this.messages.push(out);
    this.verbs.push(verb);
    this.names.push(name);
    this.bytes += out.length;
  }

  cut(): void {
    const last = this.messages.length - 1;
    if (last >= 0 && this.cuts[this.cuts.length - 1] !== last) this.cuts.push(last);
  }

  addTable(comment?: string): void {
    const w = this.start(Msg.newTable, NLM_F_CREATE);
    w.str(TableAttr.name, this.table);
    w.u32(TableAttr.flags, 0);
    if (comment) w.bytes(TableAttr.userdata, commentTlv(0, comment));
    this.finish('add table', this.table);
  }

  deleteTable(): void {
    this.start(Msg.delTable, 0).str(TableAttr.name, this.table);
    this.finish('delete table', this.table);
  }

  addChain(name: string, base?: BaseChainSpec, comment?: string): void {
    const w = this.start(Msg.newChain, NLM_F_CREATE);
    w.str(ChainAttr.table, this.table);
    w.str(ChainAttr.name, name);
    if (base) {
      const hook = w.nest(ChainAttr.hook);
      w.u32(HookAttr.hooknum, Hook[base.hook]);
      w.u32(HookAttr.priority, base.priority);
      w.end(hook);
      w.u32(ChainAttr.policy, NF_ACCEPT);
      w.str(ChainAttr.type, base.type);
    }
    if (comment) w.bytes(ChainAttr.userdata, commentTlv(0, comment));
    this.finish('add chain', name);
  }

  /** DELRULE with only the chain: removes every rule of the chain. */
  flushChain(name: string): void {
    const w = this.start(Msg.delRule, 0);
    w.str(RuleAttr.table, this.table);
    w.str(RuleAttr.chain, name);
    this.finish('flush chain', name);
  }

  deleteChain(name: string): void {
    const w = this.start(Msg.delChain, 0);
    w.str(ChainAttr.table, this.table);
    w.str(ChainAttr.name, name);
    this.finish('delete chain', name);
  }

  addRule(chain: string, rule: Rule): void {
    let exprs = rule.exprs;
    if (rule.anon) {
      const id = this.nextSetId++;
      const name = anonName((rule.anon.spec.flags & SetFlag.map) !== 0);
      this.addSet({ ...rule.anon.spec, name }, id);
      this.addElements(name, rule.anon.elements, id);
      exprs = exprs.map((expr) => (expr.kind === 'lookup' && expr.set.startsWith('__') ? { ...expr, set: name, setId: id } : expr));
    }
    const w = this.start(Msg.newRule, NLM_F_CREATE | NLM_F_APPEND);
    w.str(RuleAttr.table, this.table);
    w.str(RuleAttr.chain, chain);
    const list = w.nest(RuleAttr.expressions);
    for (const expr of exprs) writeExpr(w, expr);
    w.end(list);
    if (rule.comment) w.bytes(RuleAttr.userdata, commentTlv(0, rule.comment));
    this.finish('add rule to chain', chain);
  }

  addSet(spec: SetSpec, id = this.nextSetId++): void {
    const w = this.start(Msg.newSet, NLM_F_CREATE);
    w.str(SetAttr.table, this.table);
    w.str(SetAttr.name, spec.name);
    w.u32(SetAttr.flags, spec.flags);
    w.u32(SetAttr.keyType, spec.keyType);
    w.u32(SetAttr.keyLen, spec.keyLen);
    if (spec.dataType !== undefined) {
      w.u32(SetAttr.dataType, spec.dataType);
      w.u32(SetAttr.dataLen, 0);
    }
    w.u32(SetAttr.id, id);
    if (spec.timeoutMs) w.u64(SetAttr.timeout, spec.timeoutMs);
    const udata: Buffer[] = [];
    if (spec.keyByteOrder) udata.push(tlv(0, u32le(spec.keyByteOrder)));
    if (spec.comment) udata.push(commentTlv(7, spec.comment));
    if (udata.length > 0) w.bytes(SetAttr.userdata, Buffer.concat(udata));
    this.finish('add set', spec.name);
  }

  deleteSet(name: string): void {
    const w = this.start(Msg.delSet, 0);
    w.str(SetAttr.table, this.table);
    w.str(SetAttr.name, name);
    this.finish('delete set', name);
  }

  /** DELSETELEM without elements: empties the set. */
  flushSet(name: string): void {
    const w = this.start(Msg.delSetElem, 0);
    w.str(SetElemListAttr.table, this.table);
    w.str(SetElemListAttr.set, name);
    this.finish('flush set', name);
  }

  /** `cuts`: the batch may be split between the messages of these elements. */
  addElements(set: string, elements: readonly Element[], setId?: number, cuts = false): void {
    this.elements(Msg.newSetElem, NLM_F_CREATE, set, elements, setId, cuts, false);
  }

  deleteElements(set: string, elements: readonly Element[], cuts = false): void {
    this.elements(Msg.delSetElem, 0, set, elements, undefined, cuts, true);
  }

  /** Elements go in messages of at most 512 (a message is limited to 64 KiB by the u16 attribute length). */
  private elements(msg: number, flags: number, set: string, elements: readonly Element[], setId: number | undefined, cuts: boolean, keysOnly: boolean): void {
    for (let start = 0; start < elements.length; start += 512) {
      const count = Math.min(512, elements.length - start);
      const w = this.start(msg, flags);
      w.str(SetElemListAttr.table, this.table);
      // A set made in this transaction is named by its id alone: the kernel looks the name up
      // first (nft_set_lookup_global: a walk of every set of the table, strcmp each — one per
      // Service with 10k numgen maps), and only then the id (the newest first).
      if (setId === undefined) w.str(SetElemListAttr.set, set);
      else w.u32(SetElemListAttr.setId, setId);
      const list = w.nest(SetElemListAttr.elements);
      for (let i = start; i < start + count; i++) writeElement(w, elements[i] as Element, keysOnly);
      w.end(list);
      this.finish(`${msg === Msg.newSetElem ? 'add' : 'delete'} ${count} element(s) of`, set);
      if (cuts) this.cut();
    }
  }
}

/** A deletion carries only the key and the interval-end flag. */
function writeElement(w: NlWriter, element: Element, keysOnly: boolean): void {
  const elem = w.nest(LIST_ELEM);
  const key = w.nest(SetElemAttr.key);
  w.bytes(DataAttr.value, element.key);
  w.end(key);
  if (element.verdict && !keysOnly) {
    const data = w.nest(SetElemAttr.data);
    writeVerdict(w, element.verdict);
    w.end(data);
  }
  if (element.intervalEnd) w.u32(SetElemAttr.flags, 1);
  if (element.comment && !keysOnly) w.bytes(SetElemAttr.userdata, commentTlv(0, element.comment));
  w.end(elem);
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

