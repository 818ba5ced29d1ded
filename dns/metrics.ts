/**
 * Metrics with CoreDNS's names (coredns.io/plugins/metrics, coredns.io/plugins/cache), so that
 * dashboards made for CoreDNS read them, and the health endpoints of CoreDNS's health and ready
 * plugins: /health answers 200 while the process serves, /ready 200 once the Services and
 * EndpointSlices have been listed. One registry per server (several servers in one test process).
 * The `type` label keeps to common query types (others count as "other"), as CoreDNS does, so
 * that random query types cannot grow the label set.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
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

export class DnsMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'coredns_dns_requests_total', help: 'Counter of DNS requests made per zone, protocol and family.', labelNames: ['server', 'zone', 'proto', 'family', 'type'] as const, registers: [this.registry] });
  readonly responses = new Counter({ name: 'coredns_dns_responses_total', help: 'Counter of response status codes.', labelNames: ['server', 'zone', 'rcode', 'plugin'] as const, registers: [this.registry] });
  readonly duration = new Histogram({
    name: 'coredns_dns_request_duration_seconds',
    help: 'Histogram of the time (in seconds) each request took.',
    labelNames: ['server', 'zone', 'type'] as const,
    buckets: [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192],
    registers: [this.registry],
  });
  readonly cacheHits = new Counter({ name: 'coredns_cache_hits_total', help: 'The count of cache hits.', labelNames: ['server', 'type'] as const, registers: [this.registry] });
  readonly cacheMisses = new Counter({ name: 'coredns_cache_misses_total', help: 'The count of cache misses.', labelNames: ['server'] as const, registers: [this.registry] });
  readonly forwardRequests = new Counter({ name: 'coredns_forward_requests_total', help: 'Counter of requests made per upstream.', labelNames: ['to'] as const, registers: [this.registry] });
  readonly forwardMaxConcurrentRejects = new Counter({ name: 'coredns_forward_max_concurrent_rejects_total', help: 'Count of queries rejected because the number of concurrent queries were at maximum.', registers: [this.registry] });
  readonly malformed = new Counter({ name: 'knode_dns_malformed_requests_total', help: 'Messages that could not be decoded (answered FORMERR when the header was readable, dropped otherwise).', registers: [this.registry] });

  /** Label children by key: prom-client hashes a label object on every call otherwise. */
  private readonly children = new Map<string, { inc(): void; observe?(value: number): void }>();

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }

  private child<T extends { inc(): void; observe?(value: number): void }>(key: string, make: () => T): T {
    let child = this.children.get(key) as T | undefined;
    if (!child) this.children.set(key, (child = make()));
    return child;
  }

  /** coredns_dns_requests_total for one query. */
  request(labels: RequestLabels): void {
    this.child(`q|${labels.server}|${labels.zone}|${labels.proto}|${labels.family}|${labels.type}`, () => this.requests.labels(labels)).inc();
  }

  /** coredns_dns_responses_total and coredns_dns_request_duration_seconds for one reply. */
  response(labels: RequestLabels, rcode: string, seconds: number): void {
    this.child(`r|${labels.server}|${labels.zone}|${rcode}`, () => this.responses.labels({ server: labels.server, zone: labels.zone, rcode, plugin: '' })).inc();
    const histogram = this.child(`d|${labels.server}|${labels.zone}|${labels.type}`, () => {
      const h = this.duration.labels({ server: labels.server, zone: labels.zone, type: labels.type });
      return { inc: () => undefined, observe: (value: number) => h.observe(value) };
    });
    histogram.observe!(seconds);
  }
}

/** /health, /ready and /metrics on one address (host:port); returns the bound port. */
export async function startHealthServer(address: string, metrics: DnsMetrics, ready: () => boolean): Promise<{ server: Server; port: number; stop(): Promise<void> }> {
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
      metrics.registry.metrics().then(
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
