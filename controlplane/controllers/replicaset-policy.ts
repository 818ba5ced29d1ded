/**
 * ReplicaSet decisions (pkg/controller/replicaset/replica_set.go, pure): how many pods to create
 * or delete, which pods go first when scaling down (controller.ActivePodsWithRanks: unscheduled <
 * scheduled, Pending < Unknown < Running, not ready < ready, more pods of the set on the node
 * first, ready for less time first, more restarts first, newest first), the status, and the pod a
 * template stamps out (controller.GetPodFromTemplate).
 */
import type { KObject } from '../storage/types.js';
import { selectorMatches } from '../kinds-workload.js';
import { deepClone } from '../util.js';
import { intOr, isPodActive, isPodAvailable, isPodReady, list, obj, readyCondition, type OwnerReference } from './workload-util.js';

/** Upstream creates or deletes at most this many pods per sync (burstReplicas). */
const burstReplicas = 500;

export function podFromTemplate(template: unknown, namespace: string, generateName: string, owner: OwnerReference): KObject {
  const t = deepClone(obj(template));
  const meta = obj(t.metadata);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName,
      namespace,
      labels: { ...(obj(meta.labels) as Record<string, string>) },
      ...(Object.keys(obj(meta.annotations)).length > 0 ? { annotations: { ...(obj(meta.annotations) as Record<string, string>) } } : {}),
      ...(Array.isArray(meta.finalizers) ? { finalizers: [...(meta.finalizers as string[])] } : {}),
      ownerReferences: [owner],
    },
    spec: obj(t.spec),
  };
}

const phaseRank: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

function restarts(pod: KObject): number {
  return list(obj(pod.status).containerStatuses).reduce((sum, c) => sum + intOr(c.restartCount, 0), 0);
}

/** Pods ordered so that the first ones are the best to delete. */
export function rankPodsForDeletion(pods: KObject[]): KObject[] {
  const perNode = new Map<string, number>();
  for (const pod of pods) {
    const node = String(obj(pod.spec).nodeName ?? '');
    if (node) perNode.set(node, (perNode.get(node) ?? 0) + 1);
  }
  const key = (pod: KObject) => {
    const node = String(obj(pod.spec).nodeName ?? '');
    const readySince = Date.parse(String(readyCondition(pod)?.lastTransitionTime ?? '')) || 0;
    return { scheduled: node ? 1 : 0, phase: phaseRank[String(obj(pod.status).phase ?? 'Pending')] ?? 0, ready: isPodReady(pod) ? 1 : 0, colocated: perNode.get(node) ?? 0, readySince, restarts: restarts(pod), created: Date.parse(pod.metadata.creationTimestamp ?? '') || 0 };
  };
  return [...pods].sort((a, b) => {
    const x = key(a);
    const y = key(b);
    if (x.scheduled !== y.scheduled) return x.scheduled - y.scheduled;
    if (x.phase !== y.phase) return x.phase - y.phase;
    if (x.ready !== y.ready) return x.ready - y.ready;
    if (x.colocated !== y.colocated) return y.colocated - x.colocated;
    if (x.ready && x.readySince !== y.readySince) return y.readySince - x.readySince;
    if (x.restarts !== y.restarts) return y.restarts - x.restarts;
    if (x.created !== y.created) return y.created - x.created;
    return String(a.metadata.name).localeCompare(String(b.metadata.name));
  });
}

interface ReplicaSetPlan {
  create: number;
  delete: KObject[];
}

/** What one sync does: create or delete to reach spec.replicas, bounded by burstReplicas. */
export function planReplicaSet(rs: KObject, activePods: KObject[]): ReplicaSetPlan {
  const wanted = Math.max(0, intOr(obj(rs.spec).replicas, 1));
  const diff = activePods.length - wanted;
  if (diff < 0) return { create: Math.min(-diff, burstReplicas), delete: [] };
  if (diff > 0) return { create: 0, delete: rankPodsForDeletion(activePods).slice(0, Math.min(diff, burstReplicas)) };
  return { create: 0, delete: [] };
}

/** The pods a ReplicaSet counts: active, owned by it (or orphans it may adopt), matching its selector. */
export function podsOf(rs: KObject, pods: KObject[]): { owned: KObject[]; orphans: KObject[] } {
  const selector = obj(rs.spec).selector;
  const owned: KObject[] = [];
  const orphans: KObject[] = [];
  for (const pod of pods) {
    if (pod.metadata.namespace !== rs.metadata.namespace) continue;
    const controller = list(pod.metadata.ownerReferences).find((r) => r.controller === true);
    if (controller) {
      if (controller.uid === rs.metadata.uid) owned.push(pod);
    } else if (isPodActive(pod) && selectorMatches(selector, pod.metadata.labels)) orphans.push(pod);
  }
  return { owned, orphans };
}

export function replicaSetStatus(rs: KObject, owned: KObject[], now: Date): Record<string, unknown> {
  const active = owned.filter(isPodActive);
  const minReady = intOr(obj(rs.spec).minReadySeconds, 0);
  const templateLabels = obj(obj(obj(rs.spec).template).metadata).labels as Record<string, string> | undefined;
  const fullyLabeled = active.filter((p) => Object.entries(templateLabels ?? {}).every(([k, v]) => p.metadata.labels?.[k] === v));
  const previous = obj(rs.status);
  return {
    replicas: active.length,
    fullyLabeledReplicas: fullyLabeled.length,
    readyReplicas: active.filter(isPodReady).length,
    availableReplicas: active.filter((p) => isPodAvailable(p, minReady, now)).length,
    observedGeneration: rs.metadata.generation ?? 1,
    ...(Array.isArray(previous.conditions) && previous.conditions.length > 0 ? { conditions: previous.conditions } : {}),
  };
}
