/**
 * Pod priority and criticality (pkg/apis/scheduling: SystemCriticalPriority;
 * pkg/kubelet/types/pod_update.go IsCriticalPod): static, mirror, and pods at or above
 * system-critical priority are critical — never evicted, the lowest OOM score, admitted under
 * pressure.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { isMirrorPod, isStaticPod } from './pod-source.js';

/** scheduling.SystemCriticalPriority. */
export const systemCriticalPriority = 2_000_000_000;

export function podPriority(pod: V1Pod): number {
  return pod.spec?.priority ?? 0;
}

/** kubetypes.IsCriticalPod. */
export function isCriticalPod(pod: V1Pod): boolean {
  return isStaticPod(pod) || isMirrorPod(pod) || podPriority(pod) >= systemCriticalPriority;
}
