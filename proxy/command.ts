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
  const daemon = new ProxyDaemon({ config, mode, kubeConfig: await loadKubeconfig(kubeconfigFile, log), nodeName, log });
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
