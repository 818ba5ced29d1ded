/**
 * Pod readiness from container readiness (kubelet pkg/kubelet/status generate.go):
 * ContainersReady is True when every container is ready; Ready is True when, in addition,
 * every readiness gate's condition is True (KEP-580 pod readiness gates,
 * https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-readiness-gate).
 * Pure: the agent calls it on the status that ProbeManager.updatePodStatus filled in.
 */
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';

export interface ReadinessVerdict {
  containersReady: boolean;
  ready: boolean;
  /** Reason/message as the kubelet writes them when not ready. */
  reason?: 'ContainersNotReady' | 'ReadinessGatesNotReady' | 'PodCompleted';
  message?: string;
}

export function podReadiness(pod: V1Pod, status: V1PodStatus): ReadinessVerdict {
  if (status.phase === 'Succeeded') return { containersReady: false, ready: false, reason: 'PodCompleted' };
  const byName = new Map((status.containerStatuses ?? []).map((container) => [container.name, container]));
  const unready = (pod.spec?.containers ?? []).map((container) => container.name).filter((name) => byName.get(name)?.ready !== true);
  if (unready.length > 0) {
    const message = `containers with unready status: [${unready.join(' ')}]`;
    return { containersReady: false, ready: false, reason: 'ContainersNotReady', message };
  }
  const conditions = new Map((status.conditions ?? []).map((condition) => [condition.type, condition.status]));
  const gates = (pod.spec?.readinessGates ?? []).map((gate) => gate.conditionType);
  const missing = gates.filter((type) => conditions.get(type) !== 'True');
  if (missing.length > 0) {
    return { containersReady: true, ready: false, reason: 'ReadinessGatesNotReady', message: `corresponding condition of pod readiness gate ${missing.map((type) => `"${type}"`).join(', ')} does not exist or is not True.` };
  }
  return { containersReady: true, ready: true };
}
