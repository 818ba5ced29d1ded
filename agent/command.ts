/**
 * `knode agent`: the kubelet. Flags are the kubelet's names (bin/cli.ts); a few settings that a
 * node living inside a network namespace needs, and that the kubelet has no flag for, come from
 * the environment:
 *   KNODE_CNI_HOST_NETNS   run CNI plugins inside this netns (path), e.g. a test node's netns
 *   KNODE_CNI_CACHE_DIR    CNI result cache (default /var/lib/cni)
 *   KNODE_POD_LOGS_DIR     pod log directories (default /var/log/pods)
 *   KNODE_NODE_IP          the node's InternalIP when --node-ip is not given (default: first non-loopback IPv4)
 *   KNODE_RUNTIME_SCOPE    "key=value": a label on everything this agent creates in Docker and
 *                          required on everything it lists (several agents on one engine)
 *   KNODE_CSR_EXPIRATION_SECONDS  spec.expirationSeconds of the agent's CSRs (short-lived
 *                          certificates to exercise rotation; default: the signer's duration)
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Runner } from '../lib/command-options.js';
import { requireKubeconfig, requiredString, optionalString } from '../lib/command-options.js';
import { systemClock } from '../lib/clock.js';
import { ConfigError } from '../lib/errors.js';
import { NodeCertificates } from './certificates/node-certificates.js';
import { loadKubeletConfig } from '../lib/config/kubelet.js';
import { loadKubeconfig } from '../lib/config/kubeconfig.js';
import { notifyReady } from '../lib/sd-notify.js';
import { createDockerRuntime } from '../cri/docker/factory.js';
import { Agent } from './agent.js';
import { cleanupAgent, scopeLabels } from './cleanup.js';
import { agentClients, agentConfig, startHealthz } from './startup.js';

export function positiveSeconds(name: string, text: string): number {
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1) throw new ConfigError(`${name} "${text}": expected a whole number of seconds, at least 1`);
  return Number(text);
}

export const run: Runner = async (options, log) => {
  if (options.cleanup === true) {
    const loaded = loadKubeletConfig(optionalString(options, 'config'));
    const report = await cleanupAgent({
      containerRuntimeEndpoint: optionalString(options, 'containerRuntimeEndpoint') ?? loaded.config.containerRuntimeEndpoint,
      scopeLabels: scopeLabels(process.env.KNODE_RUNTIME_SCOPE),
      cgroupRoot: loaded.config.cgroupRoot,
      cgroupDriver: loaded.config.cgroupDriver,
      log,
    });
    log.info(report, 'removed the agent\'s containers and pod cgroups');
    return;
  }
  const bootstrapKubeconfig = optionalString(options, 'bootstrapKubeconfig');
  // With --bootstrap-kubeconfig, --kubeconfig is where the bootstrapped one goes (it may not exist yet).
  const kubeconfigPath = bootstrapKubeconfig ? requiredString(options, 'kubeconfig', '--kubeconfig') : requireKubeconfig(options);
  const loaded = loadKubeletConfig(optionalString(options, 'config'));
  for (const warning of loaded.warnings) log.warn(warning);
  const { config: settings, nodeIP } = await agentConfig(loaded.config, options, log);
  const nodeName = (optionalString(options, 'hostnameOverride') ?? hostname()).toLowerCase();
  const rootDir = optionalString(options, 'rootDir') ?? '/var/lib/knode/kubelet';
  const env = process.env;
  // TLS bootstrap, the serving certificate and rotation (agent/certificates/node-certificates.ts).
  const { certificates, config } = await NodeCertificates.prepare({
    nodeName,
    config: settings,
    kubeconfig: kubeconfigPath,
    ...(bootstrapKubeconfig ? { bootstrapKubeconfig } : {}),
    certDir: optionalString(options, 'certDir') ?? join(rootDir, 'pki'),
    ...(nodeIP ? { nodeIP } : {}),
    ...(env.KNODE_CSR_EXPIRATION_SECONDS ? { expirationSeconds: positiveSeconds('KNODE_CSR_EXPIRATION_SECONDS', env.KNODE_CSR_EXPIRATION_SECONDS) } : {}),
    clock: systemClock,
    log,
  });
  const { kubeConfig, runtime } = agentClients(config, await loadKubeconfig(kubeconfigPath, log), createDockerRuntime({
    containerRuntimeEndpoint: optionalString(options, 'containerRuntimeEndpoint') ?? config.containerRuntimeEndpoint,
    podInfraContainerImage: optionalString(options, 'podInfraContainerImage'),
    cniConfDir: optionalString(options, 'cniConfDir'),
    cniBinDirs: optionalString(options, 'cniBinDir'),
    cniCacheDir: env.KNODE_CNI_CACHE_DIR,
    cniHostNetns: env.KNODE_CNI_HOST_NETNS,
    sandboxRoot: join(rootDir, 'sandboxes'),
    scopeLabels: scopeLabels(env.KNODE_RUNTIME_SCOPE),
    logMaxSize: config.containerLogMaxSize,
    logMaxFiles: config.containerLogMaxFiles,
    logger: log.child({ part: 'cri' }),
  }));
  if (env.KNODE_CNI_HOST_NETNS) {
    // The kubelet probes from the node's network namespace; here pods are wired in another one.
    log.warn({ netns: env.KNODE_CNI_HOST_NETNS }, 'KNODE_CNI_HOST_NETNS is set: pods are not reachable from the agent\'s network namespace, so httpGet/tcpSocket/grpc probes fail and httpGet hooks are skipped; run the agent inside the node netns (without this variable) for network probes');
  }
  const agent = new Agent({
    nodeName,
    config,
    kubeConfig,
    runtime,
    rootDir,
    podLogsDir: env.KNODE_POD_LOGS_DIR ?? '/var/log/pods',
    ...(nodeIP ? { nodeIP } : {}),
    // Pods wired in another netns cannot be reached from here: no network probes/hooks.
    podNetworkReachable: !env.KNODE_CNI_HOST_NETNS,
    ...(certificates.servingTls ? { servingTls: certificates.servingTls } : {}),
    log,
  });
  await agent.start();
  await certificates.start(kubeConfig, () => agent.server?.reloadTls(), () => agent.node?.identity !== undefined);
  const healthz = await startHealthz(config, log);
  // As the kubelet (daemon.SdNotify READY=1 once started): the kubelet API serves, pod sources run.
  await notifyReady(log, `agent started for node ${nodeName}`);
  return {
    stop: async () => {
      await certificates.stop();
      await agent.stop().finally(() => healthz.stop());
    },
  };
};
