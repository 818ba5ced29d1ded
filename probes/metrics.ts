/**
 * Prober metrics, named and labelled like the kubelet's (pkg/kubelet/prober/prober_manager.go,
 * https://kubernetes.io/docs/reference/instrumentation/metrics/): `prober_probe_total` counts
 * probe results (result = successful | failed | unknown), `prober_probe_duration_seconds` the
 * time a probe took. Registered on the registry the caller passes; never the global one.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ProbeTarget, ProbeType } from './types.js';
import { probeTypeLabel } from './types.js';

type MetricResult = 'successful' | 'failed' | 'unknown';

type Labels = 'probe_type' | 'container' | 'pod' | 'namespace';

export class ProbeMetrics {
  private readonly total: Counter<Labels | 'result'>;
  private readonly duration: Histogram<Labels>;

  constructor(registry: Registry) {
    this.total = new Counter({
      name: 'prober_probe_total',
      help: 'Cumulative number of a liveness, readiness or startup probe for a container by result.',
      labelNames: ['probe_type', 'result', 'container', 'pod', 'namespace'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'prober_probe_duration_seconds',
      help: 'Duration in seconds for a probe response.',
      labelNames: ['probe_type', 'container', 'pod', 'namespace'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
  }

  private labels(target: ProbeTarget, type: ProbeType): Record<Labels, string> {
    return { probe_type: probeTypeLabel(type), container: target.containerName, pod: target.podName, namespace: target.namespace };
  }

  observe(target: ProbeTarget, type: ProbeType, result: MetricResult, seconds: number): void {
    const labels = this.labels(target, type);
    this.total.inc({ ...labels, result });
    this.duration.observe(labels, seconds);
  }

  /** Drops the series of a worker that stopped (the kubelet deletes them too). */
  forget(target: ProbeTarget, type: ProbeType): void {
    const labels = this.labels(target, type);
    for (const result of ['successful', 'failed', 'unknown'] as const) this.total.remove({ ...labels, result });
    this.duration.remove(labels);
  }
}
