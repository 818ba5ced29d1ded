/**
 * `knode proxy` (kube-proxy): flags and KubeProxyConfiguration → ProxyDaemon, or `--cleanup`.
 * Flags win over the config file, as in kube-proxy.
 */
import { hostname } from 'node:os';
import type { Runner } from '../lib/command-options.js';
import { optionalString, requireKubeconfig } from '../lib/command-options.js';
import { loadKubeProxyConfig } from '../lib/config/kubeproxy.js';
import { loadKubeconfig } from '../lib/config/kubeconfig.js';
import { notifyReady } from '../lib/sd-notify.js';
import { ProxyDaemon } from './daemon.js';
import { cleanupProxy } from './cleanup.js';
import { applyConntrackSysctls } from './conntrack-sysctl.js';
import { ensureRouteLocalnet, ensureStrictARP } from './sysctls.js';
import { waitForNodePodCIDR } from './detect-local.js';
import { kubeProxyUnimplemented } from '../lib/config/support-kubeproxy.js';
import { warnUnimplemented } from '../lib/config/support.js';
import { rateLimitKubeConfig } from '../lib/kube-rate-limit.js';

export const run: Runner = async (options, log) => {
  const { config, warnings } = loadKubeProxyConfig(optionalString(options, 'config'));
  for (const warning of warnings) log.warn(warning);
  if (options.cleanup) {
    const cleaned = await cleanupProxy();
    log.info({ backends: cleaned }, 'removed every iptables chain and rule and the nftables table of the proxy');
    return;
  }
  const kubeconfigFile = optionalString(options, 'kubeconfig') || config.clientConnection.kubeconfig;
  requireKubeconfig({ kubeconfig: kubeconfigFile });
  const requested = optionalString(options, 'proxyMode') ?? config.mode;
  const mode = requested === 'ipvs' || requested === 'nftables' ? requested : 'iptables';
  const nodeName = (optionalString(options, 'hostnameOverride') || config.hostnameOverride || hostname()).trim().toLowerCase();
  warnUnimplemented(log, 'KubeProxyConfiguration', kubeProxyUnimplemented(config));
  await applyConntrackSysctls(config.conntrack, log);
  if (mode === 'iptables' && config.iptables.localhostNodePorts) await ensureRouteLocalnet(log);
  if (mode === 'ipvs' && config.ipvs.strictARP) await ensureStrictARP(log);
  const kubeConfig = await loadKubeconfig(kubeconfigFile, log);
  // clientConnection.qps/burst: client-go's rate limiter on the proxy's API client.
  rateLimitKubeConfig(kubeConfig, config.clientConnection.qps, config.clientConnection.burst);
  // detectLocalMode NodeCIDR: the node's pod CIDR tells local traffic instead of clusterCIDR.
  const effective = config.detectLocalMode === 'NodeCIDR' ? { ...config, clusterCIDR: await waitForNodePodCIDR(kubeConfig, nodeName, log) } : config;
  const daemon = new ProxyDaemon({ config: effective, mode, kubeConfig, nodeName, log });
  try {
    await daemon.start();
  } catch (error) {
    await daemon.stop().catch(() => undefined);
    throw new Error('the service proxy could not start', { cause: error });
  }
  // Ready = Services and EndpointSlices listed, sync loop and /healthz running.
  await notifyReady(log, `proxy synced (${mode})`);
  return { stop: () => daemon.stop() };
};
