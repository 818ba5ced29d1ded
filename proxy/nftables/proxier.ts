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
import { buildProxyModel, type ProxyModel, type ServicePort } from '../model.js';
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
const portKey = (port: ServicePort) => `${port.name}/${port.protocol}`;
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

  constructor(private readonly options: NftablesProxierOptions) {
    this.now = options.now ?? Date.now;
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
      const model = buildProxyModel(snapshot.services, snapshot.slices, this.options.nodeName);
      const next = new Map(model.ports.map((port) => [portKey(port), port]));
      const changed = [...next].filter(([key, port]) => this.programmed.get(key) !== port).map(([key]) => key);
      const removed = [...this.programmed.keys()].filter((key) => !next.has(key));
      let plan: Plan;
      let desired: Desired;
      const fragments = new Map<string, Fragment>();
      for (const [key, port] of next) fragments.set(key, this.fragment(port));
      const nodePorts = this.nodePortElements();
      if (full || !this.desired) {
        desired = new Desired(fixedSets, fixedChains(this.options.rules));
        for (const fragment of fragments.values()) desired.change(undefined, fragment, undefined);
        desired.change(undefined, nodePorts.fragment, undefined);
        plan = desired.repair(await readTable(this.options.nft, tableName, filledSets, fixedChainNames), this.desired);
      } else {
        desired = this.desired;
        plan = new Plan();
        for (const key of [...changed, ...removed]) {
          const before = this.fragments.get(key);
          const after = fragments.get(key);
          if (before !== after) desired.change(before, after, plan);
        }
        if (nodePorts !== this.nodePorts) desired.change(this.nodePorts?.fragment, nodePorts.fragment, plan);
      }
      const batch = plan.empty ? new Batch(tableName) : plan.toBatch(tableName, tableComment);
      const { transactions } = await this.options.nft.commit(batch);
      const before = this.programmed;
      this.programmed = next;
      this.fragments = fragments;
      this.nodePorts = nodePorts;
      this.desired = desired;
      this.needFull = false;
      if (full) this.lastFullAt = started;
      recordSync(metrics, { full, startedMs: started, nowMs: this.now(), skipped: model.skipped.length, changedAt: snapshot.changedAt.values() });
      await this.cleanConntrack(before, next);
      this.options.onSynced?.(model);
      log.debug({ kind, ports: model.ports.length, changed: changed.length + removed.length, messages: batch.size, bytes: batch.bytes, ms: this.now() - started }, 'synced nftables');
      return { full, changedPorts: changed.length + removed.length, messages: batch.size, bytes: batch.bytes, transactions };
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
