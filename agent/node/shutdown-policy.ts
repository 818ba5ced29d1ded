/**
 * Graceful node shutdown policy (KEP-2000, KEP-2712; kubelet pkg/kubelet/nodeshutdown), pure:
 * - shutdownGroups: the priority groups, from shutdownGracePeriodByPodPriority or from the two
 *   settings (migrateConfig: priority 0 gets shutdownGracePeriod − shutdownGracePeriodCriticalPods,
 *   system-critical priority gets shutdownGracePeriodCriticalPods);
 * - groupPods: each pod joins the group with the highest priority ≤ its own (below every group:
 *   the lowest; groupByPriority). A pod the kubelet calls critical (static, mirror, priority ≥
 *   system-critical: lib/k8s/priority.ts) counts as system-critical priority here, so static
 *   pods without a priority class go last with the critical ones;
 * - podGracePeriodSeconds: the group's period, or the pod's terminationGracePeriodSeconds when
 *   shorter;
 * - shutdownPodStatus: the status of a pod terminated by the shutdown (phase Failed, reason
 *   Terminated, the DisruptionTarget condition with reason TerminationByKubelet).
 */
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { isCriticalPod, podPriority, systemCriticalPriority } from '../../lib/k8s/priority.js';

/** nodeshutdown_manager_linux.go. */
const nodeShutdownReason = 'Terminated';
const nodeShutdownMessage = 'Pod was terminated in response to imminent node shutdown.';
export const nodeShutdownNotAdmittedReason = 'NodeShutdown';
export const nodeShutdownNotAdmittedMessage = 'Pod was rejected as the node is shutting down.';
/** The Ready condition's message while shutting down (ShutdownStatus). */
export const nodeShuttingDownMessage = 'node is shutting down';

export interface ShutdownGroup {
  priority: number;
  shutdownGracePeriodSeconds: number;
}

interface ShutdownSettings {
  /** ms, as the configuration loads durations. */
  shutdownGracePeriod: number;
  shutdownGracePeriodCriticalPods: number;
  shutdownGracePeriodByPodPriority: readonly ShutdownGroup[];
}

/** The groups, lowest priority first; empty: graceful shutdown is off. */
export function shutdownGroups(settings: ShutdownSettings): ShutdownGroup[] {
  if (settings.shutdownGracePeriodByPodPriority.length > 0) {
    return [...settings.shutdownGracePeriodByPodPriority].sort((a, b) => a.priority - b.priority);
  }
  const total = Math.floor(settings.shutdownGracePeriod / 1000);
  const critical = Math.floor(settings.shutdownGracePeriodCriticalPods / 1000);
  if (total === 0 && critical === 0) return [];
  if (total - critical < 0) return [];
  return [
    { priority: 0, shutdownGracePeriodSeconds: total - critical },
    { priority: systemCriticalPriority, shutdownGracePeriodSeconds: critical },
  ];
}

/** The time asked of logind: the sum of every group's period (periodRequested). */
export function requestedPeriodSeconds(groups: readonly ShutdownGroup[]): number {
  return groups.reduce((sum, group) => sum + group.shutdownGracePeriodSeconds, 0);
}

function shutdownPriority(pod: V1Pod): number {
  return isCriticalPod(pod) ? Math.max(podPriority(pod), systemCriticalPriority) : podPriority(pod);
}

/** Pods by group, in the groups' order (lowest priority first). */
export function groupPods<P extends V1Pod>(groups: readonly ShutdownGroup[], pods: readonly P[]): { group: ShutdownGroup; pods: P[] }[] {
  const result = groups.map((group) => ({ group, pods: [] as P[] }));
  if (result.length === 0) return result;
  for (const pod of pods) {
    const priority = shutdownPriority(pod);
    let index = 0;
    for (let i = 0; i < groups.length; i++) if (groups[i]!.priority <= priority) index = i;
    result[index]!.pods.push(pod);
  }
  return result;
}

export function podGracePeriodSeconds(pod: V1Pod, groupSeconds: number): number {
  const own = pod.spec?.terminationGracePeriodSeconds;
  return own !== undefined && own !== null && own <= groupSeconds ? own : groupSeconds;
}

/** The status amendment of a pod terminated by the shutdown (kubelet killPodFunc's status function). */
export function shutdownPodStatus(status: V1PodStatus, now: Date): V1PodStatus {
  const condition = { type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message: nodeShutdownMessage, lastTransitionTime: now };
  const previous = status.conditions?.find((c) => c.type === 'DisruptionTarget');
  return {
    ...status,
    phase: 'Failed',
    reason: nodeShutdownReason,
    message: nodeShutdownMessage,
    conditions: [...(status.conditions ?? []).filter((c) => c.type !== 'DisruptionTarget'), previous?.status === 'True' ? { ...condition, lastTransitionTime: previous.lastTransitionTime ?? now } : condition],
  };
}
