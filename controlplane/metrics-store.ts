/**
 * The pure half of the metrics.k8s.io API, as metrics-server builds it
 * (https://github.com/kubernetes-sigs/metrics-server, pkg/scraper/client/resource/decode.go and
 * pkg/storage): a kubelet's /metrics/resource text becomes one point per node and per container
 * (cumulative CPU, working set, timestamp, start time); the store keeps only the last two points
 * of each (memory is bounded by what the nodes run), and a CPU usage is the rate between them:
 * (cpu₂ − cpu₁) / (t₂ − t₁), reported with `timestamp` = t₂ and `window` = t₂ − t₁.
 */

export interface MetricsPoint {
  /** ms since the epoch. */
  timestamp: number;
  /** Cumulative CPU in core-nanoseconds. */
  cpu: number;
  /** Working set in bytes. */
  memory: number;
  /** ms since the epoch; 0 when unknown. */
  startTime: number;
}

export interface NodeBatch {
  node?: MetricsPoint;
  /** "namespace/name" → container name → point. */
  pods: Map<string, Map<string, MetricsPoint>>;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestamp?: number;
}

/** Bounds on one scrape: a line longer than this or more samples are an error, not a crash. */
const maxLineLength = 64 * 1024;
const maxSamples = 200_000;

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$/;
const labelPair = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/y;

function unescape(value: string): string {
  return value.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

/** The Prometheus text exposition format (version 0.0.4), samples only (comments skipped). */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.length > maxLineLength) throw new Error(`line ${index + 1}: longer than ${maxLineLength} characters`);
    const match = sampleLine.exec(line);
    if (!match) throw new Error(`line ${index + 1}: not a sample: ${line.slice(0, 100)}`);
    const labels: Record<string, string> = {};
    const body = match[2] ?? '';
    labelPair.lastIndex = 0;
    while (labelPair.lastIndex < body.length) {
      const pair = labelPair.exec(body);
      if (!pair) throw new Error(`line ${index + 1}: bad labels: ${body.slice(0, 100)}`);
      labels[pair[1]!] = unescape(pair[2]!);
    }
    const value = parseValue(match[3]!);
    if (Number.isNaN(value) && match[3] !== 'NaN') throw new Error(`line ${index + 1}: bad value "${match[3]!.slice(0, 40)}"`);
    samples.push({ name: match[1]!, labels, value, ...(match[4] !== undefined ? { timestamp: Number(match[4]) } : {}) });
    if (samples.length > maxSamples) throw new Error(`more than ${maxSamples} samples`);
  }
  return samples;
}

function point(map: Map<string, Partial<MetricsPoint>>, key: string): Partial<MetricsPoint> {
  let p = map.get(key);
  if (!p) map.set(key, (p = {}));
  return p;
}

const complete = (p: Partial<MetricsPoint>): p is MetricsPoint => p.cpu !== undefined && p.memory !== undefined && p.timestamp !== undefined;

/**
 * decode.go: node_* and container_* samples; a sample without a timestamp takes the scrape
 * time; a point needs both CPU and memory; the CPU sample's time is the point's time.
 */
export function decodeBatch(samples: Sample[], scrapeTime: number): NodeBatch {
  const node: Partial<MetricsPoint> = {};
  const containers = new Map<string, Partial<MetricsPoint>>();
  for (const s of samples) {
    const ts = s.timestamp ?? scrapeTime;
    if (!Number.isFinite(s.value) || s.value < 0) continue;
    if (s.name === 'node_cpu_usage_seconds_total') Object.assign(node, { cpu: Math.round(s.value * 1e9), timestamp: ts });
    else if (s.name === 'node_memory_working_set_bytes') node.memory = Math.round(s.value);
    else if (s.name.startsWith('container_')) {
      const { namespace, pod, container } = s.labels;
      if (!namespace || !pod || !container) continue;
      const p = point(containers, JSON.stringify([namespace, pod, container]));
      if (s.name === 'container_cpu_usage_seconds_total') Object.assign(p, { cpu: Math.round(s.value * 1e9), timestamp: ts });
      else if (s.name === 'container_memory_working_set_bytes') p.memory = Math.round(s.value);
      else if (s.name === 'container_start_time_seconds') p.startTime = Math.round(s.value * 1000);
    }
  }
  const pods = new Map<string, Map<string, MetricsPoint>>();
  for (const [key, p] of containers) {
    if (!complete(p)) continue;
    const [namespace, pod, container] = JSON.parse(key) as [string, string, string];
    const podKey = `${namespace}/${pod}`;
    let list = pods.get(podKey);
    if (!list) pods.set(podKey, (list = new Map()));
    list.set(container, { ...p, startTime: p.startTime ?? 0 });
  }
  return { ...(complete(node) ? { node: { ...node, startTime: 0 } } : {}), pods };
}

export interface Usage {
  timestamp: number;
  windowMs: number;
  /** nano-cores */
  cpu: number;
  /** bytes */
  memory: number;
}

/** metrics-server resourceUsage(): undefined when the cumulative CPU went down or time did not pass. */
export function rate(last: MetricsPoint, prev: MetricsPoint): Usage | undefined {
  const windowMs = last.timestamp - prev.timestamp;
  if (windowMs <= 0 || last.cpu < prev.cpu) return undefined;
  return { timestamp: last.timestamp, windowMs, cpu: Math.floor(((last.cpu - prev.cpu) * 1000) / windowMs), memory: last.memory };
}

/** A container that started this long before its first point gives a rate from its start (freshContainerMinMetricsResolution). */
const freshContainerMinMs = 10_000;

/**
 * Which earlier point a new one is compared with (storage/pod.go and node.go Store): a fresh
 * container's start (cumulative 0), else the stored last point when the container has not
 * restarted since and time moved, else the stored previous point when it is older.
 */
function previousOf(next: MetricsPoint, last: MetricsPoint | undefined, prev: MetricsPoint | undefined, resolutionMs: number): MetricsPoint | undefined {
  const age = next.timestamp - next.startTime;
  if (next.startTime > 0 && age > 0 && age < resolutionMs && age >= freshContainerMinMs) return { ...next, timestamp: next.startTime, cpu: 0 };
  if (!last || next.startTime >= last.timestamp) return undefined;
  if (next.timestamp > last.timestamp) return last;
  return prev && prev.timestamp < next.timestamp ? prev : undefined;
}

interface Pair {
  last: MetricsPoint;
  prev?: MetricsPoint;
}

/** The last two points of every node and container; each store() replaces what the batch covers. */
export class MetricsStore {
  private nodes = new Map<string, Pair>();
  private pods = new Map<string, Map<string, Pair>>();

  constructor(private readonly resolutionMs: number) {}

  /** One scrape cycle over all nodes: what is not in it is gone (metrics-server does the same). */
  store(batches: Map<string, NodeBatch>): void {
    const nodes = new Map<string, Pair>();
    const pods = new Map<string, Map<string, Pair>>();
    for (const [name, batch] of batches) {
      if (batch.node) {
        const old = this.nodes.get(name);
        const prev = previousOf(batch.node, old?.last, old?.prev, 0);
        nodes.set(name, { last: batch.node, ...(prev ? { prev } : {}) });
      }
      for (const [podKey, containers] of batch.pods) {
        if (pods.has(podKey)) continue; // the same pod reported by two nodes: the first wins
        const old = this.pods.get(podKey);
        const pairs = new Map<string, Pair>();
        for (const [container, p] of containers) {
          const before = old?.get(container);
          const prev = previousOf(p, before?.last, before?.prev, this.resolutionMs);
          pairs.set(container, { last: p, ...(prev ? { prev } : {}) });
        }
        pods.set(podKey, pairs);
      }
    }
    this.nodes = nodes;
    this.pods = pods;
  }

  node(name: string): Usage | undefined {
    const pair = this.nodes.get(name);
    return pair?.prev ? rate(pair.last, pair.prev) : undefined;
  }

  /** A pod's containers, only when every container has a rate; timestamp and window of the earliest. */
  pod(namespace: string, name: string): { timestamp: number; windowMs: number; containers: { name: string; usage: Usage }[] } | undefined {
    const pairs = this.pods.get(`${namespace}/${name}`);
    if (!pairs || pairs.size === 0) return undefined;
    const containers: { name: string; usage: Usage }[] = [];
    let earliest: Usage | undefined;
    for (const [container, pair] of pairs) {
      const usage = pair.prev ? rate(pair.last, pair.prev) : undefined;
      if (!usage) return undefined;
      containers.push({ name: container, usage });
      if (!earliest || usage.timestamp < earliest.timestamp) earliest = usage;
    }
    containers.sort((a, b) => a.name.localeCompare(b.name));
    return { timestamp: earliest!.timestamp, windowMs: earliest!.windowMs, containers };
  }
}
