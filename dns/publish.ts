/**
 * How pods reach this node's DNS server at the kubelet's clusterDNS address (10.96.0.10, the
 * 10th address of the service CIDR as kubeadm picks it):
 *  - a `kube-dns` Service in kube-system with that ClusterIP, ports 53/UDP and 53/TCP, no
 *    selector and `internalTrafficPolicy: Local` (KEP-2086), created here when missing;
 *  - one EndpointSlice per node (`kube-dns-<node>`, managed-by `knode-dns`, so the endpointslice
 *    controller leaves it alone) with this node's address and nodeName.
 * Every node's proxy then DNATs 10.96.0.10:53 to the endpoint on its own node only, so a query
 * never leaves the node and never needs another node, and nothing new is programmed on the node
 * beyond the proxy's usual rules. The alternative, binding 10.96.0.10 on a local dummy device
 * as NodeLocal DNSCache does, needs a link type this project's kernels may lack and rules that
 * bypass the proxy; the Service way also shows up in `kubectl get svc -n kube-system` as a
 * cluster operator expects. If `kube-dns` already exists with a selector (a cluster that runs
 * CoreDNS), it belongs to that DNS and nothing is published.
 */
import type { KubeConfig, V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { CoreV1Api, DiscoveryV1Api } from '../lib/kube-client.js';
import type { Logger } from '../lib/log.js';

const dnsServiceName = 'kube-dns';
const dnsNamespace = 'kube-system';
const managedBy = 'knode-dns';

const codeOf = (error: unknown) => (error as { code?: unknown }).code;

function dnsService(clusterIP: string): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: dnsServiceName, namespace: dnsNamespace, labels: { 'k8s-app': 'kube-dns', 'kubernetes.io/name': 'knode-dns', 'app.kubernetes.io/managed-by': managedBy } },
    spec: {
      clusterIP,
      internalTrafficPolicy: 'Local',
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
      ],
    },
  };
}

function nodeSlice(nodeName: string, address: string, port: number): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${dnsServiceName}-${nodeName}`.slice(0, 253), namespace: dnsNamespace, labels: { 'kubernetes.io/service-name': dnsServiceName, 'endpointslice.kubernetes.io/managed-by': managedBy } },
    addressType: address.includes(':') ? 'IPv6' : 'IPv4',
    endpoints: [{ addresses: [address], nodeName, conditions: { ready: true, serving: true, terminating: false } }],
    ports: [
      { name: 'dns', port, protocol: 'UDP' },
      { name: 'dns-tcp', port, protocol: 'TCP' },
    ],
  };
}

export class DnsPublisher {
  private readonly core: CoreV1Api;
  private readonly discovery: DiscoveryV1Api;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  published = false;

  constructor(
    kubeConfig: KubeConfig,
    private readonly options: { nodeName: string; address: string; port: number; clusterIP: string; log: Logger; retryMs?: number },
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
  }

  /** Publishes in the background, retrying while the API server is unreachable. */
  start(): void {
    const attempt = () => {
      if (this.stopped) return;
      this.publish().then(
        () => undefined,
        (error: unknown) => {
          this.options.log.warn({ err: error }, 'could not publish the kube-dns Service or this node\'s endpoint; retrying');
          if (!this.stopped) this.timer = setTimeout(attempt, this.options.retryMs ?? 2000);
        },
      );
    };
    attempt();
  }

  /** Removes this node's endpoint (best effort, bounded), so the proxy stops sending queries here. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.published) return;
    const name = nodeSlice(this.options.nodeName, this.options.address, this.options.port).metadata!.name!;
    await Promise.race([
      this.discovery.deleteNamespacedEndpointSlice({ name, namespace: dnsNamespace }).catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, 2000).unref()),
    ]);
  }

  private async publish(): Promise<void> {
    const { log, clusterIP, nodeName, address, port } = this.options;
    let service: V1Service;
    try {
      service = await this.core.readNamespacedService({ name: dnsServiceName, namespace: dnsNamespace });
    } catch (error) {
      if (codeOf(error) !== 404) throw new Error('reading Service kube-system/kube-dns failed', { cause: error });
      service = await this.core.createNamespacedService({ namespace: dnsNamespace, body: dnsService(clusterIP) }).catch(async (cause: unknown) => {
        if (codeOf(cause) === 409) return this.core.readNamespacedService({ name: dnsServiceName, namespace: dnsNamespace });
        throw new Error(`creating Service kube-system/kube-dns with ClusterIP ${clusterIP} failed`, { cause });
      });
      log.info({ clusterIP }, 'created Service kube-system/kube-dns');
    }
    if (service.spec?.selector && Object.keys(service.spec.selector).length > 0) {
      log.warn({ selector: service.spec.selector }, 'Service kube-system/kube-dns selects pods of another cluster DNS; not publishing this node');
      return;
    }
    if (service.spec?.clusterIP !== clusterIP) log.warn({ clusterIP: service.spec?.clusterIP, expected: clusterIP }, 'Service kube-system/kube-dns has another ClusterIP than the kubelet\'s clusterDNS');
    const body = nodeSlice(nodeName, address, port);
    const name = body.metadata!.name!;
    try {
      const current = await this.discovery.readNamespacedEndpointSlice({ name, namespace: dnsNamespace });
      body.metadata!.resourceVersion = current.metadata?.resourceVersion;
      await this.discovery.replaceNamespacedEndpointSlice({ name, namespace: dnsNamespace, body });
    } catch (error) {
      if (codeOf(error) !== 404) throw new Error(`updating EndpointSlice kube-system/${name} failed`, { cause: error });
      await this.discovery.createNamespacedEndpointSlice({ namespace: dnsNamespace, body });
    }
    this.published = true;
    log.info({ slice: name, address, port }, 'published this node\'s DNS endpoint for kube-system/kube-dns');
  }
}
