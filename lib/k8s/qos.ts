/**
 * QoS class (pkg/apis/core/v1/helper/qos GetPodQOS; docs "Pod Quality of Service Classes"), the
 * OOM score adjustment the kubelet gives each class (pkg/kubelet/qos/policy.go
 * GetContainerOOMScoreAdjust). Only cpu and memory count for the class; init containers count.
 * Requests default to limits as API defaulting does, so a manifest pod (never defaulted by an API
 * server) gets the class it will have on the server.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { containerResources, type ResourceAmounts } from './resources.js';
import { isCriticalPod } from './priority.js';

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

const computeResources = ['cpu', 'memory'] as const;

export function podQosClass(pod: V1Pod): QosClass {
  const requests: ResourceAmounts = {};
  const limits: ResourceAmounts = {};
  let guaranteed = true;
  for (const container of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    let c: { requests: ResourceAmounts; limits: ResourceAmounts };
    try {
      c = containerResources(container);
    } catch {
      c = { requests: {}, limits: {} }; // an invalid quantity is refused by validation; it sets nothing here
    }
    for (const name of computeResources) {
      const request = c.requests[name] ?? 0;
      const limit = c.limits[name] ?? 0;
      if (request > 0) requests[name] = (requests[name] ?? 0) + request;
      if (limit > 0) limits[name] = (limits[name] ?? 0) + limit;
      else guaranteed = false; // qosLimitsFound must hold both cpu and memory for every container
    }
  }
  const requested = Object.keys(requests).length;
  if (requested === 0 && Object.keys(limits).length === 0) return 'BestEffort';
  if (guaranteed && computeResources.every((name) => requests[name] === limits[name]) && requested === Object.keys(limits).length) return 'Guaranteed';
  return 'Burstable';
}

/** GetContainerOOMScoreAdjust: critical and Guaranteed −997, BestEffort 1000, Burstable by memory request share. */
export function oomScoreAdj(pod: V1Pod, memoryRequestBytes: number, memoryCapacityBytes: number): number {
  if (isCriticalPod(pod)) return -997;
  const qos = podQosClass(pod);
  if (qos === 'Guaranteed') return -997;
  if (qos === 'BestEffort') return 1000;
  const adj = 1000 - Math.floor((1000 * memoryRequestBytes) / Math.max(1, memoryCapacityBytes));
  if (adj < 3) return 3;
  if (adj >= 1000) return 999;
  return adj;
}
