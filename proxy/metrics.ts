/**
 * kube-proxy's sync metrics (https://kubernetes.io/docs/reference/instrumentation/metrics/),
 * in a registry of their own so that several proxies in one process (tests) do not collide.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const buckets = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384, 32.768];

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly syncDuration = new Histogram({ name: 'kubeproxy_sync_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds', buckets, registers: [this.registry] });
  readonly fullSyncDuration = new Histogram({ name: 'kubeproxy_sync_full_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds for full resyncs', buckets, registers: [this.registry] });
  readonly partialSyncDuration = new Histogram({ name: 'kubeproxy_sync_partial_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds for partial resyncs', buckets, registers: [this.registry] });
  readonly syncs = new Counter({ name: 'kubeproxy_sync_proxy_rules_total', help: 'Syncs by kind (full or partial) and result', labelNames: ['kind', 'result'] as const, registers: [this.registry] });
  readonly lastSync = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', help: 'The last time proxy rules were successfully synced', registers: [this.registry] });
  readonly restoreFailures = new Counter({ name: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total', help: 'Failed iptables restores', registers: [this.registry] });
  readonly networkProgramming = new Histogram({
    name: 'kubeproxy_network_programming_duration_seconds',
    help: 'In Cluster Network Programming Latency in seconds',
    buckets: [0.25, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 30, 45, 60, 120, 300],
    registers: [this.registry],
  });
  readonly servicesSkipped = new Gauge({ name: 'knode_proxy_skipped_objects', help: 'Service ports or slices skipped as invalid at the last sync', registers: [this.registry] });
  readonly conntrackFailures = new Counter({ name: 'knode_proxy_conntrack_cleanup_failures_total', help: 'Failed conntrack deletions', registers: [this.registry] });
}

/**
 * Records a successful sync as kube-proxy does: sync duration (all, full or partial), the last
 * sync time, skipped objects, and the network programming latency of each change it carried.
 */
export function recordSync(metrics: ProxyMetrics, sync: { full: boolean; startedMs: number; nowMs: number; skipped: number; changedAt: Iterable<number> }): void {
  const seconds = (sync.nowMs - sync.startedMs) / 1000;
  metrics.syncDuration.observe(seconds);
  (sync.full ? metrics.fullSyncDuration : metrics.partialSyncDuration).observe(seconds);
  metrics.syncs.inc({ kind: sync.full ? 'full' : 'partial', result: 'success' });
  metrics.lastSync.set(sync.nowMs / 1000);
  metrics.servicesSkipped.set(sync.skipped);
  for (const at of sync.changedAt) metrics.networkProgramming.observe(Math.max(0, sync.nowMs - at) / 1000);
}
