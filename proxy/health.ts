/**
 * kube-proxy's HTTP endpoints (pkg/proxy/healthcheck):
 *  - healthzBindAddress (default 0.0.0.0:10256): /healthz and /livez — 200 while syncs keep up:
 *    unhealthy before the first successful sync, or when a change has been queued for longer than
 *    2 × syncPeriod without a sync (proxier_health.go);
 *  - metricsBindAddress (default 127.0.0.1:10249): /metrics (prom-client);
 *  - one server per service healthCheckNodePort (externalTrafficPolicy: Local): 200 with the
 *    count of local endpoints, or 503 when there are none, so that load balancers skip the node
 *    (service_health.go).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../lib/log.js';
import { categorizeEndpoints, type ProxyModel } from './model.js';

export class ProxyHealth {
  private lastUpdated?: number;
  private queuedAt?: number;
  constructor(
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}
  queued(): void {
    this.queuedAt ??= this.now();
  }
  updated(): void {
    this.lastUpdated = this.now();
    this.queuedAt = undefined;
  }
  healthy(): boolean {
    if (this.lastUpdated === undefined) return false;
    return this.queuedAt === undefined || this.now() - this.queuedAt < this.timeoutMs;
  }
  status(): { lastUpdated: string; currentTime: string } {
    return { lastUpdated: this.lastUpdated ? new Date(this.lastUpdated).toISOString() : '', currentTime: new Date(this.now()).toISOString() };
  }
}

function splitHostPort(address: string): { host: string; port: number } {
  const index = address.lastIndexOf(':');
  return { host: address.slice(0, index).replace(/^\[|\]$/g, '') || '0.0.0.0', port: Number(address.slice(index + 1)) };
}

export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

export function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' });
  response.end(JSON.stringify(body));
}

/** The healthz server; with a registry it also answers /metrics. Returns the bound port. */
export async function startHealthServer(address: string, health: ProxyHealth, registry?: Registry): Promise<{ server: Server; port: number }> {
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/livez') return json(response, health.healthy() ? 200 : 503, health.status());
    if (path === '/metrics' && registry) {
      registry.metrics().then(
        (text) => {
          response.writeHead(200, { 'Content-Type': registry.contentType });
          response.end(text);
        },
        () => json(response, 500, { error: 'metrics failed' }),
      );
      return;
    }
    json(response, 404, { error: 'not found' });
  });
  const { host, port } = splitHostPort(address);
  return { server, port: await listen(server, host, port) };
}

interface HealthCheckService {
  namespace: string;
  name: string;
  localEndpoints: number;
}

/** Health check node ports, reconciled after each sync. */
export class ServiceHealthServers {
  private readonly servers = new Map<number, { server: Server; state: HealthCheckService }>();
  constructor(
    private readonly log: Logger,
    private readonly bindHost = '0.0.0.0',
  ) {}

  /** Opens, updates and closes servers to match the model. */
  async sync(model: ProxyModel): Promise<void> {
    const wanted = new Map<number, HealthCheckService>();
    for (const port of model.ports) {
      if (port.healthCheckNodePort === 0) continue;
      const current = wanted.get(port.healthCheckNodePort);
      const local = categorizeEndpoints(port).local.length;
      wanted.set(port.healthCheckNodePort, { namespace: port.namespace, name: port.serviceName, localEndpoints: Math.max(local, current?.localEndpoints ?? 0) });
    }
    for (const [port, entry] of this.servers) {
      if (!wanted.has(port)) {
        this.servers.delete(port);
        await close(entry.server);
      }
    }
    for (const [port, state] of wanted) {
      const existing = this.servers.get(port);
      if (existing) {
        existing.state = state;
        continue;
      }
      const entry = { state, server: createServer((_request, response) => this.answer(port, response)) };
      try {
        await listen(entry.server, this.bindHost, port);
        this.servers.set(port, entry);
      } catch (error) {
        this.log.warn({ err: error, port, service: `${state.namespace}/${state.name}` }, 'cannot open health check node port');
      }
    }
  }

  private answer(port: number, response: ServerResponse): void {
    const state = this.servers.get(port)?.state;
    if (!state) return json(response, 503, { error: 'no service' });
    json(response, state.localEndpoints > 0 ? 200 : 503, { service: { namespace: state.namespace, name: state.name }, localEndpoints: state.localEndpoints, serviceProxyHealthy: true });
  }

  ports(): number[] {
    return [...this.servers.keys()];
  }

  async stop(): Promise<void> {
    for (const entry of this.servers.values()) await close(entry.server);
    this.servers.clear();
  }
}
