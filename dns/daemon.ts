/**
 * `knode dns`: cluster DNS served on every node.
 *
 * Why a component of its own and not part of `knode proxy`: the DNS server answers every pod's
 * every lookup, so a proxy resync of 10k Services (seconds of iptables-restore on this machine)
 * must not stall it, and a DNS crash must not take the service dataplane down (or the other way
 * round); it also gets its own systemd unit, log and restart policy, as CoreDNS and kube-proxy
 * are separate in a cluster. It shares the proxy's informer code (proxy/sources.ts) for Services
 * and EndpointSlices, so both see the API the same way: list then watch, relist after a 410.
 * It needs only list/watch of Services and EndpointSlices (works against any kube-apiserver),
 * plus get/create of the kube-dns Service and this node's EndpointSlice when it publishes itself
 * (./publish.ts explains how pods reach it at the clusterDNS address, node-locally).
 *
 * While the API server is unreachable the index keeps its last data and the server keeps
 * answering from it; the informers relist when it comes back.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../lib/log.js';
import { apiSources, type ApiSources } from '../proxy/sources.js';
import { AnswerCache } from './cache.js';
import { Forwarder } from './forward.js';
import { DnsMetrics, startHealthServer } from './metrics.js';
import { DnsPublisher } from './publish.js';
import { ClusterIndex } from './records.js';
import type { Upstream } from './resolv-conf.js';
import { DnsServer } from './server.js';
import { ServingProcesses } from './serving.js';

interface DnsDaemonOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  nodeName: string;
  clusterDomain: string;
  /** Where to serve (the node address pods are DNATed to) and the port (53). */
  bindAddress: string;
  port: number;
  upstreams: Upstream[];
  /** /health, /ready, /metrics (host:port); empty string: none. */
  healthAddress: string;
  /** The kube-dns ClusterIP to publish this node under; undefined: do not publish. */
  publishClusterIP?: string;
  cacheSize?: number;
  maxForwardInFlight?: number;
  /** Processes answering UDP on the one socket (./serving.ts); 1: this one only. */
  servingProcesses?: number;
  /** The log level of the serving processes (they log on their own). */
  logLevel?: string;
}

export class DnsDaemon {
  readonly index: ClusterIndex;
  readonly metrics = new DnsMetrics(true);
  readonly server: DnsServer;
  private readonly sources: ApiSources;
  /** The other serving processes (./serving.ts), with more than one. */
  readonly serving?: ServingProcesses;
  private publisher?: DnsPublisher;
  private health?: { port: number; stop(): Promise<void> };
  private synced = false;
  private stopped = false;
  port = 0;
  healthPort = 0;

  constructor(private readonly options: DnsDaemonOptions) {
    this.index = new ClusterIndex(options.clusterDomain.toLowerCase().replace(/\.$/, ''));
    const cacheSize = options.cacheSize ?? 10_000;
    const maxForwardInFlight = options.maxForwardInFlight ?? 1000;
    const processes = options.servingProcesses ?? 1;
    if (processes > 1) {
      const config = { zone: this.index.zone, ttl: this.index.ttl, host: options.bindAddress, upstreams: options.upstreams, cacheSize, maxForwardInFlight, logLevel: options.logLevel ?? options.log.level };
      this.serving = new ServingProcesses({ children: processes - 1, index: this.index, config, log: options.log });
    }
    // With serving processes, every change to the index is also sent to them.
    this.sources = apiSources(options.kubeConfig, this.serving?.sink ?? this.index, options.log);
    this.server = new DnsServer({
      index: this.index,
      synced: () => this.synced,
      forwarder: new Forwarder(options.upstreams, { maxInFlight: maxForwardInFlight }),
      cache: new AnswerCache(cacheSize),
      metrics: this.metrics,
      log: options.log,
      host: options.bindAddress,
      port: options.port,
    });
  }

  /**
   * Serves at once (cluster names answer SERVFAIL until the first list, forwarded names work
   * from the start) and lists in the background; `ready` resolves after the first list.
   */
  async start(): Promise<void> {
    const { log } = this.options;
    try {
      this.port = await this.server.start();
    } catch (error) {
      throw new Error(`cannot serve DNS on ${this.options.bindAddress}:${this.options.port}`, { cause: error });
    }
    this.serving?.start(this.server.udpSocket!);
    if (this.options.healthAddress) {
      const serving = this.serving;
      this.health = await startHealthServer(this.options.healthAddress, this.metrics, () => this.synced, serving ? () => serving.metrics() : undefined);
      this.healthPort = this.health.port;
    }
    log.info({ address: this.options.bindAddress, port: this.port, zone: this.index.zone, upstreams: this.options.upstreams, health: this.healthPort || undefined, processes: (this.options.servingProcesses ?? 1) > 1 ? this.options.servingProcesses : undefined }, 'serving DNS');
    if (this.options.upstreams.length === 0) log.warn('no upstream resolvers: names outside the cluster domain get SERVFAIL');
    this.ready = this.sources.start().then(() => {
      if (this.stopped) return;
      this.synced = true;
      this.serving?.markSynced();
      log.info({ services: this.index.serviceCount }, 'synced with the API server');
      if (this.options.publishClusterIP) {
        this.publisher = new DnsPublisher(this.options.kubeConfig, { nodeName: this.options.nodeName, address: this.options.bindAddress, port: this.port, clusterIP: this.options.publishClusterIP, log });
        this.publisher.start();
      }
    });
    this.ready.catch((error: unknown) => log.error({ err: error }, 'listing Services and EndpointSlices failed'));
  }

  ready: Promise<void> = Promise.resolve();

  get isSynced(): boolean {
    return this.synced;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // First, so that a child exiting meanwhile (systemd signals the whole unit) is not restarted.
    const servingStopped = this.serving?.stop();
    await this.publisher?.stop();
    await this.sources.stop();
    await servingStopped;
    await this.server.stop();
    await this.health?.stop();
  }
}
