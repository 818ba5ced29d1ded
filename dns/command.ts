/**
 * `knode dns`: flags (and the kubelet's KubeletConfiguration for clusterDomain/clusterDNS, so the
 * server serves the domain pods search and publishes itself at the address in their
 * resolv.conf) → DnsDaemon. Flags win over the kubelet config. The why of the component and of
 * how pods reach it: ./daemon.ts and ./publish.ts.
 */
import { availableParallelism, hostname } from 'node:os';
import { isIP } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { CoreV1Api } from '../lib/kube-client.js';
import type { Runner } from '../lib/command-options.js';
import { optionalString, requireKubeconfig } from '../lib/command-options.js';
import { loadKubeconfig } from '../lib/config/kubeconfig.js';
import { loadKubeletConfig } from '../lib/config/kubelet.js';
import { notifyReady } from '../lib/sd-notify.js';
import { ConfigError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { DnsDaemon } from './daemon.js';
import { loadResolvConf } from './resolv-conf.js';

const domainPattern = /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

/** The node's InternalIP from its Node object (registered by the agent), waiting up to 2 min. */
async function nodeAddress(kubeConfig: KubeConfig, nodeName: string, log: Logger): Promise<string> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const node = await core.readNode({ name: nodeName });
      const address = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
      if (address) return address;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`node ${nodeName} has no InternalIP (pass --bind-address)`, { cause: error });
    }
    if (Date.now() > deadline) throw new Error(`node ${nodeName} has no InternalIP (pass --bind-address)`);
    log.info({ node: nodeName }, 'waiting for the node\'s InternalIP');
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

export const run: Runner = async (options, log) => {
  const kubeconfigFile = requireKubeconfig(options);
  const { config, warnings } = loadKubeletConfig(optionalString(options, 'kubeletConfig'));
  for (const warning of warnings) log.warn(warning);
  const clusterDomain = (optionalString(options, 'clusterDomain') || config.clusterDomain || 'cluster.local').toLowerCase().replace(/\.$/, '');
  if (!domainPattern.test(clusterDomain)) throw new ConfigError(`--cluster-domain "${clusterDomain}": not a DNS domain name`);
  const clusterDns = optionalString(options, 'clusterDns') ?? config.clusterDNS[0];
  if (clusterDns !== undefined && !isIP(clusterDns)) throw new ConfigError(`--cluster-dns "${clusterDns}": not an IP address`);
  const port = Number(optionalString(options, 'port') ?? '53');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`--port "${optionalString(options, 'port')}": expected 0-65535`);
  // Two serving processes on a node with two cores or more (./serving.ts says why); more than two
  // would take cores from the pods for little: a node's DNS load is its own pods' lookups.
  const processes = Number(optionalString(options, 'servingProcesses') ?? Math.min(2, availableParallelism()));
  if (!Number.isInteger(processes) || processes < 1 || processes > 64) throw new ConfigError(`--serving-processes "${optionalString(options, 'servingProcesses')}": expected 1-64`);
  let bindAddress = optionalString(options, 'bindAddress');
  if (bindAddress !== undefined && !isIP(bindAddress)) throw new ConfigError(`--bind-address "${bindAddress}": not an IP address`);
  const nodeName = (optionalString(options, 'hostnameOverride') || hostname()).trim().toLowerCase();
  const kubeConfig = await loadKubeconfig(kubeconfigFile);
  bindAddress ??= await nodeAddress(kubeConfig, nodeName, log);
  const upstreams = loadResolvConf(optionalString(options, 'resolvConf') ?? '/etc/resolv.conf', [`${bindAddress}:${port}`, ...(clusterDns ? [clusterDns] : [])]);
  const daemon = new DnsDaemon({
    kubeConfig,
    log,
    nodeName,
    clusterDomain,
    bindAddress,
    port,
    upstreams,
    healthAddress: optionalString(options, 'healthBindAddress') ?? '127.0.0.1:9153',
    publishClusterIP: options.publish === false ? undefined : clusterDns,
    servingProcesses: processes,
  });
  try {
    await daemon.start();
  } catch (error) {
    await daemon.stop().catch(() => undefined);
    throw new Error('the cluster DNS could not start', { cause: error });
  }
  // Ready once synced with the API server (what /ready says); a failed list is logged by the daemon.
  void daemon.ready.then(() => notifyReady(log, `serving DNS on ${bindAddress}:${port}`), () => undefined);
  return { stop: () => daemon.stop() };
};
