/**
 * KubeProxyConfiguration: every accepted field, honoured (with the test that proves it) or not
 * implemented (named in the proxy's one start-up warning when set). See lib/config/support.ts.
 */
import { loadKubeProxyConfig, type KubeProxyConfiguration } from './kubeproxy.js';
import { unimplementedSettings, type FieldSupport, type SupportTable } from './support.js';

const h = (test: string, name: string, note?: string): FieldSupport => ({ status: 'honoured', test, name, ...(note ? { note } : {}) });
const no = (note?: string, except?: readonly unknown[]): FieldSupport => ({ status: 'not implemented', ...(note ? { note } : {}), ...(except ? { except } : {}) });

const daemonTest = 'test/integration/proxy-daemon.test.ts';
const settings = 'test/unit/proxy-settings.test.ts';
const conntrack = 'test/integration/proxy-conntrack-sysctl.test.ts';
const scheduler = 'test/unit/proxy-scheduler.test.ts';

export const kubeProxySupport: SupportTable = {
  bindAddress: no('the node IP comes from the Node object; the servers use healthzBindAddress and metricsBindAddress'),
  healthzBindAddress: h(daemonTest, 'healthz, livez, metrics and the health check node port of a Local service'),
  metricsBindAddress: h(daemonTest, 'healthz, livez, metrics and the health check node port of a Local service'),
  bindAddressHardFail: no(),
  enableProfiling: no(),
  clusterCIDR: h(settings, 'clusterCIDR decides which sources are masqueraded'),
  hostnameOverride: h(daemonTest, "'--hostname-override', 'node-a'", 'the flag and the field (flag wins)'),
  'clientConnection.kubeconfig': h('test/unit/up-config.test.ts', 'renders the kubelet, kube-proxy, flannel and CNI configs', '`knode up` starts the proxy with it and no --kubeconfig'),
  'clientConnection.qps': h('test/integration/agent-settings.test.ts', 'kubeAPIQPS/kubeAPIBurst hold API requests beyond the burst', 'the same token bucket as the kubelet'),
  'clientConnection.burst': h('test/integration/agent-settings.test.ts', 'kubeAPIQPS/kubeAPIBurst hold API requests beyond the burst', 'the same token bucket as the kubelet'),
  mode: h('test/integration/proxy-modes.test.ts', 'cleanup removes what the mode made', 'iptables, nftables; ipvs where the kernel has IPVS'),
  'iptables.masqueradeAll': h(settings, 'masqueradeAll masquerades pod traffic to a ClusterIP too', 'also used by the ipvs mode'),
  'iptables.masqueradeBit': h(settings, 'masqueradeBit picks the fwmark bit', 'also used by the ipvs mode'),
  'iptables.localhostNodePorts': h(settings, 'true: a NodePort answers on 127.0.0.1, masqueraded', 'iptables mode: true sets route_localnet in the proxy\'s netns (test/integration/proxy-conntrack-sysctl.test.ts) and drops outside packets to 127.0.0.0/8; false excludes 127.0.0.0/8'),
  'iptables.syncPeriod': h(daemonTest, 'rules deleted by hand come back at the next full sync (syncPeriod 5 s)'),
  'iptables.minSyncPeriod': h(scheduler, 'batches a burst of changes into at most one sync per minSyncPeriod'),
  'nftables.masqueradeAll': h('test/unit/proxy-nftables.test.ts', 'ClusterIP and NodePort: dispatch elements', 'nftables mode'),
  'nftables.masqueradeBit': h('test/unit/proxy-nftables.test.ts', 'ClusterIP and NodePort: dispatch elements', 'nftables mode'),
  'nftables.syncPeriod': h(scheduler, 'batches a burst of changes into at most one sync per minSyncPeriod', 'nftables mode'),
  'nftables.minSyncPeriod': h(scheduler, 'batches a burst of changes into at most one sync per minSyncPeriod', 'nftables mode'),
  'ipvs.syncPeriod': h(scheduler, 'batches a burst of changes into at most one sync per minSyncPeriod', 'ipvs mode'),
  'ipvs.minSyncPeriod': h(scheduler, 'batches a burst of changes into at most one sync per minSyncPeriod', 'ipvs mode'),
  'ipvs.scheduler': h('test/unit/proxy-ipvs.test.ts', 'a virtual server per service IP and node IP', 'ipvs mode'),
  'ipvs.excludeCIDRs': no(),
  'ipvs.strictARP': h(conntrack, 'ipvs.strictARP sets arp_ignore/arp_announce in its own netns', 'ipvs mode'),
  'ipvs.tcpTimeout': no(),
  'ipvs.tcpFinTimeout': no(),
  'ipvs.udpTimeout': no(),
  'conntrack.maxPerCore': h(conntrack, 'nf_conntrack_max', 'read-only outside the initial netns on current kernels: then a warning'),
  'conntrack.min': h(conntrack, 'nf_conntrack_max', 'read-only outside the initial netns on current kernels: then a warning'),
  'conntrack.tcpEstablishedTimeout': h(conntrack, 'sets the conntrack timeouts of its own network namespace only'),
  'conntrack.tcpCloseWaitTimeout': h(conntrack, 'sets the conntrack timeouts of its own network namespace only'),
  'conntrack.udpTimeout': h(conntrack, 'sets the conntrack timeouts of its own network namespace only'),
  'conntrack.udpStreamTimeout': h(conntrack, 'sets the conntrack timeouts of its own network namespace only'),
  nodePortAddresses: h('test/unit/proxy-iptables-rules.test.ts', 'nodePortAddresses limits NodePorts to local addresses in those CIDRs', 'iptables mode; nftables mode warns that it is not honoured'),
  oomScoreAdj: no(),
  configSyncPeriod: no('the informers do not resync'),
  portRange: no('deprecated and ignored upstream too'),
  detectLocalMode: no('ClusterCIDR (the default) and NodeCIDR (the Node\'s spec.podCIDR, proxy/detect-local.ts, test/integration/proxy-detect-local.test.ts) work; BridgeInterface and InterfaceNamePrefix do not', ['ClusterCIDR', 'NodeCIDR']),
  featureGates: no('knode has no feature gates'),
};

let defaults: KubeProxyConfiguration | undefined;

/** Not-implemented fields this config sets to something other than the default. */
export function kubeProxyUnimplemented(config: KubeProxyConfiguration): string[] {
  defaults ??= loadKubeProxyConfig().config;
  return unimplementedSettings(config, defaults, kubeProxySupport);
}
