/**
 * Metrics with CoreDNS's names (coredns.io/plugins/metrics, coredns.io/plugins/cache), so that
 * dashboards made for CoreDNS read them, and the health endpoints of CoreDNS's health and ready
 * plugins: /health answers 200 while the process serves, /ready 200 once the Services and
 * EndpointSlices have been listed. One registry per server (several servers in one test process).
 * The `type` label keeps to common query types (others count as "other"), as CoreDNS does, so
 * that random query types cannot grow the label set. The per-query series are plain-number tallies
 * on the hot path, handed to prom-client when /metrics is scraped (its `collect` hook).
 */
import { createServer, type Server } from 'node:http';
import { AggregatorRegistry, Counter, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { close, listen } from '../proxy/health.js';

const commonTypes = new Set(['A', 'AAAA', 'CNAME', 'MX', 'NS', 'PTR', 'SOA', 'SRV', 'TXT', 'ANY', 'HTTPS', 'SVCB', 'NAPTR', 'CAA', 'DS', 'DNSKEY']);
interface RequestLabels {
  server: string;
  zone: string;
  proto: string;
  family: string;
  type: string;
}

export const typeLabel = (type: string) => (commonTypes.has(type) ? type : 'other');

/** Counts kept in plain numbers on the hot path and handed to prom-client when scraped. */
class Tally {
  count = 0;
  constructor(readonly labels: Record<string, string>) {}
}

/**
 * coredns_dns_request_duration_seconds as a histogram that costs one loop over 16 bounds per
 * observation: prom-client's labelled children hash their label set on every observe(), which
 * was a visible share of a cached answer's cost. It renders as prom-client's Histogram does.
 */
class DurationHistogram {
  readonly name = 'coredns_dns_request_duration_seconds';
  readonly help = 'Histogram of the time (in seconds) each request took.';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, DurationSeries>();

  constructor(readonly bounds: readonly number[]) {}

  seriesOf(key: string, labels: Record<string, string>): DurationSeries {
    let series = this.series.get(key);
    if (!series) this.series.set(key, (series = new DurationSeries(this.bounds, labels)));
    return series;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName: string }[] } {
    const values = [];
    for (const series of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += series.buckets[i]!;
        values.push({ labels: { ...series.labels, le: this.bounds[i]! }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { ...series.labels, le: '+Inf' }, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels: series.labels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: series.labels, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

class DurationSeries {
  readonly buckets: number[];
  sum = 0;
  count = 0;
  constructor(
    private readonly bounds: readonly number[],
    readonly labels: Record<string, string>,
  ) {
    this.buckets = bounds.map(() => 0);
  }

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) {
      if (seconds <= this.bounds[i]!) {
        this.buckets[i]!++;
        return;
      }
    }
  }
}

/** The metrics of one kind of query with one outcome, bound once (the server keeps it with a cached answer). */
export interface BoundQueryMetrics {
  /** One request answered in `seconds`. */
  answered(seconds: number): void;
}

export class DnsMetrics {
  readonly registry = new Registry();
  private readonly requestTallies = new Map<string, Tally>();
  private readonly responseTallies = new Map<string, Tally>();
  readonly requests: Counter<'server' | 'zone' | 'proto' | 'family' | 'type'> = new Counter({
    name: 'coredns_dns_requests_total',
    help: 'Counter of DNS requests made per zone, protocol and family.',
    labelNames: ['server', 'zone', 'proto', 'family', 'type'] as const,
    registers: [this.registry],
    collect: (): void => flush(this.requests, this.requestTallies),
  });
  readonly responses: Counter<'server' | 'zone' | 'rcode' | 'plugin'> = new Counter({
    name: 'coredns_dns_responses_total',
    help: 'Counter of response status codes.',
    labelNames: ['server', 'zone', 'rcode', 'plugin'] as const,
    registers: [this.registry],
    collect: (): void => flush(this.responses, this.responseTallies),
  });
  readonly duration = new DurationHistogram([0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192]);
  private readonly cacheHitTallies = new Map<string, Tally>();
  readonly cacheHits: Counter<'server' | 'type'> = new Counter({
    name: 'coredns_cache_hits_total',
    help: 'The count of cache hits.',
    labelNames: ['server', 'type'] as const,
    registers: [this.registry],
    collect: (): void => flush(this.cacheHits, this.cacheHitTallies),
  });
  readonly cacheMisses = new Counter({ name: 'coredns_cache_misses_total', help: 'The count of cache misses.', labelNames: ['server'] as const, registers: [this.registry] });
  readonly forwardRequests = new Counter({ name: 'coredns_forward_requests_total', help: 'Counter of requests made per upstream.', labelNames: ['to'] as const, registers: [this.registry] });
  readonly forwardMaxConcurrentRejects = new Counter({ name: 'coredns_forward_max_concurrent_rejects_total', help: 'Count of queries rejected because the number of concurrent queries were at maximum.', registers: [this.registry] });
  readonly malformed = new Counter({ name: 'knode_dns_malformed_requests_total', help: 'Messages that could not be decoded (answered FORMERR when the header was readable, dropped otherwise).', registers: [this.registry] });

  constructor(defaults = false) {
    this.registry.registerMetric(this.duration as unknown as Parameters<Registry['registerMetric']>[0]);
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }

  /** coredns_dns_requests_total for one query. */
  request(labels: RequestLabels): void {
    tally(this.requestTallies, `${labels.server}|${labels.zone}|${labels.proto}|${labels.family}|${labels.type}`, () => ({ ...labels })).count++;
  }

  /** coredns_dns_responses_total and coredns_dns_request_duration_seconds for one reply. */
  response(labels: RequestLabels, rcode: string, seconds: number): void {
    tally(this.responseTallies, `${labels.server}|${labels.zone}|${rcode}`, () => ({ server: labels.server, zone: labels.zone, rcode, plugin: '' })).count++;
    this.duration.seriesOf(`${labels.server}|${labels.zone}|${labels.type}`, { server: labels.server, zone: labels.zone, type: labels.type }).observe(seconds);
  }

  /** coredns_cache_hits_total for one hit ("success" or "denial"). */
  cacheHit(server: string, type: 'success' | 'denial'): void {
    tally(this.cacheHitTallies, `${server}|${type}`, () => ({ server, type })).count++;
  }

  /**
   * The request, response, duration (and cache hit) series of one kind of query, looked up once:
   * answering it again costs a few additions.
   */
  bind(labels: RequestLabels, rcode: string, cacheHit?: 'success' | 'denial'): BoundQueryMetrics {
    const request = tally(this.requestTallies, `${labels.server}|${labels.zone}|${labels.proto}|${labels.family}|${labels.type}`, () => ({ ...labels }));
    const response = tally(this.responseTallies, `${labels.server}|${labels.zone}|${rcode}`, () => ({ server: labels.server, zone: labels.zone, rcode, plugin: '' }));
    const duration = this.duration.seriesOf(`${labels.server}|${labels.zone}|${labels.type}`, { server: labels.server, zone: labels.zone, type: labels.type });
    const hit = cacheHit ? tally(this.cacheHitTallies, `${labels.server}|${cacheHit}`, () => ({ server: labels.server, type: cacheHit })) : undefined;
    return {
      answered(seconds: number) {
        request.count++;
        response.count++;
        duration.observe(seconds);
        if (hit) hit.count++;
      },
    };
  }
}

function tally(tallies: Map<string, Tally>, key: string, labels: () => Record<string, string>): Tally {
  let found = tallies.get(key);
  if (!found) tallies.set(key, (found = new Tally(labels())));
  return found;
}

/** Hands the hot path's counts to prom-client (its `collect`, called when scraped). */
function flush(counter: Counter<string>, tallies: Map<string, Tally>): void {
  for (const entry of tallies.values()) {
    if (entry.count === 0) continue;
    counter.inc(entry.labels, entry.count);
    entry.count = 0;
  }
}

/**
 * The /metrics text: this process's registry, summed with other serving processes' metrics
 * (./serving.ts) when there are any, each series by its aggregator (counters and histograms add).
 */
async function metricsText(metrics: DnsMetrics, others: MetricObjectWithValues<MetricValue<string>>[][]): Promise<string> {
  if (others.length === 0) return metrics.registry.metrics();
  return AggregatorRegistry.aggregate([await metrics.registry.getMetricsAsJSON(), ...others]).metrics();
}

/**
 * /health, /ready and /metrics on one address (host:port); returns the bound port. `others`: the
 * metrics of the other serving processes, added to this one's.
 */
export async function startHealthServer(
  address: string,
  metrics: DnsMetrics,
  ready: () => boolean,
  others: () => Promise<MetricObjectWithValues<MetricValue<string>>[][]> = () => Promise.resolve([]),
): Promise<{ server: Server; port: number; stop(): Promise<void> }> {
  const index = address.lastIndexOf(':');
  const host = address.slice(0, index).replace(/^\[|\]$/g, '') || '127.0.0.1';
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/health') return void response.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
    if (path === '/ready') {
      const ok = ready();
      return void response.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'OK' : 'not synced with the API server yet');
    }
    if (path === '/metrics') {
      others().then((values) => metricsText(metrics, values)).then(
        (text) => response.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
        () => response.writeHead(500).end('metrics failed'),
      );
      return;
    }
    response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
  });
  const port = await listen(server, host, Number(address.slice(index + 1)));
  return { server, port, stop: () => close(server) };
}
