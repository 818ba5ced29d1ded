/**
 * The IPVS proxier: model → (1) service IPs bound to kube-ipvs0, (2) ipset sets, (3) the small
 * fixed iptables ruleset, (4) the IPVS table synced by diff, then UDP conntrack cleanup.
 * Every sync is complete and idempotent (the fixed rules do not grow with the services, and the
 * IPVS diff touches only what differs), so there is no partial/full distinction here.
 */
import type { Logger } from '../../lib/log.js';
import { IncrementalProxyModel, type ProxyModel, type ServicePort } from '../model.js';
import type { ChangeTracker } from '../tracker.js';
import { staleConntrack, type Conntrack } from '../conntrack.js';
import type { ProxyMetrics } from '../metrics.js';
import type { Iptables } from '../../lib/netfilter/iptables.js';
import { desiredIpvs } from './diff.js';
import type { IpvsHost } from './host.js';
import type { Ipvs } from './netlink-ipvs.js';
import { ipvsJumpRules, ipvsRestorePayload, ipvsSets } from './rules.js';
import { syncIpvs } from './syncer.js';

interface IpvsProxierOptions {
  ipvs: Ipvs;
  host: IpvsHost;
  iptables: Iptables;
  conntrack: Conntrack;
  tracker: ChangeTracker;
  nodeName: string;
  scheduler: string;
  clusterCIDRs: string[];
  masqueradeAll: boolean;
  masqueradeBit: number;
  metrics: ProxyMetrics;
  log: Logger;
  onSynced?: (model: ProxyModel) => void;
}

export class IpvsProxier {
  private programmed = new Map<string, ServicePort>();
  private owned = new Set<string>();
  private prepared = false;

  private readonly serviceModel: IncrementalProxyModel;
  private modelBuilt = false;

  constructor(private readonly options: IpvsProxierOptions) {
    this.serviceModel = new IncrementalProxyModel(options.nodeName);
  }

  async sync(): Promise<{ ops: number }> {
    const { tracker, host, iptables, metrics, log } = this.options;
    const started = Date.now();
    const snapshot = tracker.take();
    try {
      if (!this.prepared) {
        await host.prepareKernel();
        this.prepared = true;
      }
      if (this.modelBuilt) this.serviceModel.update(tracker, snapshot.changedAt.keys());
      else this.serviceModel.rebuild(tracker);
      this.modelBuilt = true;
      const model = this.serviceModel.model;
      const nodeIPs = await host.nodeAddresses();
      const desired = desiredIpvs(model, { scheduler: this.options.scheduler, nodeIPs });
      const serviceIPs = [...new Set(model.ports.flatMap((port) => [port.clusterIP, ...port.externalIPs, ...port.loadBalancerIPs]))].sort();
      await host.bindAddresses(serviceIPs);
      await host.syncSets(ipvsSets(model));
      await iptables.restore(ipvsRestorePayload(this.options));
      for (const rule of ipvsJumpRules) await iptables.ensureJump(rule);
      const owned = new Set([...this.owned, ...serviceIPs, ...nodeIPs]);
      const result = await syncIpvs(this.options.ipvs, desired, (address) => owned.has(address));
      this.owned = new Set([...serviceIPs, ...nodeIPs]);
      if (result.failures.length > 0) {
        throw new Error(`${result.failures.length} of ${result.ops.length} IPVS operations failed`, { cause: result.failures[0]!.error });
      }
      const next = new Map(model.ports.map((port) => [`${port.name}/${port.protocol}`, port]));
      for (const action of staleConntrack(this.programmed, next)) {
        await this.options.conntrack.apply(action).catch((error: unknown) => {
          metrics.conntrackFailures.inc();
          log.warn({ err: error, action }, 'conntrack cleanup failed');
        });
      }
      this.programmed = next;
      const seconds = (Date.now() - started) / 1000;
      metrics.syncDuration.observe(seconds);
      metrics.fullSyncDuration.observe(seconds);
      metrics.syncs.inc({ kind: 'full', result: 'success' });
      metrics.lastSync.set(Date.now() / 1000);
      for (const at of snapshot.changedAt.values()) metrics.networkProgramming.observe(Math.max(0, Date.now() - at) / 1000);
      this.options.onSynced?.(model);
      return { ops: result.ops.length };
    } catch (error) {
      tracker.restore(snapshot.changedAt);
      metrics.syncs.inc({ kind: 'full', result: 'failure' });
      throw new Error('IPVS sync failed', { cause: error });
    }
  }
}
