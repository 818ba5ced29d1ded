/**
 * The kubelet HTTP API (pkg/kubelet/server/server.go): /healthz, /pods, /stats/summary,
 * /metrics, /metrics/resource, /containerLogs/<ns>/<pod>/<container>, /run/<ns>/<pod>/<container> and the WebSocket
 * streams /exec and /attach (server/exec-stream.ts), every request (and every upgrade request)
 * authenticated and authorized (server/auth.ts). HTTPS when tlsCertFile/tlsPrivateKeyFile are set
 * (client certificates checked against authentication.x509.clientCAFile), plain HTTP otherwise.
 * The read-only port serves /healthz, /pods and /stats without authentication, only when set.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { isCriError, kubeLabels, type ContainerRuntime, type ContainerStatus } from '../../cri/runtime.js';
import type { KubeletConfiguration } from '../../lib/config/kubelet.js';
import type { Logger } from '../../lib/log.js';
import { describeError } from '../../lib/errors.js';
import { RequestAuth, apiReviewers } from './auth.js';
import type { ServingTlsSource } from '../certificates/node-certificates.js';
import { ExecStreams, parseStreamPath, rejectUpgrade } from './exec-stream.js';
import { parsePortForwardPath, PortForwardStreams, type PortForwardTarget } from './port-forward.js';
import { streamLogs } from './logs.js';
import { StatsProvider } from './stats.js';
import { renderResourceMetrics, renderScrapeError } from './resource-metrics.js';
import type { AgentMetrics } from './metrics.js';
import type { PodWorkers } from '../pods/workers.js';

export interface ServedAgent {
  readonly workers: PodWorkers;
  readonly metrics: AgentMetrics;
}

interface KubeletServerOptions {
  agent: ServedAgent;
  runtime: ContainerRuntime;
  config: KubeletConfiguration;
  kubeConfig: KubeConfig;
  log: Logger;
  nodeName?: string;
  rootDir?: string;
  /** Overrides the auth built from the config (tests). */
  auth?: RequestAuth;
  /**
   * A serving certificate that changes at run time (serverTLSBootstrap, agent/certificates/):
   * HTTPS with it instead of tlsCertFile; until there is one, TLS handshakes fail, as the
   * kubelet's GetCertificate returns "no serving certificate available for the kubelet".
   */
  servingTls?: ServingTlsSource;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: string | Buffer, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function numberParam(url: URL, name: string): number | undefined {
  const value = url.searchParams.get(name);
  if (value === null || value === '') return undefined;
  if (!/^\d+$/.test(value)) throw new HttpError(400, `invalid ${name} "${value}"`);
  return Number(value);
}

function boolParam(url: URL, name: string): boolean {
  const value = url.searchParams.get(name);
  return value === 'true' || value === '1' || value === '';
}

export class KubeletServer {
  private server?: Server;
  private readOnly?: Server;
  private readonly auth: RequestAuth;
  private readonly stats: StatsProvider;
  private readonly open = new Set<ServerResponse>();
  private readonly streams: ExecStreams;
  private readonly portForwards: PortForwardStreams;

  constructor(private readonly options: KubeletServerOptions) {
    const { config } = options;
    const reviewers = config.authentication.webhook.enabled || config.authorization.mode === 'Webhook' ? apiReviewers(options.kubeConfig) : undefined;
    this.auth =
      options.auth ??
      new RequestAuth(
        {
          anonymous: config.authentication.anonymous.enabled,
          ...(config.authentication.webhook.enabled && reviewers ? { tokens: reviewers.tokens } : {}),
          tokenCacheTtlMs: config.authentication.webhook.cacheTTL,
          mode: config.authorization.mode,
          ...(reviewers ? { access: reviewers.access } : {}),
          allowedTtlMs: config.authorization.webhook.cacheAuthorizedTTL,
          deniedTtlMs: config.authorization.webhook.cacheUnauthorizedTTL,
          clientCerts: Boolean((config.tlsCertFile || options.servingTls) && config.authentication.x509.clientCAFile),
          log: options.log,
        },
        options.nodeName ?? '',
      );
    this.streams = new ExecStreams({
      runtime: options.runtime,
      log: options.log,
      resolveContainer: (namespace, pod, container) => {
        try {
          return this.findContainer(namespace, pod, container, false);
        } catch (error) {
          if (error instanceof HttpError) return { status: error.status, message: error.message };
          throw error;
        }
      },
    });
    this.portForwards = new PortForwardStreams({ runtime: options.runtime, log: options.log, resolveSandbox: (target) => this.findSandbox(target) });
    this.stats = new StatsProvider(options.runtime, options.nodeName ?? '', options.rootDir ?? '/');
  }

  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  get readOnlyPort(): number | undefined {
    return (this.readOnly?.address() as AddressInfo | null)?.port;
  }

  /** The TLS material: the rotating source's pair, or tlsCertFile/tlsPrivateKeyFile, plus the client CA. */
  private tlsContext(): { cert?: string | Buffer; key?: string | Buffer; ca?: Buffer } {
    const { config, servingTls } = this.options;
    const ca = config.authentication.x509.clientCAFile ? { ca: readFileSync(config.authentication.x509.clientCAFile) } : {};
    if (servingTls) {
      const pair = servingTls.current();
      return { ...(pair ? { cert: pair.cert, key: pair.key } : {}), ...ca };
    }
    return { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsPrivateKeyFile), ...ca };
  }

  /** Switches the HTTPS server to the serving source's current pair (new connections use it). */
  reloadTls(): void {
    if (!this.options.servingTls || !this.server || !('setSecureContext' in this.server)) return;
    const context = this.tlsContext();
    if (context.cert) (this.server as HttpsServer).setSecureContext(context);
  }

  async start(): Promise<void> {
    const { config } = this.options;
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res, true);
    const tls = config.tlsCertFile || this.options.servingTls;
    this.server = tls
      ? createHttpsServer({ ...this.tlsContext(), ...(config.authentication.x509.clientCAFile ? { requestCert: true, rejectUnauthorized: false } : {}) }, handler)
      : createHttpServer(handler);
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.upgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(config.port, config.address, () => resolve());
    });
    if (config.readOnlyPort > 0) {
      this.readOnly = createHttpServer((req, res) => void this.handle(req, res, false));
      await new Promise<void>((resolve, reject) => {
        this.readOnly!.once('error', reject);
        this.readOnly!.listen(config.readOnlyPort, config.address, () => resolve());
      });
    }
  }

  async stop(): Promise<void> {
    for (const res of this.open) res.destroy();
    this.streams.stop();
    this.portForwards.stop();
    for (const server of [this.server, this.readOnly]) {
      if (!server) continue;
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse, secure: boolean): Promise<void> {
    this.open.add(res);
    res.on('close', () => this.open.delete(res));
    try {
      const url = new URL(req.url ?? '/', 'http://kubelet');
      if (secure) {
        const result = await this.auth.check(req, url.pathname);
        if (!result.ok) throw new HttpError(result.status, result.message);
      } else if (!['/healthz', '/pods'].includes(url.pathname) && !url.pathname.startsWith('/stats')) {
        throw new HttpError(404, 'not served on the read-only port');
      }
      await this.route(req, res, url);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 500;
      if (status === 500) this.options.log.warn({ url: req.url, err: error }, 'kubelet API request failed');
      if (!res.headersSent) send(res, status, `${error instanceof HttpError ? error.message : describeError(error)}\n`);
      else res.end();
    }
  }

  /** exec/attach/portForward: authenticated and authorized like every other request, before the 101. */
  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    try {
      const url = new URL(req.url ?? '/', 'http://kubelet');
      const result = await this.auth.check(req, url.pathname);
      if (!result.ok) return rejectUpgrade(socket, result.status, result.message);
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      const forward = parsePortForwardPath(parts);
      if (forward) return await this.portForwards.handle(req, socket, head, forward, url.searchParams);
      const target = parseStreamPath(parts);
      if (!target) return rejectUpgrade(socket, 404, `not found: ${url.pathname}`);
      this.streams.handle(req, socket, head, target, url.searchParams);
    } catch (error) {
      this.options.log.warn({ url: req.url, err: error }, 'kubelet API upgrade request failed');
      rejectUpgrade(socket, 500, describeError(error));
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (path === '/healthz') return send(res, 200, 'ok');
    if (path === '/pods') return send(res, 200, this.podListJson(), 'application/json');
    if (path === '/stats/summary' || path === '/stats/summary/') {
      return send(res, 200, JSON.stringify(await this.stats.summary(this.options.agent.workers.statuses())), 'application/json');
    }
    if (path === '/metrics/resource') return this.resourceMetrics(res);
    if (path === '/metrics') return send(res, 200, await this.options.agent.metrics.registry.metrics(), this.options.agent.metrics.registry.contentType);
    if (parts[0] === 'containerLogs' && parts.length === 4) return this.containerLogs(req, res, url, parts[1]!, parts[2]!, parts[3]!);
    if (parseStreamPath(parts) || parsePortForwardPath(parts)) throw new HttpError(400, 'Upgrade request required');
    if (parts[0] === 'run' && (parts.length === 4 || parts.length === 5)) return this.runCommand(req, res, url, parts[1]!, parts[2]!, parts[parts.length - 1]!);
    throw new HttpError(404, `not found: ${path}`);
  }

  /** /metrics/resource (resource-metrics.ts): a failed stats read is a scrape error, not a 500. */
  private async resourceMetrics(res: ServerResponse): Promise<void> {
    let body: string;
    try {
      body = renderResourceMetrics(await this.stats.summary(this.options.agent.workers.statuses()));
    } catch (error) {
      this.options.log.warn({ err: error }, 'resource metrics: cannot read the stats');
      body = renderScrapeError();
    }
    send(res, 200, body, 'text/plain; version=0.0.4; charset=utf-8');
  }

  /**
   * /pods, rendered again only when the pod workers' statuses changed (the kubelet serves it
   * from its pod manager, pkg/kubelet/server/server.go getPods): a client polling it often
   * (a start-latency watcher, every 10 ms) otherwise cost a serialisation of every pod each time.
   */
  private podListJson(): Buffer {
    const revision = this.options.agent.workers.revision;
    if (this.podsRendered?.revision !== revision) this.podsRendered = { revision, body: Buffer.from(JSON.stringify(this.podList())) };
    return this.podsRendered.body;
  }

  private podsRendered?: { revision: number; body: Buffer };

  private podList(): { kind: string; apiVersion: string; metadata: object; items: V1Pod[] } {
    const items = this.options.agent.workers.statuses().map(({ pod, status }) => ({ ...pod, apiVersion: 'v1', kind: 'Pod', ...(status ? { status } : {}) }));
    return { kind: 'PodList', apiVersion: 'v1', metadata: {}, items };
  }

  private findContainer(namespace: string, name: string, container: string, previous: boolean): string {
    const entry = this.options.agent.workers.statuses().find(({ pod }) => pod.metadata?.namespace === namespace && pod.metadata?.name === name);
    if (!entry) throw new HttpError(404, `pod "${namespace}/${name}" not found on this node`);
    const status = [...(entry.status?.containerStatuses ?? []), ...(entry.status?.initContainerStatuses ?? [])].find((c) => c.name === container);
    if (!status) throw new HttpError(404, `container "${container}" not found in pod "${namespace}/${name}"`);
    const id = previous ? status.lastState?.terminated?.containerID : status.containerID;
    if (!id) throw new HttpError(400, previous ? `previous terminated container "${container}" in pod "${name}" not found` : `container "${container}" in pod "${name}" is waiting to start`);
    return id.replace(/^[a-z]+:\/\//, '');
  }

  /** The pod's ready sandbox, for port-forward (a uid in the path must match, as in the kubelet). */
  private async findSandbox(target: PortForwardTarget): Promise<{ sandboxId: string; uid: string } | { status: number; message: string }> {
    const entry = this.options.agent.workers.statuses().find(({ pod }) => pod.metadata?.namespace === target.namespace && pod.metadata?.name === target.pod);
    const uid = entry?.pod.metadata?.uid;
    if (!entry || !uid || (target.uid !== undefined && target.uid !== uid)) return { status: 404, message: `pod "${target.namespace}/${target.pod}" not found on this node` };
    const [sandbox] = await this.options.runtime.listPodSandbox({ state: 'SANDBOX_READY', labelSelector: { [kubeLabels.podUid]: uid } });
    if (!sandbox) return { status: 400, message: `pod "${target.namespace}/${target.pod}" has no running sandbox` };
    return { sandboxId: sandbox.id, uid };
  }

  private async containerLogs(req: IncomingMessage, res: ServerResponse, url: URL, namespace: string, name: string, container: string): Promise<void> {
    const id = this.findContainer(namespace, name, container, boolParam(url, 'previous'));
    const status = await this.options.runtime.containerStatus(id);
    if (!status.logPath) throw new HttpError(404, `container "${container}" has no log file`);
    const abort = new AbortController();
    req.on('close', () => abort.abort());
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'transfer-encoding': 'chunked' });
    const tailLines = numberParam(url, 'tailLines');
    const sinceSeconds = numberParam(url, 'sinceSeconds');
    const limitBytes = numberParam(url, 'limitBytes');
    await streamLogs(status.logPath, res, {
      follow: boolParam(url, 'follow'),
      timestamps: boolParam(url, 'timestamps'),
      ...(tailLines !== undefined ? { tailLines } : {}),
      ...(sinceSeconds !== undefined ? { sinceSeconds } : {}),
      ...(limitBytes !== undefined ? { limitBytes } : {}),
      signal: abort.signal,
      stillRunning: async () => (await this.containerStatus(id))?.state === 'CONTAINER_RUNNING',
    });
    res.end();
  }

  /** The container's status; undefined once it is gone (removed while its log is followed). */
  private async containerStatus(id: string): Promise<ContainerStatus | undefined> {
    try {
      return await this.options.runtime.containerStatus(id);
    } catch (error) {
      if (!isCriError(error, 'NotFound')) this.options.log.warn({ err: error, container: id }, 'cannot read the status of a container whose log is followed');
      return undefined;
    }
  }

  /** /run: runs a command in the container and returns its combined output. */
  private async runCommand(req: IncomingMessage, res: ServerResponse, url: URL, namespace: string, name: string, container: string): Promise<void> {
    if (req.method !== 'POST' && req.method !== 'GET') throw new HttpError(405, 'method not allowed');
    let cmd = url.searchParams.get('cmd') ?? '';
    if (!cmd && req.method === 'POST') {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      cmd = new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('cmd') ?? '';
    }
    const argv = cmd.split(/\s+/).filter(Boolean);
    if (argv.length === 0) throw new HttpError(400, 'missing cmd');
    const id = this.findContainer(namespace, name, container, false);
    const result = await this.options.runtime.execSync(id, argv, 60);
    send(res, 200, result.stdout + result.stderr);
  }
}
