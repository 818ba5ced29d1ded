/**
 * `knode up`: where everything lives under --data-dir and the config files each component reads.
 * Pure (no I/O) except `writeUpConfigs`, which writes the rendered files.
 *
 * Everything is data-dir-local (CNI bin/conf/cache/IPAM dirs, subnet.env, pod logs) instead of
 * /opt/cni/bin, /etc/cni/net.d, /run/flannel and /var/log/pods, so that one `up` is hermetic,
 * `knode down --purge` knows exactly what to remove, and a test can run it in a netns.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from '../lib/fs.js';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { defaultConflist } from '../cni/install-command.js';

export interface UpLayout {
  dataDir: string;
  controlplaneDir: string;
  kubeconfig: string;
  manifests: string;
  logs: string;
  kubeletConfig: string;
  kubeletRoot: string;
  /** CA, kubelet serving and API-server client certificates (lib/kubelet-pki.ts). */
  kubeletPki: string;
  proxyConfig: string;
  netConf: string;
  runDir: string;
  subnetFile: string;
  cniSocket: string;
  cniBinDir: string;
  cniConfDir: string;
  cniCacheDir: string;
  ipamDir: string;
  podLogs: string;
  pidFile: string;
}

export function upLayout(dataDirArg: string): UpLayout {
  const dataDir = resolve(dataDirArg);
  const at = (...parts: string[]) => join(dataDir, ...parts);
  return {
    dataDir,
    controlplaneDir: at('controlplane'),
    kubeconfig: at('controlplane', 'admin.kubeconfig'),
    manifests: at('manifests'),
    logs: at('logs'),
    kubeletConfig: at('config', 'kubelet.yaml'),
    kubeletRoot: at('kubelet'),
    kubeletPki: at('pki', 'kubelet'),
    proxyConfig: at('config', 'kube-proxy.yaml'),
    netConf: at('config', 'net-conf.json'),
    runDir: at('run'),
    subnetFile: at('run', 'subnet.env'),
    cniSocket: at('run', 'knode-cni.sock'),
    cniBinDir: at('cni', 'bin'),
    cniConfDir: at('cni', 'net.d'),
    cniCacheDir: at('cni', 'cache'),
    ipamDir: at('cni', 'ipam'),
    podLogs: at('pod-logs'),
    pidFile: at('knode-up.pid'),
  };
}

export interface UpSettings {
  nodeName: string;
  clusterCidr: string;
  serviceCidr: string;
  /** The cluster DNS address the kubelet writes into pods' resolv.conf (10th address of the service CIDR, as kubeadm). */
  clusterDns: string;
  listen: string;
  /** The proxy's dataplane (`knode up --proxy-mode`). */
  proxyMode?: 'iptables' | 'nftables';
}

/** The runtime scope label of one `up` data dir: every container its agent creates carries it. */
export function runtimeScopeFor(dataDir: string): string {
  return `io.knode.up=${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12)}`;
}

/** kubeadm's choice for the DNS Service: the 10th address of the service CIDR. */
export function tenthAddress(cidr: string): string {
  const [base, bits] = cidr.split('/');
  const octets = base!.split('.').map(Number);
  const prefix = Number(bits ?? 32);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const value = (((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) & mask) >>> 0;
  const dns = value + 10;
  return [dns >>> 24, (dns >>> 16) & 255, (dns >>> 8) & 255, dns & 255].join('.');
}

/**
 * KubeletConfiguration (kubelet.config.k8s.io/v1beta1). The kubelet API listens on every address
 * (the kubelet's default) so that the control plane reaches it at the node's InternalIP for
 * `kubectl logs/exec`, over TLS with client certificates only, as kubeadm sets a kubelet up:
 * anonymous off, the control plane's client certificate signed by the CA in `clientCAFile`.
 * That CA is the cluster CA, which also signs joined nodes' certificates, so every request is
 * authorized with a SubjectAccessReview (mode Webhook, bearer tokens with a TokenReview), as
 * kubeadm configures the kubelet: only system:masters (the API server's kubelet client) passes.
 */
export function kubeletConfigText(layout: UpLayout, settings: UpSettings): string {
  return stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    staticPodPath: layout.manifests,
    fileCheckFrequency: '5s',
    clusterDNS: [settings.clusterDns],
    clusterDomain: 'cluster.local',
    address: '0.0.0.0',
    port: 10250,
    tlsCertFile: join(layout.kubeletPki, 'kubelet.crt'),
    tlsPrivateKeyFile: join(layout.kubeletPki, 'kubelet.key'),
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: join(layout.kubeletPki, 'ca.crt') } },
    authorization: { mode: 'Webhook' },
  });
}

/** KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1). */
export function kubeProxyConfigText(layout: UpLayout, settings: UpSettings): string {
  return stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: settings.proxyMode ?? 'iptables',
    clusterCIDR: settings.clusterCidr,
    hostnameOverride: settings.nodeName,
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    clientConnection: { kubeconfig: layout.kubeconfig },
  });
}

/** flannel's net-conf.json (kube-flannel.yml's ConfigMap): Network = the control plane's --cluster-cidr. */
export function netConfText(settings: UpSettings): string {
  return JSON.stringify({ Network: settings.clusterCidr, Backend: { Type: 'vxlan' } }, null, 2) + '\n';
}

/** install-cni's default conflist, with the plugin's files moved under the data dir. */
export function conflistText(layout: UpLayout): string {
  const conflist = defaultConflist() as { plugins: Record<string, unknown>[] } & Record<string, unknown>;
  conflist.plugins = conflist.plugins.map((plugin) => (plugin.type === 'knode' ? { ...plugin, subnetFile: layout.subnetFile, dataDir: layout.ipamDir } : plugin));
  return JSON.stringify(conflist, null, 2) + '\n';
}

/** The example static pod: busybox httpd serving a hello page on 8080. */
export function examplePodText(image: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'hello', namespace: 'default', labels: { app: 'hello' } },
    spec: {
      terminationGracePeriodSeconds: 2,
      containers: [
        {
          name: 'httpd',
          image,
          command: ['sh', '-c', 'mkdir -p /tmp/www && echo "hello from knode" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www'],
          ports: [{ containerPort: 8080, name: 'http' }],
        },
      ],
    },
  });
}


/** Writes the kubelet, kube-proxy and flannel configs and the CNI conflist (always: flags may have changed). */
export function writeUpConfigs(layout: UpLayout, settings: UpSettings): void {
  for (const dir of [join(layout.dataDir, 'config'), layout.logs, layout.runDir, layout.cniConfDir, layout.podLogs]) mkdirSync(dir, { recursive: true });
  writeFileAtomic(layout.kubeletConfig, kubeletConfigText(layout, settings));
  writeFileAtomic(layout.proxyConfig, kubeProxyConfigText(layout, settings));
  writeFileAtomic(layout.netConf, netConfText(settings));
  writeFileAtomic(join(layout.cniConfDir, '10-knode.conflist'), conflistText(layout));
}

/** Picks the overlay interface from `ip -4 -o route show default` and `ip -4 -o addr show` output. Pure. */
export function chooseInterface(defaultRoutes: string, addresses: string): { iface: string; address: string } | undefined {
  const withAddress = new Map<string, string>();
  for (const line of addresses.split('\n')) {
    const match = /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\/\d+/.exec(line.trim());
    if (match && match[1] !== 'lo' && !withAddress.has(match[1]!)) withAddress.set(match[1]!, match[2]!);
  }
  const viaDefault = /\bdev\s+(\S+)/.exec(defaultRoutes)?.[1];
  if (viaDefault && withAddress.has(viaDefault)) return { iface: viaDefault, address: withAddress.get(viaDefault)! };
  for (const [iface, address] of withAddress) {
    if (iface === 'cni0' || iface.startsWith('flannel.')) continue;
    return { iface, address };
  }
  return undefined;
}
