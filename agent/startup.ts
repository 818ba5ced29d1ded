/**
 * What `knode agent` does before and around the Agent, kept out of agent.ts (which only wires
 * parts): the kubelet flags over the config, the one start-up warning naming the settings knode
 * does not implement (lib/config/support-kubelet.ts), failSwapOn, kubeAPIQPS/kubeAPIBurst on
 * the API client, runtimeRequestTimeout and the image pull queue on the runtime, and the
 * healthz server (healthzBindAddress:healthzPort).
 */
import Docker from 'dockerode';
import type { KubeConfig } from '@kubernetes/client-node';
import { ConfigError } from '../lib/errors.js';
import { socketPathOf } from '../cri/docker/factory.js';
import type { CommandOptions } from '../lib/command-options.js';
import { optionalString } from '../lib/command-options.js';
import type { KubeletConfiguration } from '../lib/config/kubelet.js';
import { kubeletUnimplemented } from '../lib/config/support-kubelet.js';
import { warnUnimplemented } from '../lib/config/support.js';
import { rateLimitKubeConfig } from '../lib/kube-rate-limit.js';
import type { Logger } from '../lib/log.js';
import type { ContainerRuntime } from '../cri/runtime.js';
import { applyRuntimePolicies } from '../cri/runtime-policies.js';
import { applyAgentFlags, parseNodeIP } from './flags.js';
import { checkSwap } from './node/swap.js';
import { HealthzServer } from './server/healthz.js';

/** The effective config (file + flags); warns once about unimplemented settings; checks swap. */
export async function agentConfig(file: KubeletConfiguration, options: CommandOptions, log: Logger): Promise<{ config: KubeletConfiguration; nodeIP?: string }> {
  const config = applyAgentFlags(file, { nodeLabels: optionalString(options, 'nodeLabels'), registerWithTaints: optionalString(options, 'registerWithTaints') });
  const nodeIPFlag = optionalString(options, 'nodeIp');
  const nodeIP = nodeIPFlag !== undefined ? parseNodeIP(nodeIPFlag) : process.env.KNODE_NODE_IP;
  warnUnimplemented(log, 'KubeletConfiguration', kubeletUnimplemented(config));
  const endpoint = optionalString(options, 'containerRuntimeEndpoint') ?? config.containerRuntimeEndpoint;
  checkCgroupDriver(config.cgroupDriver, await dockerCgroupDriver(endpoint, log));
  const swaps = await checkSwap(config.failSwapOn);
  if (swaps.length > 0) log.warn({ swaps }, 'swap is on and failSwapOn is false: containers with a memory limit get no swap (memory+swap = the limit, the kubelet\'s NoSwap behaviour); containers without one may swap');
  return { config, ...(nodeIP ? { nodeIP } : {}) };
}

/** The agent's API client with kubeAPIQPS/kubeAPIBurst, and its runtime with the CRI policies. */
export function agentClients<R extends ContainerRuntime>(config: KubeletConfiguration, kubeConfig: KubeConfig, runtime: R): { kubeConfig: KubeConfig; runtime: R } {
  rateLimitKubeConfig(kubeConfig, config.kubeAPIQPS, config.kubeAPIBurst);
  const wrapped = applyRuntimePolicies(runtime, {
    runtimeRequestTimeoutMs: config.runtimeRequestTimeout,
    serializeImagePulls: config.serializeImagePulls,
    maxParallelImagePulls: config.maxParallelImagePulls,
    registryPullQPS: config.registryPullQPS,
    registryBurst: config.registryBurst,
  });
  return { kubeConfig, runtime: wrapped };
}

export async function startHealthz(config: KubeletConfiguration, log: Logger): Promise<HealthzServer> {
  const server = new HealthzServer({ bindAddress: config.healthzBindAddress, port: config.healthzPort, log: log.child({ part: 'healthz' }) });
  await server.start();
  return server;
}

/**
 * cgroupDriver must be the container runtime's (dockershim's check, and the kubelet's with a CRI
 * that reports its driver): "misconfiguration: kubelet cgroup driver: "systemd" is different
 * from docker cgroup driver: "cgroupfs"". An unknown runtime driver (runtime down) is not an error.
 */
export function checkCgroupDriver(configured: string, runtime: string | undefined): void {
  if (runtime && runtime !== configured) {
    throw new ConfigError(`misconfiguration: kubelet cgroup driver: "${configured}" is different from docker cgroup driver: "${runtime}" (set cgroupDriver: ${runtime} in the KubeletConfiguration)`);
  }
}

/** Docker's cgroup driver (docker info CgroupDriver); undefined when Docker does not answer. */
async function dockerCgroupDriver(endpoint: string, log: Logger): Promise<string | undefined> {
  try {
    const info = (await new Docker({ socketPath: socketPathOf(endpoint), timeout: 10_000 }).info()) as { CgroupDriver?: string };
    return info.CgroupDriver;
  } catch (error) {
    log.warn({ err: error }, 'cannot ask Docker for its cgroup driver; cgroupDriver is not checked');
    return undefined;
  }
}
