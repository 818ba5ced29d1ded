/**
 * metrics.k8s.io/v1beta1 (the Resource Metrics API, https://github.com/kubernetes/metrics),
 * served by the control plane itself, fed as metrics-server feeds it: every metric resolution
 * (--metric-resolution, 15 s by default) each node's kubelet /metrics/resource is scraped
 * through the kubelet client (kubelet-client.ts), decoded and stored (metrics-store.ts).
 * NodeMetrics and PodMetrics are read-only: get and list (pods namespaced or across all
 * namespaces), with label selectors matched against the Node/Pod objects, as metrics-server's
 * API does (pkg/api/node.go, pod.go). Only nodes and pods with two points have metrics.
 */
import type { IncomingMessage } from 'node:http';
import { formatDuration } from '../lib/duration.js';
import { formatBytes, formatNanoQuantity } from '../lib/quantity.js';
import type { Logger } from '../lib/log.js';
import { callKubelet, kubeletError, type KubeletClientConfig } from './kubelet-client.js';
import { decodeBatch, MetricsStore, parsePrometheusText, type NodeBatch, type Usage } from './metrics-store.js';
import { kubeletAddress } from './pod-log.js';
import type { Registry } from './registry.js';
import { resourceNamed } from './resources.js';
import { ApiError, methodNotAllowed, notFound } from './status.js';
import type { KObject } from './storage/types.js';

export const metricsGroup = 'metrics.k8s.io';
export const metricsVersion = 'v1beta1';
const groupVersion = `${metricsGroup}/${metricsVersion}`;
/** A kubelet answer larger than this is a failed scrape (a node with thousands of containers stays far below). */
const maxScrapeBytes = 32 * 1024 * 1024;

export function metricsApiGroup(): object {
  const version = { groupVersion, version: metricsVersion };
  return { kind: 'APIGroup', apiVersion: 'v1', name: metricsGroup, versions: [version], preferredVersion: version };
}

/** The APIGroupList of /apis with metrics.k8s.io added (kubectl top looks for it there). */
export function withMetricsGroup(list: object): object {
  const groups = (list as { groups?: object[] }).groups ?? [];
  const version = { groupVersion, version: metricsVersion };
  return { ...list, groups: [...groups, { name: metricsGroup, versions: [version], preferredVersion: version }] };
}

export function metricsApiResourceList(): object {
  const verbs = ['get', 'list'];
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: [
      { name: 'nodes', singularName: '', namespaced: false, kind: 'NodeMetrics', verbs },
      { name: 'pods', singularName: '', namespaced: true, kind: 'PodMetrics', verbs },
    ],
  };
}

async function readAll(response: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      response.destroy();
      throw new Error(`answer larger than ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

interface MetricsScraperOptions {
  registry: Registry;
  client: KubeletClientConfig;
  log: Logger;
  /** --metric-resolution in ms (default 15 s). */
  resolutionMs: number;
}

/** Scrapes every node each resolution; one cycle at a time; a node that fails drops out, as in metrics-server. */
export class MetricsScraper {
  readonly store: MetricsStore;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private readonly failing = new Set<string>();

  constructor(private readonly options: MetricsScraperOptions) {
    this.store = new MetricsStore(options.resolutionMs);
  }

  start(): void {
    this.stopped = false;
    const tick = () => {
      this.running = this.cycle()
        .catch((error: unknown) => {
          if (!this.stopped) this.options.log.warn({ err: error }, 'metrics scrape cycle failed');
        })
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.resolutionMs);
        });
    };
    tick();
  }

  /** Waits for a cycle under way for at most a second: its answers are dropped anyway. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
    clearTimeout(timer);
  }

  /** One scrape of all nodes (exposed for tests). */
  async cycle(): Promise<void> {
    const { items } = await this.options.registry.list(resourceNamed('nodes'), undefined);
    const results = await Promise.all(items.map(async (node) => [String(node.metadata.name), await this.scrape(node)] as const));
    const batches = new Map<string, NodeBatch>();
    for (const [name, batch] of results) if (batch) batches.set(name, batch);
    if (!this.stopped) this.store.store(batches);
  }

  private async scrape(node: KObject): Promise<NodeBatch | undefined> {
    const nodeName = String(node.metadata.name);
    try {
      const target = { ...kubeletAddress(node), nodeName };
      // metrics-server times a scrape out at 0.9 × the resolution (--metric-resolution).
      const answer = await callKubelet(this.options.client, target, { method: 'GET', path: '/metrics/resource', timeoutMs: Math.max(1000, this.options.resolutionMs * 0.9) });
      if (answer.kind !== 'response') {
        answer.socket.destroy();
        throw new Error('the kubelet switched protocols');
      }
      if ((answer.response.statusCode ?? 500) >= 400) throw await kubeletError(answer.response, target);
      const scrapeTime = Date.now();
      const batch = decodeBatch(parsePrometheusText(await readAll(answer.response, maxScrapeBytes)), scrapeTime);
      if (this.failing.delete(nodeName)) this.options.log.info({ node: nodeName }, 'metrics scrape works again');
      return batch;
    } catch (error) {
      // Logged once per failing streak, not every cycle.
      if (!this.failing.has(nodeName) && !this.stopped) this.options.log.warn({ err: error, node: nodeName }, 'cannot scrape the resource metrics of a node');
      this.failing.add(nodeName);
      return undefined;
    }
  }
}

const usageOf = (u: Usage) => ({ cpu: formatNanoQuantity(u.cpu), memory: formatBytes(u.memory) });

function metadataOf(object: KObject): Record<string, unknown> {
  const { name, namespace, labels } = object.metadata;
  return { name, ...(namespace ? { namespace } : {}), creationTimestamp: new Date().toISOString(), ...(labels ? { labels } : {}) };
}

function nodeMetrics(store: MetricsStore, node: KObject): object | undefined {
  const usage = store.node(String(node.metadata.name));
  if (!usage) return undefined;
  return { metadata: metadataOf(node), timestamp: new Date(usage.timestamp).toISOString(), window: formatDuration(usage.windowMs), usage: usageOf(usage) };
}

function podMetrics(store: MetricsStore, pod: KObject): object | undefined {
  const metrics = store.pod(String(pod.metadata.namespace), String(pod.metadata.name));
  if (!metrics) return undefined;
  return {
    metadata: metadataOf(pod),
    timestamp: new Date(metrics.timestamp).toISOString(),
    window: formatDuration(metrics.windowMs),
    containers: metrics.containers.map((c) => ({ name: c.name, usage: usageOf(c.usage) })),
  };
}

/**
 * GET /apis/metrics.k8s.io/v1beta1/{nodes[/NAME] | pods | namespaces/NS/pods[/NAME]}: the
 * answer, or undefined when the path is not one of these (discovery is served elsewhere).
 */
export async function serveMetricsApi(method: string, parts: string[], query: URLSearchParams, registry: Registry, store: MetricsStore): Promise<object | undefined> {
  const rest = parts.slice(3);
  let kind: 'nodes' | 'pods';
  let namespace: string | undefined;
  let name: string | undefined;
  if (rest[0] === 'nodes' && rest.length <= 2) [kind, name] = ['nodes', rest[1]];
  else if (rest[0] === 'pods' && rest.length === 1) kind = 'pods';
  else if (rest[0] === 'namespaces' && rest[2] === 'pods' && rest.length >= 3 && rest.length <= 4) [kind, namespace, name] = ['pods', rest[1], rest[3]];
  else return undefined;
  if (method !== 'GET') throw methodNotAllowed();
  if (query.get('watch') === 'true' || query.get('watch') === '1') throw methodNotAllowed('watch is not supported on metrics.k8s.io resources');
  const info = resourceNamed(kind);
  const ref = { name: kind, group: metricsGroup };
  const build = kind === 'nodes' ? nodeMetrics : podMetrics;
  if (name !== undefined) {
    const object = await registry.get(info, namespace, name).catch((error: unknown) => {
      throw error instanceof ApiError && error.code === 404 ? notFound(ref, name) : error;
    });
    const metrics = build(store, object);
    if (!metrics) throw notFound(ref, name);
    return { kind: kind === 'nodes' ? 'NodeMetrics' : 'PodMetrics', apiVersion: groupVersion, ...metrics };
  }
  const labelSelector = query.get('labelSelector') ?? undefined;
  const fieldSelector = query.get('fieldSelector') ?? undefined;
  const { items } = await registry.list(info, namespace, { ...(labelSelector ? { labelSelector } : {}), ...(fieldSelector ? { fieldSelector } : {}) });
  return {
    kind: kind === 'nodes' ? 'NodeMetricsList' : 'PodMetricsList',
    apiVersion: groupVersion,
    metadata: {},
    items: items.map((object) => build(store, object)).filter((m): m is object => m !== undefined),
  };
}
