/**
 * detectLocalMode NodeCIDR (kube-proxy pkg/proxy/util/localdetector.go, cmd/kube-proxy
 * waitForPodCIDR): traffic from this node's pod CIDR (the Node's spec.podCIDR) is local, instead
 * of traffic from the whole clusterCIDR. The proxy waits (bounded) for the Node to have one, as
 * kube-proxy does before it builds its rules. The CIDR then takes clusterCIDR's place for every
 * mode (it is only used to tell local pod traffic from the rest).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { CoreV1Api } from '../lib/kube-client.js';
import type { Logger } from '../lib/log.js';
import { describeError } from '../lib/errors.js';
import { isValidCIDR } from '../lib/net.js';

export async function waitForNodePodCIDR(kubeConfig: KubeConfig, nodeName: string, log: Logger, timeoutMs = 120_000, pollMs = 1000): Promise<string> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  let last = 'the Node has no spec.podCIDR';
  for (;;) {
    try {
      const node = await core.readNode({ name: nodeName });
      const cidrs = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
      const ipv4 = cidrs.find((cidr) => cidr.includes('.') && isValidCIDR(cidr));
      if (ipv4) return ipv4;
    } catch (error) {
      last = describeError(error);
    }
    if (Date.now() >= deadline) throw new Error(`detectLocalMode NodeCIDR: no pod CIDR for node "${nodeName}" within ${Math.round(timeoutMs / 1000)}s (${last})`);
    log.info({ node: nodeName }, 'detectLocalMode NodeCIDR: waiting for the Node\'s spec.podCIDR');
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
