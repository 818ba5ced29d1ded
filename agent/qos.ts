/**
 * QoS class (pkg/apis/core/v1/helper/qos GetPodQOS; docs "Pod Quality of Service Classes"), the
 * OOM score adjustment the kubelet gives each class (pkg/kubelet/qos/policy.go
 * GetContainerOOMScoreAdjust) and the QoS cgroup parent (pkg/kubelet/cm/qos_container_manager).
 * Only cpu and memory count for the class.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { parseQuantity } from '../lib/quantity.js';

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

const computeResources = ['cpu', 'memory'] as const;

function positive(list: Record<string, string> | undefined, name: string): number | undefined {
  const value = list?.[name];
  if (value === undefined) return undefined;
  const parsed = parseQuantity(String(value));
  return parsed > 0 ? parsed : undefined;
}

export function podQosClass(pod: V1Pod): QosClass {
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  let anySet = false;
  let guaranteed = true;
  for (const container of containers) {
    const limits = container.resources?.limits as Record<string, string> | undefined;
    const requests = container.resources?.requests as Record<string, string> | undefined;
    for (const name of computeResources) {
      const limit = positive(limits, name);
      const request = positive(requests, name) ?? limit; // requests default to limits
      if (limit !== undefined || request !== undefined) anySet = true;
      if (limit === undefined || request !== limit) guaranteed = false;
    }
  }
  if (!anySet) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

/** Critical pods: static/mirror pods and pods at system-critical priority (kubetypes.IsCriticalPod). */
export function isCriticalPod(pod: V1Pod, isStatic: boolean): boolean {
  return isStatic || (pod.spec?.priority ?? 0) >= 2_000_000_000;
}

export function oomScoreAdj(pod: V1Pod, memoryRequestBytes: number, memoryCapacityBytes: number, critical: boolean): number {
  if (critical) return -997;
  const qos = podQosClass(pod);
  if (qos === 'Guaranteed') return -997;
  if (qos === 'BestEffort') return 1000;
  const adj = 1000 - Math.floor((1000 * memoryRequestBytes) / Math.max(1, memoryCapacityBytes));
  if (adj < 3) return 3;
  if (adj >= 1000) return 999;
  return adj;
}

/** The pod's cgroup parent under the QoS hierarchy (cgroupfs or systemd naming). */
export function podCgroupParent(qos: QosClass, podUid: string, driver: 'cgroupfs' | 'systemd', root = ''): string {
  const uid = podUid.replace(/-/g, '_');
  if (driver === 'systemd') {
    if (qos === 'Guaranteed') return `kubepods-pod${uid}.slice`;
    const tier = qos === 'Burstable' ? 'burstable' : 'besteffort';
    return `kubepods-${tier}-pod${uid}.slice`;
  }
  const base = `${root.replace(/\/$/, '')}/kubepods`;
  if (qos === 'Guaranteed') return `${base}/pod${podUid}`;
  return `${base}/${qos === 'Burstable' ? 'burstable' : 'besteffort'}/pod${podUid}`;
}
