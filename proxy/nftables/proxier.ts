/**
 * The nftables proxier (KEP-3866 ruleset, ./ruleset.ts) programmed over nf_tables netlink.
 *
 * - Partial sync: only the service ports whose model changed are rebuilt; their old and new
 *   fragments are compared and only the changed chains, elements and affinity sets are sent —
 *   one transaction, usually a few messages.
 * - Full sync (the first, every syncPeriod, and after any failure): the kernel's table is read
 *   back (./kernel.ts) and compared with the whole wanted ruleset; whatever drifted (a flushed
 *   chain, a deleted element, a table removed by hand) is repaired, and what is not ours in the
 *   table is removed.
 * - After each successful sync: UDP conntrack cleanup as the other modes (../conntrack.ts).
 */
import type { Logger } from '../../lib/log.js';
import { IncrementalProxyModel, portKey, type PortChange, type ProxyModel, type ServicePort } from '../model.js';
import type { ChangeTracker } from '../tracker.js';
import { cleanStaleConntrack, type Conntrack } from '../conntrack.js';
import { recordSync, type ProxyMetrics } from '../metrics.js';
import { Batch } from '../../lib/netfilter/nftables/batch.js';
import { isNotFound, type NftTransport } from '../../lib/netfilter/nftables/socket.js';
import { fixedChains, fixedSets, maps, nodePortFragment, serviceFragment, tableName, type Fragment, type NftRulesetOptions } from './ruleset.js';
import { Desired, Plan } from './state.js';
import { readTable } from './kernel.js';

interface NftablesProxierOptions {
  nft: NftTransport;
  conntrack: Conntrack;
  tracker: ChangeTracker;
  nodeName: string;
  rules: NftRulesetOptions;
  syncPeriodMs: number;
  metrics: ProxyMetrics;
  log: Logger;
  now?: () => number;
  /** The node addresses that accept NodePort traffic (with rules.nodePortIPsOnly), read at each sync. */
  nodePortIPs?: () => string[];
  onSynced?: (model: ProxyModel) => void;
}

interface NftSyncReport {
  full: boolean;
  /** Service ports whose fragment changed. */
  changedPorts: number;
  messages: number;
  bytes: number;
  transactions: number;
}

const tableComment = 'rules for kube-proxy';
const filledSets = new Set<string>(Object.values(maps));
const fixedChainNames = new Set(fixedChains({ clusterCIDRs: [], masqueradeAll: false, masqueradeBit: 0 }).keys());

export class NftablesProxier {
  private programmed = new Map<string, ServicePort>();
  private fragments = new Map<string, Fragment>();
  private desired?: Desired;
  private readonly cache = new WeakMap<ServicePort, Fragment>();
  private nodePorts?: { key: string; fragment: Fragment };
  private needFull = true;
  private lastFullAt = -Infinity;
  private readonly now: () => number;

  private readonly model: IncrementalProxyModel;

  constructor(private readonly options: NftablesProxierOptions) {
    this.now = options.now ?? Date.now;
    this.model = new IncrementalProxyModel(options.nodeName);
  }

  requestFullSync(): void {
    this.needFull = true;
  }

  private fragment(port: ServicePort): Fragment {
    let fragment = this.cache.get(port);
    if (!fragment) {
      fragment = serviceFragment(port, this.options.rules);
      this.cache.set(port, fragment);
    }
    return fragment;
  }

  async sync(): Promise<NftSyncReport> {
    const started = this.now();
    const full = this.needFull || started - this.lastFullAt >= this.options.syncPeriodMs;
    const { tracker, metrics, log } = this.options;
    const snapshot = tracker.take();
    const kind = full ? 'full' : 'partial';
    try {
      // a partial sync recomputes only the Services that changed (the tracker's keys)
      const changes = full || !this.desired ? (this.model.rebuild(tracker), new Map<string, PortChange>()) : this.model.update(tracker, snapshot.changedAt.keys());
      let plan: Plan;
      let desired: Desired;
      /** What the programmed state becomes once the batch is in: every port (full) or the changed ones. */
      let next: Map<string, { port?: ServicePort; fragment?: Fragment }>;
      const nodePorts = this.nodePortElements();
      if (full || !this.desired) {
        next = new Map(this.model.ports.map((port) => [portKey(port), { port, fragment: this.fragment(port) }]));
        desired = new Desired(fixedSets, fixedChains(this.options.rules));
        for (const { fragment } of next.values()) desired.change(undefined, fragment, undefined);
        desired.change(undefined, nodePorts.fragment, undefined);
        plan = desired.repair(await readTable(this.options.nft, tableName, filledSets, fixedChainNames), this.desired);
      } else {
        desired = this.desired;
        plan = new Plan();
        next = new Map();
        for (const [key, { after }] of changes) {
          const fragment = after && this.fragment(after);
          next.set(key, { port: after, fragment });
          const before = this.fragments.get(key);
          if (before !== fragment) desired.change(before, fragment, plan);
        }
        if (nodePorts !== this.nodePorts) desired.change(this.nodePorts?.fragment, nodePorts.fragment, plan);
      }
      const batch = plan.empty ? new Batch(tableName) : plan.toBatch(tableName, tableComment);
      const { transactions } = await this.options.nft.commit(batch);
      // the ports this sync changed, before and after (conntrack cleanup compares them)
      const before = new Map<string, ServicePort>();
      const after = new Map<string, ServicePort>();
      if (full) for (const [key, old] of this.programmed) if (!next.has(key)) before.set(key, old);
      for (const [key, { port }] of next) {
        const old = this.programmed.get(key);
        if (old === port) continue;
        if (old) before.set(key, old);
        if (port) after.set(key, port);
      }
      if (full) {
        this.programmed = new Map();
        this.fragments = new Map();
      }
      for (const [key, { port, fragment }] of next) {
        if (port && fragment) {
          this.programmed.set(key, port);
          this.fragments.set(key, fragment);
        } else {
          this.programmed.delete(key);
          this.fragments.delete(key);
        }
      }
      this.nodePorts = nodePorts;
      this.desired = desired;
      this.needFull = false;
      if (full) this.lastFullAt = started;
      recordSync(metrics, { full, startedMs: started, nowMs: this.now(), skipped: this.model.skippedCount, changedAt: snapshot.changedAt.values() });
      await this.cleanConntrack(before, after);
      if (this.options.onSynced) this.options.onSynced(this.model.model);
      const changedPorts = new Set([...before.keys(), ...after.keys()]).size;
      log.debug({ kind, ports: this.model.ports.length, changed: changedPorts, messages: batch.size, bytes: batch.bytes, ms: this.now() - started }, 'synced nftables');
      return { full, changedPorts, messages: batch.size, bytes: batch.bytes, transactions };
    } catch (error) {
      this.needFull = true;
      tracker.restore(snapshot.changedAt);
      metrics.syncs.inc({ kind, result: 'failure' });
      metrics.restoreFailures.inc();
      throw new Error(`${kind} nftables sync failed`, { cause: error });
    }
  }

  /** @nodeport-ips as wanted now (the node's addresses may change between syncs). */
  private nodePortElements(): { key: string; fragment: Fragment } {
    const ips = this.options.rules.nodePortIPsOnly ? (this.options.nodePortIPs?.() ?? []) : [];
    const key = [...ips].sort().join(',');
    if (this.nodePorts?.key === key) return this.nodePorts;
    return { key, fragment: nodePortFragment(ips) };
  }

  private cleanConntrack(before: Map<string, ServicePort>, after: Map<string, ServicePort>): Promise<void> {
    return cleanStaleConntrack(this.options.conntrack, before, after, (error, action) => {
      this.options.metrics.conntrackFailures.inc();
      this.options.log.warn({ err: error, action }, 'conntrack cleanup failed');
    });
  }

}

/** `knode proxy --cleanup` (and leaving nftables mode): deletes table ip kube-proxy; absent is success. */
export async function cleanupNftables(nft: NftTransport): Promise<boolean> {
  const batch = new Batch(tableName);
  batch.deleteTable();
  try {
    await nft.commit(batch);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw new Error(`cannot delete table ip ${tableName}`, { cause: error });
  }
}
