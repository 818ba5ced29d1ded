/**
 * More than one process answering on the one UDP socket of `knode dns` (--serving-processes).
 *
 * Why: most of what a query costs is Node's own work around each datagram (libuv's receive, a
 * Buffer, a 'message' event and a send per query: Node 20 reads one datagram per recvmsg and has
 * no SO_REUSEPORT for dgram), not the lookup, and one Node process does it on one core. Measured
 * with bench/dns.ts (10k Services, dnsperf on loopback, 2 cores): one process answered 115.6k qps
 * against dnsmasq's 182.7k (0.63×) at 8.7 µs of CPU per query (dnsmasq 4.4 µs); the figures with
 * two processes are in docs/architecture.md (cluster DNS). CoreDNS uses every core the same way
 * (Go's scheduler), dnsmasq one.
 *
 * The main process binds the socket (so a bad address still fails at start), watches the API
 * server, serves TCP, /health, /ready and /metrics, and answers UDP itself too. Each child gets
 * the same socket (child_process `send(message, dgram.Socket)`: the kernel hands each datagram to
 * whichever process reads it first) and a copy of the index: a snapshot of the Services and
 * EndpointSlices when it starts, then every change in order over the IPC channel, so there is
 * still one list/watch of the API server per node. Each child has its own answer cache and
 * forwarder (a forwarded name is asked upstream once per process). Metrics are kept per process
 * and summed when /metrics is scraped (prom-client's aggregation, the one cluster-mode apps
 * use), so the CoreDNS series read as one server's. A child that exits is logged and started
 * again (1 s later, backing off to 30 s while it keeps dying within 10 s); SIGTERM to the main
 * process stops the children first; a child whose main process is gone exits (IPC disconnect).
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Socket as UdpSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Logger } from '../lib/log.js';
import type { ClusterIndex } from './records.js';
import type { Upstream } from './resolv-conf.js';

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** What a serving process needs besides the socket and the index. */
interface ServingConfig {
  zone: string;
  ttl: number;
  host: string;
  upstreams: Upstream[];
  cacheSize: number;
  maxForwardInFlight: number;
  logLevel: string;
}

/** Messages from the main process to a serving process. */
export type ToServing =
  | { kind: 'init'; slot: number; config: ServingConfig; services: V1Service[]; slices: V1EndpointSlice[]; synced: boolean }
  | { kind: 'service' | 'slice'; op: 'upsert' | 'delete'; object: V1Service | V1EndpointSlice }
  | { kind: 'synced' }
  | { kind: 'metrics'; id: number };

/** Messages from a serving process to the main process. */
export type FromServing = { kind: 'serving'; port: number } | { kind: 'metrics'; id: number; metrics: MetricsJson };

const workerPath = fileURLToPath(new URL('./serving-child.js', import.meta.url));
const metricsTimeoutMs = 2000;

export class ServingProcesses {
  private readonly children = new Map<number, ChildProcess>();
  private readonly restartDelay = new Map<number, number>();
  private readonly pendingMetrics = new Map<number, { child: ChildProcess; resolve: (metrics: MetricsJson) => void }>();
  private socket?: UdpSocket;
  private synced = false;
  private stopping = false;
  private nextId = 0;

  constructor(
    private readonly options: {
      /** Serving processes besides the main one. */
      children: number;
      index: ClusterIndex;
      config: ServingConfig;
      log: Logger;
    },
  ) {}

  /** Starts the children on the main process's bound socket. */
  start(socket: UdpSocket): void {
    this.socket = socket;
    for (let slot = 1; slot <= this.options.children; slot++) this.spawn(slot);
  }

  /** The index's changes, applied here and sent to every child (the informers feed this). */
  readonly sink = {
    upsertService: (service: V1Service) => (this.options.index.upsertService(service), this.broadcast({ kind: 'service', op: 'upsert', object: service })),
    deleteService: (service: V1Service) => (this.options.index.deleteService(service), this.broadcast({ kind: 'service', op: 'delete', object: service })),
    upsertSlice: (slice: V1EndpointSlice) => (this.options.index.upsertSlice(slice), this.broadcast({ kind: 'slice', op: 'upsert', object: slice })),
    deleteSlice: (slice: V1EndpointSlice) => (this.options.index.deleteSlice(slice), this.broadcast({ kind: 'slice', op: 'delete', object: slice })),
  };

  /** The first list is in: the children answer cluster names (SERVFAIL before). */
  markSynced(): void {
    this.synced = true;
    this.broadcast({ kind: 'synced' });
  }

  /** Every child's metrics (a child that does not answer within 2 s is left out of this scrape). */
  async metrics(): Promise<MetricsJson[]> {
    const requests = [...this.children.values()]
      .filter((child) => child.connected)
      .map(
        (child) =>
          new Promise<MetricsJson>((resolve) => {
            const id = ++this.nextId;
            const timer = setTimeout(() => (this.pendingMetrics.delete(id), resolve([])), metricsTimeoutMs);
            this.pendingMetrics.set(id, { child, resolve: (metrics) => (clearTimeout(timer), this.pendingMetrics.delete(id), resolve(metrics)) });
            this.send(child, { kind: 'metrics', id });
          }),
      );
    return Promise.all(requests);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.children.values()].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            child.once('exit', () => (clearTimeout(timer), resolve()));
            child.kill('SIGTERM');
          }),
      ),
    );
    this.children.clear();
  }

  private spawn(slot: number): void {
    const { log, index, config } = this.options;
    const started = Date.now();
    // stdout/stderr shared with the main process: the children log JSON lines as it does.
    const child = fork(workerPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.children.set(slot, child);
    child.on('message', (message: FromServing) => {
      if (message.kind === 'metrics') this.pendingMetrics.get(message.id)?.resolve(message.metrics);
      // info: after a restart, the line that says the node answers with all its processes again
      else log.info({ slot, pid: child.pid, port: message.port }, 'DNS serving process answering');
    });
    child.on('error', (error) => log.warn({ err: error, slot }, 'DNS serving process: IPC error'));
    child.once('exit', (code, signal) => {
      for (const [id, pending] of this.pendingMetrics) if (pending.child === child) pending.resolve([]), this.pendingMetrics.delete(id);
      if (this.children.get(slot) === child) this.children.delete(slot);
      if (this.stopping) return;
      const delay = Date.now() - started < 10_000 ? Math.min(30_000, (this.restartDelay.get(slot) ?? 500) * 2) : 1000;
      this.restartDelay.set(slot, delay);
      log.error({ slot, pid: child.pid, code, signal, restartInMs: delay }, 'a DNS serving process exited; starting it again');
      setTimeout(() => {
        if (!this.stopping) this.spawn(slot);
      }, delay).unref();
    });
    const { services, slices } = index.snapshot();
    this.send(child, { kind: 'init', slot, config, services, slices, synced: this.synced }, this.socket);
  }

  private broadcast(message: ToServing): void {
    for (const child of this.children.values()) this.send(child, message);
  }

  private send(child: ChildProcess, message: ToServing, socket?: UdpSocket): void {
    if (!child.connected) return;
    // A child that died between the check and the write: its 'exit' handler restarts it (with
    // a fresh snapshot), so the lost message does not matter; logged at debug only.
    child.send(message, socket, (error) => error && this.options.log.debug({ err: error, pid: child.pid }, 'message to a DNS serving process lost'));
  }
}
