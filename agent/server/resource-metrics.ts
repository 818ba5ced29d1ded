/**
 * /metrics/resource: the kubelet's resource metrics endpoint (pkg/kubelet/metrics/collectors/
 * resource_metrics.go), which metrics-server scrapes. The figures are those of /stats/summary
 * (stats.ts: cumulative CPU in core-seconds, working set = usage − inactive_file), in the
 * Prometheus text format with the kubelet's metric names, labels and help texts. Every sample
 * carries the time its stats were taken as its timestamp (NewLazyMetricWithTimestamp), except
 * resource_scrape_error; container_start_time_seconds is stamped with the start time itself.
 * When the stats cannot be read, only `resource_scrape_error 1` is served, as the kubelet does.
 */
import type { Summary } from './stats.js';

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: string[];
}

/** Prometheus text: label values escaped (backslash, double quote, newline). */
function labels(pairs: [string, string][]): string {
  if (pairs.length === 0) return '';
  return `{${pairs.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}

function sample(name: string, pairs: [string, string][], value: number, time: string | undefined): string {
  const ms = time ? Date.parse(time) : NaN;
  return `${name}${labels(pairs)} ${value}${Number.isFinite(ms) ? ` ${ms}` : ''}`;
}

function family(name: string, type: Family['type'], help: string): Family {
  return { name, type, help: `[STABLE] ${help}`, samples: [] };
}

function render(families: Family[]): string {
  return families
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((f) => [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.samples].join('\n'))
    .join('\n')
    .concat('\n');
}

export function renderScrapeError(): string {
  const error = family('resource_scrape_error', 'gauge', '1 if there was an error while getting container metrics, 0 otherwise');
  error.samples.push('resource_scrape_error 1');
  return render([error]);
}

/** The resource metrics of one summary, as the kubelet's collector emits them. */
export function renderResourceMetrics(summary: Summary): string {
  const nodeCpu = family('node_cpu_usage_seconds_total', 'counter', 'Cumulative cpu time consumed by the node in core-seconds');
  const nodeMemory = family('node_memory_working_set_bytes', 'gauge', 'Current working set of the node in bytes');
  const containerCpu = family('container_cpu_usage_seconds_total', 'counter', 'Cumulative cpu time consumed by the container in core-seconds');
  const containerMemory = family('container_memory_working_set_bytes', 'gauge', 'Current working set of the container in bytes');
  const containerStart = family('container_start_time_seconds', 'gauge', 'Start time of the container since unix epoch in seconds');
  const podCpu = family('pod_cpu_usage_seconds_total', 'counter', 'Cumulative cpu time consumed by the pod in core-seconds');
  const podMemory = family('pod_memory_working_set_bytes', 'gauge', 'Current working set of the pod in bytes');
  const error = family('resource_scrape_error', 'gauge', '1 if there was an error while getting container metrics, 0 otherwise');
  const { node } = summary;
  nodeCpu.samples.push(sample(nodeCpu.name, [], node.cpu.usageCoreNanoSeconds / 1e9, node.cpu.time));
  nodeMemory.samples.push(sample(nodeMemory.name, [], node.memory.workingSetBytes, node.memory.time));
  for (const pod of summary.pods) {
    const podLabels: [string, string][] = [['namespace', pod.podRef.namespace], ['pod', pod.podRef.name]];
    for (const c of pod.containers) {
      const own: [string, string][] = [['container', c.name], ...podLabels];
      containerCpu.samples.push(sample(containerCpu.name, own, c.cpu.usageCoreNanoSeconds / 1e9, c.cpu.time));
      containerMemory.samples.push(sample(containerMemory.name, own, c.memory.workingSetBytes, c.memory.time));
      const started = Date.parse(c.startTime);
      if (Number.isFinite(started) && started > 0) containerStart.samples.push(sample(containerStart.name, own, started / 1000, c.startTime));
    }
    if (pod.containers.length === 0) continue;
    podCpu.samples.push(sample(podCpu.name, podLabels, pod.cpu.usageCoreNanoSeconds / 1e9, pod.cpu.time));
    podMemory.samples.push(sample(podMemory.name, podLabels, pod.memory.workingSetBytes, pod.memory.time));
  }
  error.samples.push('resource_scrape_error 0');
  return render([nodeCpu, nodeMemory, containerCpu, containerMemory, containerStart, podCpu, podMemory, error]);
}
