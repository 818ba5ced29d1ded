/**
 * The `knode proxy` daemon: informers → tracker → (batched by SyncLoop) IptablesProxier,
 * IpvsProxier or NftablesProxier → kernel, plus healthz/metrics and the health check node ports.
 * start() returns once the API caches have listed and the servers listen; the first sync
 * follows at once. stop() ends the watches, waits for a running sync and closes the servers;
 * the rules stay in place (as kube-proxy, so that traffic keeps flowing across restarts).
 */
import type { Server } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../lib/log.js';
import type { KubeProxyConfiguration } from '../lib/config/kubeproxy.js';
import { ChangeTracker } from './tracker.js';
import type { ProxyModel } from './model.js';
import { ProxyMetrics } from './metrics.js';
import { SyncLoop } from './scheduler.js';
import { ProxyHealth, ServiceHealthServers, close, startHealthServer } from './health.js';
import { IptablesProxier } from './iptables/proxier.js';
import { CommandIptables, detectBackend } from '../lib/netfilter/iptables.js';
import { ConntrackTool } from './conntrack.js';
import { apiSources, type ApiSources } from './sources.js';
import { NetlinkIpvs } from './ipvs/netlink-ipvs.js';
import { CommandIpvsHost } from './ipvs/host.js';
import { IpvsProxier } from './ipvs/proxier.js';
import { ipvsKernelSupport, ipvsStartError } from './ipvs-check.js';
import { cleanupOtherMode } from './leftovers.js';
import { NftablesProxier } from './nftables/proxier.js';
import { NftSocket } from '../lib/netfilter/nftables/socket.js';
import { localIPv4AddressesIn } from '../lib/net.js';

interface ProxyDaemonOptions {
  config: KubeProxyConfiguration;
  mode: 'iptables' | 'ipvs' | 'nftables';
  kubeConfig: KubeConfig;
  nodeName: string;
  log: Logger;
}

export class ProxyDaemon {
  readonly tracker = new ChangeTracker();
  readonly metrics = new ProxyMetrics();
  private readonly health: ProxyHealth;
  private readonly serviceHealth: ServiceHealthServers;
  private sources?: ApiSources;
  private loop?: SyncLoop;
  private servers: Server[] = [];
  private ipvs?: NetlinkIpvs;
  private nft?: NftSocket;

  constructor(private readonly options: ProxyDaemonOptions) {
    // kube-proxy's healthTimeout: 2 × syncPeriod of the mode in use
    this.health = new ProxyHealth(2 * this.periods().syncPeriod);
    this.serviceHealth = new ServiceHealthServers(options.log);
  }

  private periods(): { syncPeriod: number; minSyncPeriod: number } {
    const { config, mode } = this.options;
    return mode === 'ipvs' ? config.ipvs : mode === 'nftables' ? config.nftables : config.iptables;
  }

  async start(): Promise<void> {
    const { config, log } = this.options;
    const backend = await detectBackend();
    log.info({ backend, node: this.options.nodeName, mode: this.options.mode }, 'starting the service proxy');
    const clusterCIDRs = config.clusterCIDR.split(',').map((cidr) => cidr.trim()).filter((cidr) => cidr.includes('.'));
    const onSynced = (model: ProxyModel) => {
      this.health.updated();
      this.serviceHealth.sync(model).catch((error: unknown) => log.warn({ err: error }, 'health check node ports'));
    };
    // IPVS is checked first: a node without it must not lose its iptables rules to a failed start.
    const ipvs = this.options.mode === 'ipvs' ? await this.openIpvs() : undefined;
    this.nft = this.openNft();
    await cleanupOtherMode(this.options.mode, new CommandIptables(backend), log, this.nft).catch((error: unknown) => {
      log.warn({ err: error }, 'leftovers of the other proxy mode could not all be removed');
    });
    // nodePortAddresses: CIDRs whose local addresses accept NodePorts; "primary" (kube-proxy: the
    // node's primary IPs) is treated as every local address here, in all modes.
    const nodePortCIDRs = config.nodePortAddresses.filter((cidr) => cidr !== 'primary');
    if (config.nodePortAddresses.includes('primary')) log.warn('nodePortAddresses "primary" is not implemented: NodePorts answer on the addresses of the other entries, or every local address');
    const proxier: { sync(): Promise<unknown> } =
      this.options.mode === 'nftables' && this.nft
        ? new NftablesProxier({
            nft: this.nft,
            conntrack: new ConntrackTool(),
            tracker: this.tracker,
            nodeName: this.options.nodeName,
            rules: { clusterCIDRs, masqueradeAll: config.nftables.masqueradeAll, masqueradeBit: config.nftables.masqueradeBit, nodePortIPsOnly: nodePortCIDRs.length > 0 },
            nodePortIPs: () => localIPv4AddressesIn(nodePortCIDRs),
            syncPeriodMs: config.nftables.syncPeriod,
            metrics: this.metrics,
            log,
            onSynced,
          })
        : ipvs
        ? new IpvsProxier({
            ipvs,
            host: new CommandIpvsHost(),
            iptables: new CommandIptables(backend),
            conntrack: new ConntrackTool(),
            tracker: this.tracker,
            nodeName: this.options.nodeName,
            scheduler: config.ipvs.scheduler,
            clusterCIDRs,
            masqueradeAll: config.iptables.masqueradeAll,
            masqueradeBit: config.iptables.masqueradeBit,
            metrics: this.metrics,
            log,
            onSynced,
          })
        : new IptablesProxier({
            iptables: new CommandIptables(backend),
            conntrack: new ConntrackTool(),
            tracker: this.tracker,
            nodeName: this.options.nodeName,
            rules: {
              clusterCIDRs,
              masqueradeAll: config.iptables.masqueradeAll,
              masqueradeBit: config.iptables.masqueradeBit,
              nodePortAddresses: nodePortCIDRs,
              localhostNodePorts: config.iptables.localhostNodePorts,
            },
            syncPeriodMs: config.iptables.syncPeriod,
            metrics: this.metrics,
            log,
            onSynced,
          });
    const periods = this.periods();
    const loop = new SyncLoop({ minSyncPeriodMs: periods.minSyncPeriod, syncPeriodMs: periods.syncPeriod }, async () => {
      try {
        await proxier.sync();
      } catch (error) {
        log.error({ err: error }, 'sync failed; a full sync follows');
        loop.trigger();
      }
    });
    this.loop = loop;
    this.tracker.onChange = () => {
      this.health.queued();
      loop.trigger();
    };
    const healthz = await startHealthServer(config.healthzBindAddress, this.health, this.metrics.registry);
    this.servers.push(healthz.server);
    if (config.metricsBindAddress !== config.healthzBindAddress) {
      this.servers.push((await startHealthServer(config.metricsBindAddress, this.health, this.metrics.registry)).server);
    }
    this.sources = apiSources(this.options.kubeConfig, this.tracker, log);
    await this.sources.start();
    loop.start();
    log.info({ healthz: config.healthzBindAddress, metrics: config.metricsBindAddress }, 'proxy started');
  }

  /**
   * The nf_tables socket: nftables mode needs it (a kernel without nf_tables fails the start);
   * the other modes use it only to remove nftables-mode leftovers, so there a failure is a warning.
   */
  private openNft(): NftSocket | undefined {
    try {
      return NftSocket.open();
    } catch (error) {
      if (this.options.mode === 'nftables') throw new Error('--proxy-mode nftables cannot start', { cause: error });
      this.options.log.warn({ err: error }, 'no nf_tables netlink socket: nftables-mode leftovers are not checked');
      return undefined;
    }
  }

  /** IPVS mode needs the kernel's IPVS (kube-proxy checks the same at start). */
  private async openIpvs(): Promise<NetlinkIpvs> {
    const support = ipvsKernelSupport();
    if (!support.kernel) throw ipvsStartError(support);
    try {
      this.ipvs = await NetlinkIpvs.open();
      return this.ipvs;
    } catch (error) {
      throw new Error('--proxy-mode ipvs cannot start', { cause: error });
    }
  }

  async stop(): Promise<void> {
    await this.sources?.stop();
    await this.loop?.stop();
    await this.serviceHealth.stop();
    for (const server of this.servers.splice(0)) await close(server);
    this.ipvs?.close();
    this.ipvs = undefined;
    this.nft?.close();
    this.nft = undefined;
  }
}
