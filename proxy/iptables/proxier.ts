/**
 * The iptables proxier: turns the tracker's objects into rules (pure, ./rules.ts) and applies
 * them with one iptables-restore. Partial syncs (KEP-3453) rewrite only the chains of service
 * ports whose model changed; a full sync — the first one, every syncPeriod, and the one after
 * any failure — rewrites everything, re-reads the kernel's chains (so stale or hand-edited ones
 * are fixed) and re-ensures the jumps from the built-in chains.
 */
import type { Logger } from '../../lib/log.js';
import { IncrementalProxyModel, servicePortFingerprint, type ProxyModel, type ServicePort } from '../model.js';
import type { ChangeTracker } from '../tracker.js';
import { cleanStaleConntrack, type Conntrack } from '../conntrack.js';
import { recordSync, type ProxyMetrics } from '../metrics.js';
import { savedChains, type Iptables } from '../../lib/netfilter/iptables.js';
import { isServiceChain } from './chain-names.js';
import { buildRestorePayload, jumpRules, type JumpRule, type RuleOptions } from './rules.js';

export interface IptablesProxierOptions {
  iptables: Iptables;
  conntrack: Conntrack;
  tracker: ChangeTracker;
  nodeName: string;
  rules: RuleOptions;
  syncPeriodMs: number;
  metrics: ProxyMetrics;
  log: Logger;
  now?: () => number;
  /** Called after each successful sync with the model that is now programmed. */
  onSynced?: (model: ProxyModel) => void;
}

export interface SyncReport {
  full: boolean;
  writtenPorts: number;
  payloadLines: number;
  skipped: number;
}

const portKey = (port: ServicePort) => `${port.name}/${port.protocol}`;

/** Whether an iptables-save text has the jump (same chain, target and comment). */
export function hasJump(save: string, rule: JumpRule): boolean {
  const target = rule.args[rule.args.indexOf('-j') + 1];
  const commentText = rule.args[rule.args.indexOf('--comment') + 1] ?? '';
  return save.split('\n').some((line) => line.startsWith(`-A ${rule.chain} `) && line.endsWith(`-j ${target}`) && line.includes(commentText));
}

export class IptablesProxier {
  private programmed = new Map<string, ServicePort>();
  private fingerprints = new Map<string, string>();
  private chains = new Set<string>();
  private needFull = true;
  private lastFullAt = -Infinity;
  private readonly now: () => number;

  private readonly serviceModel: IncrementalProxyModel;

  constructor(private readonly options: IptablesProxierOptions) {
    this.now = options.now ?? Date.now;
    this.serviceModel = new IncrementalProxyModel(options.nodeName);
  }

  /** Forces the next sync to be a full one. */
  requestFullSync(): void {
    this.needFull = true;
  }

  async sync(): Promise<SyncReport> {
    const started = this.now();
    const full = this.needFull || started - this.lastFullAt >= this.options.syncPeriodMs;
    const { tracker, iptables, metrics, log } = this.options;
    const snapshot = tracker.take();
    if (full) this.serviceModel.rebuild(tracker);
    else this.serviceModel.update(tracker, snapshot.changedAt.keys());
    const model = this.serviceModel.model;
    const next = new Map(model.ports.map((port) => [portKey(port), port]));
    const fingerprints = new Map(model.ports.map((port) => [portKey(port), servicePortFingerprint(port)]));
    const changed = new Set(model.ports.filter((port) => this.fingerprints.get(portKey(port)) !== fingerprints.get(portKey(port))).map((port) => port.name));
    const removed = [...this.programmed.keys()].some((key) => !next.has(key));
    if (!full && changed.size === 0 && !removed) return { full, writtenPorts: 0, payloadLines: 0, skipped: model.skipped.length };
    const kind = full ? 'full' : 'partial';
    try {
      const saved = full ? { nat: await iptables.save('nat'), filter: await iptables.save('filter') } : undefined;
      const existing = saved ? new Set([...savedChains(saved.nat)].filter(isServiceChain)) : this.chains;
      // The jump rules are checked in the saved text and the missing ones go into the restore:
      // each `iptables -C` would load the whole table (seconds at 10k services).
      const insertJumps = saved ? jumpRules.filter((rule) => !hasJump(saved[rule.table], rule)) : [];
      const out = buildRestorePayload({ model, options: this.options.rules, changed: full ? 'all' : changed, existingChains: existing, insertJumps });
      await iptables.restore(out.payload);
      this.chains = out.chains;
      const before = this.programmed;
      this.programmed = next;
      this.fingerprints = fingerprints;
      this.needFull = false;
      if (full) this.lastFullAt = started;
      recordSync(metrics, { full, startedMs: started, nowMs: this.now(), skipped: model.skipped.length, changedAt: snapshot.changedAt.values() });
      for (const entry of model.skipped) log.debug({ object: entry.object, reason: entry.reason }, 'skipped invalid object');
      await this.cleanConntrack(before, next);
      this.options.onSynced?.(model);
      log.debug({ kind, ports: model.ports.length, written: out.writtenPorts, ms: this.now() - started }, 'synced iptables rules');
      return { full, writtenPorts: out.writtenPorts, payloadLines: out.payload.split('\n').length, skipped: model.skipped.length };
    } catch (error) {
      this.needFull = true;
      tracker.restore(snapshot.changedAt);
      metrics.syncs.inc({ kind, result: 'failure' });
      metrics.restoreFailures.inc();
      throw new Error(`${kind} iptables sync failed`, { cause: error });
    }
  }

  private cleanConntrack(before: Map<string, ServicePort>, after: Map<string, ServicePort>): Promise<void> {
    return cleanStaleConntrack(this.options.conntrack, before, after, (error, action) => {
      this.options.metrics.conntrackFailures.inc();
      this.options.log.warn({ err: error, action }, 'conntrack cleanup failed');
    });
  }

}

/**
 * `knode proxy --cleanup` for iptables: removes the jumps, then flushes and deletes every chain
 * the proxy creates (fixed ones and per-service ones found in the kernel), in one restore per table.
 */
export async function cleanupIptables(iptables: Iptables): Promise<void> {
  for (const rule of jumpRules) await iptables.deleteJump(rule);
  const payload: string[] = [];
  for (const table of ['filter', 'nat'] as const) {
    const ours = [...savedChains(await iptables.save(table))].filter((chain) => chain.startsWith('KUBE-') && (isServiceChain(chain) || fixedChains.has(chain)));
    if (ours.length === 0) continue;
    // no spread into push: 100k+ chains at 10k services exceed the call stack
    for (const line of [`*${table}`, ...ours.map((chain) => `:${chain} - [0:0]`), ...ours.map((chain) => `-X ${chain}`), 'COMMIT']) payload.push(line);
  }
  if (payload.length > 0) await iptables.restore(`${payload.join('\n')}\n`);
}

const fixedChains = new Set(['KUBE-SERVICES', 'KUBE-NODE-PORT', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ']);
