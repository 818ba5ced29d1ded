/**
 * Reads table `ip kube-proxy` back from the kernel over netlink (GETCHAIN, GETSET, GETSETELEM,
 * GETRULE dumps) into the TableState the proxier compares with what it wants: the full resync's
 * drift repair, as kube-proxy's periodic full sync but against the kernel's actual contents.
 */
import { parseChain, parseElements, parseRule, parseSet, type SetSpec } from '../../lib/netfilter/nftables/batch.js';
import { canonicalExprs, decodeExprs } from '../../lib/netfilter/nftables/expr.js';
import { isNotFound, type NftTransport } from '../../lib/netfilter/nftables/socket.js';
import { ChainAttr, TableAttr, Msg, RuleAttr, SetAttr, SetElemListAttr, SetFlag, strAttr } from '../../lib/netfilter/nftables/wire.js';
import { elementValue, elementsKey, emptyState, type TableState } from './state.js';

const hooks = ['prerouting', 'input', 'forward', 'output', 'postrouting'] as const;

async function setElements(transport: NftTransport, table: string, set: string) {
  const replies = await transport.dump(Msg.getSetElem, [strAttr(SetElemListAttr.table, table), strAttr(SetElemListAttr.set, set)]);
  return replies.flatMap(parseElements);
}

/**
 * Above this many chains the rules of the per-service chains are not read back: the kernel's
 * rule dump restarts its walk from the table's first rule for every reply datagram (quadratic;
 * kubernetes #139513 saw 40 s for `nft list table`), which takes minutes at 10k Services × 10
 * endpoints. Their keys are then unknown, and the proxier trusts what it wrote itself.
 */
const deepReadbackMaxChains = 20_000;

/** The table as the kernel has it; a missing table is an empty, non-existing state. */
export async function readTable(transport: NftTransport, table: string, filledSets: ReadonlySet<string>, alwaysRead: ReadonlySet<string> = new Set()): Promise<TableState> {
  try {
    return await read(transport, table, filledSets, alwaysRead);
  } catch (error) {
    if (isNotFound(error)) return emptyState();
    throw new Error(`cannot read table ip ${table} back`, { cause: error });
  }
}

async function read(transport: NftTransport, table: string, filledSets: ReadonlySet<string>, alwaysRead: ReadonlySet<string>): Promise<TableState> {
  const state = emptyState();
  // GETTABLE of a missing table fails with ENOENT (a filtered chain dump would just be empty)
  await transport.dump(Msg.getTable, [strAttr(TableAttr.name, table)]);
  const chainReplies = await transport.dump(Msg.getChain, [strAttr(ChainAttr.table, table)]);
  state.exists = true;
  const bases = new Map<string, { hook: number; priority: number; type: string }>();
  for (const reply of chainReplies) {
    const chain = parseChain(reply);
    if (chain.hook !== undefined) bases.set(chain.name, { hook: chain.hook, priority: chain.priority ?? 0, type: chain.type ?? '' });
    state.chains.set(chain.name, { key: '' });
  }
  const deep = state.chains.size <= deepReadbackMaxChains;
  const anonymous = new Map<string, string>();
  for (const reply of await transport.dump(Msg.getSet, [strAttr(SetAttr.table, table)])) {
    const set = parseSet(reply);
    if (set.flags & SetFlag.anonymous) {
      if (!deep) continue;
      anonymous.set(set.name, elementsKey(await setElements(transport, table, set.name)));
      continue;
    }
    const spec: SetSpec = { name: set.name, keyType: set.keyType, keyLen: set.keyLen, flags: set.flags };
    if (set.dataType !== undefined) spec.dataType = set.dataType;
    if (set.timeoutMs) spec.timeoutMs = set.timeoutMs;
    state.sets.set(set.name, spec);
    if (filledSets.has(set.name)) {
      state.elements.set(set.name, new Map((await setElements(transport, table, set.name)).map((element) => [element.key.toString('hex'), elementValue(element)])));
    }
  }
  const keys = new Map<string, string[]>();
  const ruleReplies = deep
    ? await transport.dump(Msg.getRule, [strAttr(RuleAttr.table, table)])
    : (await Promise.all([...alwaysRead].filter((name) => state.chains.has(name)).map((name) => transport.dump(Msg.getRule, [strAttr(RuleAttr.table, table), strAttr(RuleAttr.chain, name)])))).flat();
  for (const reply of ruleReplies) {
    const rule = parseRule(reply);
    const exprs = decodeExprs(rule.exprs);
    const anon = exprs.find((expr) => expr.kind === 'lookup' && anonymous.has(expr.set));
    const key = canonicalExprs(exprs).toString('hex') + (anon?.kind === 'lookup' ? `|${anonymous.get(anon.set) ?? ''}` : '');
    const list = keys.get(rule.chain);
    if (list) list.push(key);
    else keys.set(rule.chain, [key]);
  }
  for (const [name, chain] of state.chains) {
    chain.key = deep || alwaysRead.has(name) ? (keys.get(name) ?? []).join('\n') : undefined;
    const base = bases.get(name);
    if (base) chain.base = { type: base.type === 'nat' ? 'nat' : 'filter', hook: hooks[base.hook] ?? 'prerouting', priority: base.priority };
  }
  return state;
}
