/**
 * Container spec hash for change detection, as the kubelet's kubecontainer.HashContainer
 * (pkg/kubelet/container/helpers.go): FNV-1a 32 over the container's encoding, hex. The kubelet
 * stores it in a container label and restarts a running container whose spec hash differs.
 * Resources are left out, as the kubelet does since in-place resize (KEP-1287), and the encoding
 * is key-sorted so that the same spec always hashes the same across restarts of the agent.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { stableJson } from '../sources/static-pod.js';

export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  const bytes = Buffer.from(text, 'utf8');
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

export function containerHash(container: V1Container): string {
  const { resources: _resources, ...rest } = container;
  return fnv1a32(stableJson(rest)).toString(16).padStart(8, '0');
}

/**
 * What makes a sandbox: a change to any of these means the pod's sandbox is recreated
 * (pkg/kubelet/kuberuntime/kuberuntime_manager.go podSandboxChanged: network namespace mode,
 * and in knode also the other sandbox-level settings).
 */
export function sandboxHash(pod: V1Pod): string {
  const spec = pod.spec ?? { containers: [] };
  return fnv1a32(
    stableJson({
      hostNetwork: spec.hostNetwork ?? false,
      hostPID: spec.hostPID ?? false,
      hostIPC: spec.hostIPC ?? false,
      hostname: spec.hostname,
      subdomain: spec.subdomain,
      dnsPolicy: spec.dnsPolicy,
      dnsConfig: spec.dnsConfig,
      hostAliases: spec.hostAliases,
      shareProcessNamespace: spec.shareProcessNamespace,
      ports: [...(spec.initContainers ?? []), ...spec.containers].flatMap((c) => (c.ports ?? []).filter((p) => p.hostPort)),
    }),
  )
    .toString(16)
    .padStart(8, '0');
}
