/**
 * `knode join`: where a joined node keeps its files, and what they say. With --data-dir DIR
 * everything is below DIR (config and credentials in DIR/config, as `knode up` keeps its node
 * files); without it, config and credentials go to /etc/knode and state to /var/lib/knode.
 * The config directory is written whole or not at all: it is made beside its place and renamed
 * into it (a previous one is replaced, keeping the node's kubeconfig, i.e. its identity).
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { writeFileAtomic } from '../lib/fs.js';
import { nodeKubeconfigText } from '../lib/config/node-kubeconfig.js';
import { conflistText, kubeProxyConfigText, netConfText, upLayout, type UpLayout, type UpSettings } from './up-config.js';

export interface JoinLayout extends UpLayout {
  configDir: string;
  bootstrapKubeconfig: string;
  /** The node's own kubeconfig (client certificate from TLS bootstrap): agent, proxy, overlay, dns. */
  nodeKubeconfig: string;
  caFile: string;
  certDir: string;
  /** The proxy's and the overlay's own identities (bin/join-credentials.ts). */
  proxyKubeconfig: string;
  overlayKubeconfig: string;
}

export function joinLayout(dataDir: string | undefined): JoinLayout {
  const state = upLayout(dataDir ?? '/var/lib/knode');
  const configDir = dataDir ? join(resolve(dataDir), 'config') : '/etc/knode';
  return {
    ...state,
    configDir,
    kubeconfig: join(configDir, 'kubelet.kubeconfig'),
    nodeKubeconfig: join(configDir, 'kubelet.kubeconfig'),
    bootstrapKubeconfig: join(configDir, 'bootstrap-kubelet.kubeconfig'),
    caFile: join(configDir, 'pki', 'ca.crt'),
    // the names systemd/knode-*.service read, so that `knode join --systemd` feeds the units
    kubeletConfig: join(configDir, 'kubelet-config.yaml'),
    proxyConfig: join(configDir, 'kube-proxy-config.yaml'),
    netConf: join(configDir, 'net-conf.json'),
    certDir: join(state.kubeletRoot, 'pki'),
    proxyKubeconfig: join(configDir, 'proxy.kubeconfig'),
    overlayKubeconfig: join(configDir, 'overlay.kubeconfig'),
  };
}

/**
 * The joined kubelet's configuration, as kubeadm writes it (/var/lib/kubelet/config.yaml):
 * client certificates verified against the cluster CA, anonymous off, client certificate
 * rotation on, and a serving certificate from a kubelet-serving CSR (serverTLSBootstrap) so that
 * the control plane can verify the kubelet with the cluster CA. Authorization is AlwaysAllow
 * because the knode control plane serves no SubjectAccessReview API yet: anyone holding a client
 * certificate of the cluster CA may use this kubelet's API.
 */
function joinKubeletConfigText(layout: JoinLayout, settings: UpSettings): string {
  return stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    staticPodPath: layout.manifests,
    clusterDNS: [settings.clusterDns],
    clusterDomain: 'cluster.local',
    address: '0.0.0.0',
    port: 10250,
    rotateCertificates: true,
    serverTLSBootstrap: true,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: layout.caFile } },
    authorization: { mode: 'AlwaysAllow' },
  });
}

interface JoinFiles {
  server: string;
  token: string;
  caPem: string;
}

/** Writes the config directory in one rename; nothing is left half-written on error. */
export function writeJoinConfig(layout: JoinLayout, settings: UpSettings, files: JoinFiles): void {
  const staging = `${layout.configDir}.tmp-${process.pid}`;
  const at = (file: string) => join(staging, file.slice(layout.configDir.length + 1));
  const previous = `${layout.configDir}.old-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  try {
    mkdirSync(join(staging, 'pki'), { recursive: true, mode: 0o700 });
    writeFileAtomic(at(layout.caFile), files.caPem);
    writeFileAtomic(at(layout.bootstrapKubeconfig), nodeKubeconfigText({ server: files.server, caPem: files.caPem, token: files.token }), { mode: 0o600 });
    writeFileAtomic(at(layout.kubeletConfig), joinKubeletConfigText(layout, settings));
    writeFileAtomic(at(layout.proxyConfig), kubeProxyConfigText({ ...layout, kubeconfig: layout.proxyKubeconfig }, settings));
    writeFileAtomic(at(layout.netConf), netConfText(settings));
    // The node's identities survive a new join into the same place (renewed only when expiring).
    for (const file of [layout.nodeKubeconfig, layout.proxyKubeconfig, layout.overlayKubeconfig]) if (existsSync(file)) copyFileSync(file, at(file));
    mkdirSync(resolve(layout.configDir, '..'), { recursive: true });
    if (existsSync(layout.configDir)) renameSync(layout.configDir, previous);
    renameSync(staging, layout.configDir);
    rmSync(previous, { recursive: true, force: true });
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(layout.configDir) && existsSync(previous)) renameSync(previous, layout.configDir);
    throw new Error(`cannot write the node's configuration to ${layout.configDir}`, { cause: error });
  }
  for (const dir of [layout.logs, layout.runDir, layout.cniConfDir, layout.podLogs]) mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(layout.cniConfDir, '10-knode.conflist'), conflistText(layout));
}
