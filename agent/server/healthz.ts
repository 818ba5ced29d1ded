/**
 * The kubelet's healthz server (pkg/kubelet/server/server.go ListenAndServeKubeletHealthzServer,
 * KubeletConfiguration healthzPort/healthzBindAddress, default 127.0.0.1:10248): GET /healthz
 * answers "ok" (200) while the agent is healthy, else 500 with the failed check, as the kubelet's
 * healthz handler. Port 0 disables it, as in the kubelet.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../lib/log.js';

export interface HealthzOptions {
  bindAddress: string;
  port: number;
  /** undefined when healthy, else the reason (e.g. "syncloop failed"). */
  check?: () => string | undefined;
  log: Logger;
}

export class HealthzServer {
  private server?: Server;

  constructor(private readonly options: HealthzOptions) {}

  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  async start(): Promise<void> {
    const { bindAddress, port, log } = this.options;
    if (port === 0) return;
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
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
