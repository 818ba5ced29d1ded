/**
 * The kubelet's healthz server (pkg/kubelet/server/server.go ListenAndServeKubeletHealthzServer,
 * KubeletConfiguration healthzPort/healthzBindAddress, default 127.0.0.1:10248): GET /healthz
 * answers "ok" (200) while the agent is healthy, else 500 with the failed check, as the kubelet's
 * healthz handler. Port 0 disables it, as in the kubelet. A port that cannot be bound is logged
 * and retried every 5 s without stopping the agent, as the kubelet's
 * `wait.Until(ListenAndServe, 5s)` (pkg/kubelet/server ListenAndServeKubeletHealthzServer caller).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../lib/log.js';

interface HealthzOptions {
  bindAddress: string;
  port: number;
  /** undefined when healthy, else the reason (e.g. "syncloop failed"). */
  check?: () => string | undefined;
  log: Logger;
}

export class HealthzServer {
  private server?: Server;
  private retry?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly options: HealthzOptions) {}

  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  /** Resolves once listening, or once the first attempt failed (then retried in the background). */
  async start(): Promise<void> {
    if (this.options.port === 0) return;
    try {
      await this.listen();
    } catch (error) {
      this.options.log.error({ err: error }, 'failed to start the healthz server; retrying every 5 s');
      this.retry = setInterval(() => {
        this.listen().then(
          () => clearInterval(this.retry),
          (again: unknown) => this.options.log.debug({ err: again }, 'healthz server still cannot listen'),
        );
      }, 5000);
      this.retry.unref();
    }
  }

  private async listen(): Promise<void> {
    const { bindAddress, port, log } = this.options;
    if (this.stopped || this.server) return;
    const server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405).end();
        return;
      }
      if (path !== '/healthz') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
        return;
      }
      const failure = this.options.check?.();
      res.writeHead(failure ? 500 : 200, { 'content-type': 'text/plain; charset=utf-8' }).end(failure ? `[-]${failure}\nhealthz check failed\n` : 'ok');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => reject(new Error(`cannot serve healthz on ${bindAddress}:${port}`, { cause: error })));
      server.listen(port, bindAddress, () => resolve());
    });
    this.server = server;
    log.info({ address: `${bindAddress}:${this.port}` }, 'healthz server listening');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.retry);
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
