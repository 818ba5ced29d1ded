/**
 * What table `ip kube-proxy` holds, and the plan that turns one state into another.
 *
 * A rule is identified by a key: its canonical expression bytes plus the elements of its
 * anonymous set (the numgen map's targets, the source ranges). The same key is computed for
 * the rules read back from the kernel (./kernel.ts), so a full resync compares like with like.
 * A chain whose keys differ is flushed and refilled; elements are added and removed one by
 * one, with a count of owners (two ports of a Service share their ClusterIP in @cluster-ips).
 *
 * A Plan emits its messages in an order where every prefix that ends at a cut is a consistent
 * ruleset: sets and chains first, then chain contents (one chain per unit), then map elements,
 * then stale chains and sets. Big plans (first sync at 10k Services) may be split there.
 */
import { Batch, type BaseChainSpec, type Element, type Rule, type SetSpec } from '../../lib/netfilter/nftables/batch.js';
import { canonicalExprs } from '../../lib/netfilter/nftables/expr.js';
import type { ChainSpec, Fragment } from './ruleset.js';

const ruleKeys = new WeakMap<Rule, string>();

export const elementValue = (element: Element) => (element.verdict ? `${element.verdict.code}:${element.verdict.chain ?? ''}` : '');
export const elementsKey = (elements: readonly Element[]) =>
  elements.map((element) => `${element.key.toString('hex')}${element.intervalEnd ? '/e' : ''}=${elementValue(element)}`).sort().join(',');

function ruleKey(rule: Rule): string {
  let key = ruleKeys.get(rule);
  if (key === undefined) {
    key = canonicalExprs(rule.exprs).toString('hex') + (rule.anon ? `|${elementsKey(rule.anon.elements)}` : '');
    ruleKeys.set(rule, key);
  }
  return key;
}

const chainKeys = new WeakMap<ChainSpec, string>();
function chainKey(spec: ChainSpec): string {
  let key = chainKeys.get(spec);
  if (key === undefined) {
    key = spec.rules.map(ruleKey).join('\n');
    chainKeys.set(spec, key);
  }
  return key;
}

interface ChainState {
  /** undefined: the rules were not read back (a big table, see ./kernel.ts). */
  key?: string;
  base?: BaseChainSpec;
}

/** A state of the table: from the kernel (readback) or what the last syncs programmed. */
export interface TableState {
  exists: boolean;
  chains: Map<string, ChainState>;
  sets: Map<string, SetSpec>;
  /** set → key hex → element value (elementValue), for the named sets the proxy fills. */
  elements: Map<string, Map<string, string>>;
}

export const emptyState = (): TableState => ({ exists: false, chains: new Map(), sets: new Map(), elements: new Map() });

export class Plan {
  addTable = false;
  readonly addSets: SetSpec[] = [];
  readonly addChains: { name: string; base?: BaseChainSpec }[] = [];
  readonly fillChains: { name: string; spec: ChainSpec; flush: boolean }[] = [];
  readonly delElements = new Map<string, Element[]>();
  readonly addElements = new Map<string, Element[]>();
  readonly staleChains: string[] = [];
  readonly delSets: string[] = [];

  private push(map: Map<string, Element[]>, set: string, element: Element): void {
    const list = map.get(set);
    if (list) list.push(element);
    else map.set(set, [element]);
  }
  addElement(set: string, element: Element): void {
    this.push(this.addElements, set, element);
  }
  delElement(set: string, element: Element): void {
    this.push(this.delElements, set, element);
  }

  get empty(): boolean {
    return !this.addTable && this.addSets.length + this.addChains.length + this.fillChains.length + this.delElements.size + this.addElements.size + this.staleChains.length + this.delSets.length === 0;
  }

  toBatch(table: string, comment: string): Batch {
    const batch = new Batch(table);
    if (this.addTable) batch.addTable(comment);
    // new sets and empty chains are referenced by nothing yet: any cut between them is consistent
    for (const spec of this.addSets) {
      batch.addSet(spec);
      batch.cut();
    }
    for (const chain of this.addChains) {
      batch.addChain(chain.name, chain.base);
      batch.cut();
    }
    for (const { name, spec, flush } of this.fillChains) {
      if (flush) batch.flushChain(name);
      for (const rule of spec.rules) batch.addRule(name, rule);
      batch.cut();
    }
    // elements: a cut here can only happen in a sync too big for one write (a first sync at
    // thousands of Services), where each element is new anyway
    for (const [set, elements] of this.delElements) batch.deleteElements(set, elements, true);
    for (const [set, elements] of this.addElements) batch.addElements(set, elements, undefined, true);
    batch.cut();
    for (const name of this.staleChains) {
      batch.flushChain(name);
      batch.cut();
    }
    for (const name of this.staleChains) {
      batch.deleteChain(name);
      batch.cut();
    }
    for (const name of this.delSets) batch.deleteSet(name);
    return batch;
  }
}

/**
 * The programmed (or wanted) table with owner counts for elements: fragments come and go
 * (partial sync), or the whole thing is compared with the kernel (full sync).
 */
export class Desired {
  readonly chains = new Map<string, ChainSpec>();
  readonly sets = new Map<string, SetSpec>();
  /** set → key hex → element and how many fragments want it. */
  readonly elements = new Map<string, Map<string, { element: Element; owners: number }>>();

  constructor(fixedSets: readonly SetSpec[], fixedChains: ReadonlyMap<string, ChainSpec>) {
    for (const spec of fixedSets) this.sets.set(spec.name, spec);
    for (const [name, spec] of fixedChains) this.chains.set(name, spec);
  }

  /** Replaces fragment `old` with `next` (either may be absent) and records the kernel changes in plan. */
  change(old: Fragment | undefined, next: Fragment | undefined, plan: Plan | undefined): void {
    for (const [name, spec] of next?.sets ?? []) {
      if (!this.sets.has(name)) plan?.addSets.push(spec);
      this.sets.set(name, spec);
    }
    for (const [name, spec] of next?.chains ?? []) {
      const before = this.chains.get(name);
      if (!before) plan?.addChains.push({ name });
      if (!before || chainKey(before) !== chainKey(spec)) plan?.fillChains.push({ name, spec, flush: before !== undefined });
      this.chains.set(name, spec);
    }
    for (const [set, elements] of next?.elements ?? []) {
      for (const [hex, element] of elements) this.own(set, hex, element, plan);
    }
    for (const [set, elements] of old?.elements ?? []) {
      for (const hex of elements.keys()) this.disown(set, hex, plan);
    }
    for (const name of old?.chains.keys() ?? []) {
      if (next?.chains.has(name)) continue;
      this.chains.delete(name);
      plan?.staleChains.push(name);
    }
    for (const name of old?.sets.keys() ?? []) {
      if (next?.sets.has(name)) continue;
      this.sets.delete(name);
      plan?.delSets.push(name);
    }
  }

  private own(set: string, hex: string, element: Element, plan: Plan | undefined): void {
    let elements = this.elements.get(set);
    if (!elements) this.elements.set(set, (elements = new Map()));
    const entry = elements.get(hex);
    if (!entry) {
      elements.set(hex, { element, owners: 1 });
      plan?.addElement(set, element);
      return;
    }
    entry.owners++;
    if (elementValue(entry.element) !== elementValue(element)) {
      plan?.delElement(set, entry.element);
      plan?.addElement(set, element);
      entry.element = element;
    }
  }

  private disown(set: string, hex: string, plan: Plan | undefined): void {
    const entry = this.elements.get(set)?.get(hex);
    if (!entry) return;
    entry.owners--;
    if (entry.owners > 0) return;
    this.elements.get(set)?.delete(hex);
    plan?.delElement(set, entry.element);
  }

  /**
   * The plan that makes the kernel's table (read back) equal to this one. A chain whose rules
   * were not read back is refilled unless `previous` (what this process programmed) had it the same.
   */
  repair(kernel: TableState, previous?: Desired): Plan {
    const plan = new Plan();
    plan.addTable = !kernel.exists;
    for (const [name, spec] of this.sets) if (!kernel.sets.has(name)) plan.addSets.push(spec);
    for (const [name, spec] of this.chains) {
      const found = kernel.chains.get(name);
      if (!found) plan.addChains.push({ name, base: spec.base });
      const before = previous?.chains.get(name);
      // the same spec object as last time (the proxier keeps each Service's fragment) needs no
      // key: computing 300k chains' keys was 5 s of a 100k-Service resync (profile)
      const same = found && (found.key === undefined ? before === spec || (before !== undefined && chainKey(before) === chainKey(spec)) : found.key === chainKey(spec));
      if (!same) plan.fillChains.push({ name, spec, flush: found !== undefined });
    }
    for (const [set, elements] of this.elements) {
      const have = kernel.elements.get(set) ?? new Map<string, string>();
      for (const [hex, { element }] of elements) {
        const value = have.get(hex);
        if (value === elementValue(element)) continue;
        if (value !== undefined) plan.delElement(set, { key: element.key });
        plan.addElement(set, element);
      }
      for (const hex of have.keys()) if (!elements.has(hex)) plan.delElement(set, { key: Buffer.from(hex, 'hex') });
    }
    for (const name of kernel.chains.keys()) if (!this.chains.has(name)) plan.staleChains.push(name);
    for (const name of kernel.sets.keys()) if (!this.sets.has(name)) plan.delSets.push(name);
    return plan;
  }
}
