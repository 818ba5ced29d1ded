/**
 * The overlay daemon (flanneld with the kube subnet manager and the vxlan backend):
 * lease = this node's spec.podCIDR, VTEP published in flannel's node annotations with a status
 * patch (as flannel's kube subnet manager does), VXLAN device ensured, subnet.env written, and a
 * node informer (lib/informer.ts) that reconciles peers (add/change/remove) into ARP/FDB/route entries. It also
 * hosts the CNI plugin's fast-path socket (cni/plugin-server.ts). Kernel state is left in place
 * on stop, so a restart re-adopts it without breaking established flows.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { V1Node } from '@kubernetes/client-node';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '../lib/kube-client.js';
import { Informer } from '../lib/informer.js';
import { NetnsIpPool } from '../lib/ip/pool.js';
import { IpRunner } from '../lib/ip/runner.js';
import { IpBatchSession } from '../lib/ip/session.js';
import type { Logger } from '../lib/log.js';
import { nodeIptables } from '../lib/netfilter/iptables.js';
import type { NetConf } from '../lib/config/netconf.js';
import { CniSocketServer, cniSocketFor } from '../cni/plugin-server.js';
import { ensureOverlayMasq } from './masq.js';
import { writeFileAtomic } from '../lib/fs.js';
import { desiredPeers, leaseFromNode, ownAnnotations, planPeers, sameL2, subnetEnvText, vtepAddress, vxlanMtu, type NodeView, type Peer } from './policy.js';
import { addDirectPeer, addVxlanPeer, ensureVxlan, findUnderlay, readVxlanEntries, removeDirectPeer, removeVxlanPeer, type Underlay } from './vxlan.js';

interface OverlayOptions {
  kubeconfig: KubeConfig;
  netConf: NetConf;
  nodeName?: string;
  iface?: string;
  subnetFile: string;
  ipMasq?: boolean;
  log: Logger;
  /** Where the CNI fast path listens; default: knode-cni.sock next to the subnet file. */
  cniSocket?: string;
  leaseTimeoutMs?: number;
}

/** Where the daemon serves the CNI fast path: the plugin's own rule (cni/plugin-server.ts). */
export { cniSocketFor };

const toView = (node: V1Node): NodeView => ({ name: node.metadata?.name ?? '', podCIDR: node.spec?.podCIDR, annotations: node.metadata?.annotations ?? {} });

/** Pods on other nodes are reached by forwarding; flannel leaves the sysctl to the node setup but says so. */
function warnIfNoForwarding(log: Logger): void {
  try {
    if (readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() !== '1') log.warn('net.ipv4.ip_forward is 0: pods cannot reach other nodes');
  } catch {
    /* not Linux procfs */
  }
}

export class OverlayDaemon {
  private readonly api: CoreV1Api;
  private informer?: Informer<V1Node>;
  private server?: CniSocketServer;
  /** The one `ip`/netlink runner of the daemon, shared with the CNI fast path it hosts. */
  private readonly ip: IpRunner;
  private readonly pool = new NetnsIpPool();
  private nodes = new Map<string, NodeView>();
  private readonly programmed = new Map<string, Peer & { direct: boolean }>();
  private underlay?: Underlay;
  private device = '';
  private reconciling: Promise<void> = Promise.resolve();
  private stopped = false;
  private synced = false;
  readonly nodeName: string;

  constructor(private readonly options: OverlayOptions) {
    this.api = options.kubeconfig.makeApiClient(CoreV1Api);
    this.nodeName = options.nodeName ?? hostname();
    this.ip = new IpRunner({ session: new IpBatchSession(), pool: this.pool });
  }

  async start(): Promise<void> {
    const { netConf, log } = this.options;
    const self = await this.waitForLease();
    const subnet = leaseFromNode(self, netConf.Network, netConf);
    this.underlay = await findUnderlay(this.ip, this.options.iface);
    this.device = `flannel.${netConf.Backend.VNI}`;
    const mtu = vxlanMtu(this.underlay.mtu, netConf.Backend.MTU);
    const vtepMac = await ensureVxlan(this.ip, { name: this.device, vni: netConf.Backend.VNI, port: netConf.Backend.Port, mtu, underlay: this.underlay, subnet });
    await this.publish(vtepMac);
    if (this.options.ipMasq) await ensureOverlayMasq(await nodeIptables(), netConf.Network, subnet);
    warnIfNoForwarding(log);
    writeFileAtomic(this.options.subnetFile, subnetEnvText(netConf.Network, subnet, mtu, this.options.ipMasq ?? false), { mkdir: true });
    log.info({ node: this.nodeName, subnet, vtepMac, device: this.device, underlay: this.underlay }, 'lease acquired');
    await this.removeStale();
    this.pool.fill();
    this.server = new CniSocketServer(this.options.cniSocket ?? cniSocketFor(this.options.subnetFile), log, this.ip);
    await this.server.start();
    await this.startInformer();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.informer?.stop();
    await this.server?.stop();
    await this.reconciling;
    this.ip.close();
  }

  /** flannel waits for the node to get a podCIDR from the node IPAM controller. */
  private async waitForLease(): Promise<NodeView> {
    const deadline = Date.now() + (this.options.leaseTimeoutMs ?? 120_000);
    for (;;) {
      try {
        const node = toView(await this.api.readNode({ name: this.nodeName }));
        if (node.podCIDR) return node;
        this.options.log.info({ node: this.nodeName }, 'waiting for spec.podCIDR');
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`cannot read node "${this.nodeName}"`, { cause: error });
        // 404 is the normal case until the agent registers the Node: say so, without the error dump.
        if ((error as { code?: unknown }).code === 404) this.options.log.info({ node: this.nodeName }, 'waiting for the node to be registered');
        else this.options.log.warn({ err: error, node: this.nodeName }, 'cannot read node yet');
      }
      if (Date.now() > deadline) throw new Error(`node "${this.nodeName}" got no spec.podCIDR within the timeout`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  /** Status patch with the annotations, as flannel's kube subnet manager (PatchNodeStatus). */
  private async publish(vtepMac: string): Promise<void> {
    const body = { metadata: { annotations: ownAnnotations(this.options.netConf.Backend.VNI, vtepMac, this.underlay!.ip) } };
    await this.api.patchNodeStatus({ name: this.nodeName, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  }

  private async startInformer(): Promise<void> {
    // Reconcile only from a complete list (onItems): a partial one would remove adopted peers and flap them.
    this.informer = new Informer<V1Node>({
      kubeConfig: this.options.kubeconfig,
      path: '/api/v1/nodes',
      list: (selectors) => this.api.listNode(selectors),
      onItems: (nodes) => {
        this.nodes = new Map(nodes.map((node) => [node.metadata?.name ?? '', toView(node)]));
        this.synced = true;
        this.schedule();
      },
      what: 'Nodes',
      log: this.options.log,
    });
    await this.informer.start();
  }

  /** Serialises reconciles; each one works from the latest node set. */
  private schedule(): void {
    if (!this.synced) return;
    this.reconciling = this.reconciling.then(() => (this.stopped ? undefined : this.reconcile())).catch((error: unknown) => {
      this.options.log.error({ err: error }, 'peer reconcile failed; retrying');
      setTimeout(() => this.schedule(), 2000).unref();
    });
  }

  private async reconcile(): Promise<void> {
    const { netConf, log } = this.options;
    const desired = desiredPeers([...this.nodes.values()], this.nodeName, netConf.Network, netConf.Backend.VNI);
    const { add, remove } = planPeers(this.programmed, desired);
    for (const peer of remove) {
      const current = this.programmed.get(peer.subnet)!;
      if (current.direct) await removeDirectPeer(this.ip, this.underlay!, peer.subnet);
      else await removeVxlanPeer(this.ip, this.device, peer);
      this.programmed.delete(peer.subnet);
      log.info({ peer: peer.node, subnet: peer.subnet }, 'peer removed');
    }
    for (const peer of add) {
      const direct = netConf.Backend.DirectRouting && sameL2(this.underlay!.cidr, peer.publicIp);
      if (direct) await addDirectPeer(this.ip, this.underlay!, peer);
      else await addVxlanPeer(this.ip, this.device, peer);
      this.programmed.set(peer.subnet, { ...peer, direct });
      log.info({ peer: peer.node, subnet: peer.subnet, direct }, 'peer programmed');
    }
  }

  /**
   * Adopts entries from a previous run: each is recorded as programmed, so the first reconcile
   * keeps what is still wanted (no flap) and removes what is not.
   */
  private async removeStale(): Promise<void> {
    const entries = await readVxlanEntries(this.ip, this.device);
    for (const subnet of entries.routes) {
      const neighbour = entries.neighbours.find((n) => n.ip === vtepAddress(subnet));
      const fdb = entries.fdb.find((entry) => entry.mac === neighbour?.mac);
      const vtepMac = neighbour?.mac ?? '00:00:00:00:00:00';
      this.programmed.set(subnet, { node: '(previous run)', subnet, publicIp: fdb?.dst ?? '', vtepMac, vni: this.options.netConf.Backend.VNI, direct: false });
    }
    const known = new Set(entries.routes.map((subnet) => vtepAddress(subnet)));
    for (const neighbour of entries.neighbours.filter((n) => !known.has(n.ip))) {
      await removeVxlanPeer(this.ip, this.device, { subnet: `${neighbour.ip}/32`, vtepMac: neighbour.mac });
    }
  }
}
