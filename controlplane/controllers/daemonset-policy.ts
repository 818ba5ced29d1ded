/**
 * DaemonSet decisions (pkg/controller/daemon, pure; https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/):
 * which nodes should run a daemon pod (nodeSelector, required node affinity, taints against the
 * pod's tolerations plus the automatic DaemonSet tolerations), the pods to create and delete per
 * node, and the RollingUpdate step (maxUnavailable, or maxSurge with the old pod kept until the
 * new one is available); OnDelete replaces nothing by itself.
 */
import type { KObject } from '../storage/types.js';
import { scaledValue } from '../kinds-workload.js';
import { untoleratedTaints, type TaintLike, type TolerationLike } from '../../lib/k8s/tolerations.js';
import { matchesNodeSelectorAndAffinity, targetNodeName } from '../../lib/k8s/node-affinity.js';
import { intOr, isPodAvailable, isPodActive, list, obj } from './workload-util.js';

export const revisionHashLabel = 'controller-revision-hash';

/** The tolerations every daemon pod gets (util.AddOrUpdateDaemonPodTolerations). */
export function daemonTolerations(hostNetwork: boolean): TolerationLike[] {
  const t = (key: string, effect: string) => ({ key: `node.kubernetes.io/${key}`, operator: 'Exists', effect });
  return [
    t('not-ready', 'NoExecute'),
    t('unreachable', 'NoExecute'),
    t('disk-pressure', 'NoSchedule'),
    t('memory-pressure', 'NoSchedule'),
    t('pid-pressure', 'NoSchedule'),
    t('unschedulable', 'NoSchedule'),
    ...(hostNetwork ? [t('network-unavailable', 'NoSchedule')] : []),
  ];
}

/** nodeShouldRunDaemonPod: selector, affinity, and no untolerated NoSchedule/NoExecute taint. */
export function shouldRun(ds: KObject, node: KObject): boolean {
  const spec = obj(obj(obj(ds.spec).template).spec);
  if (!matchesNodeSelectorAndAffinity(spec, node)) return false;
  const tolerations = [...(list(spec.tolerations) as TolerationLike[]), ...daemonTolerations(spec.hostNetwork === true)];
  return untoleratedTaints(list(obj(node.spec).taints) as unknown as TaintLike[], tolerations).length === 0;
}

interface NodePlan {
  create: string[];
  /** Pods to delete, by name. */
  delete: string[];
}

/** Per-node sync (podsShouldBeOnNode) plus the rolling update step. `hash` is the current template's. */
export function planDaemonSet(ds: KObject, nodes: KObject[], pods: KObject[], hash: string, now: Date): NodePlan {
  const plan: NodePlan = { create: [], delete: [] };
  const spec = obj(ds.spec);
  const minReady = intOr(spec.minReadySeconds, 0);
  const byNode = new Map<string, KObject[]>();
  for (const pod of pods) {
    const node = targetNodeName(pod.spec) ?? '';
    byNode.set(node, [...(byNode.get(node) ?? []), pod]);
  }
  const wanted = nodes.filter((n) => shouldRun(ds, n));
  const wantedNames = new Set(wanted.map((n) => String(n.metadata.name)));
  for (const [node, nodePods] of byNode) if (!wantedNames.has(node)) plan.delete.push(...nodePods.filter((p) => !p.metadata.deletionTimestamp).map((p) => String(p.metadata.name)));
  const strategy = obj(spec.updateStrategy);
  const rolling = strategy.type !== 'OnDelete';
  const ru = obj(strategy.rollingUpdate);
  const maxSurge = rolling ? scaledValue(ru.maxSurge ?? 0, wanted.length, true) : 0;
  let maxUnavailable = rolling ? scaledValue(ru.maxUnavailable ?? 1, wanted.length, true) : 0;
  if (rolling && maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  const isNew = (p: KObject) => p.metadata.labels?.[revisionHashLabel] === hash;
  const oldOnly: { node: string; old: KObject[]; available: boolean }[] = [];
  let unavailable = 0;
  let surging = 0;
  for (const node of wanted) {
    const name = String(node.metadata.name);
    const all = byNode.get(name) ?? [];
    // Failed pods are deleted and replaced (the controller's failed-pod handling).
    for (const p of all) if (obj(p.status).phase === 'Failed' && !p.metadata.deletionTimestamp) plan.delete.push(String(p.metadata.name));
    const active = all.filter(isPodActive).sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
    if (active.length === 0) {
      if (!all.some((p) => p.metadata.deletionTimestamp && obj(p.status).phase !== 'Failed')) plan.create.push(name);
      unavailable++;
      continue;
    }
    const fresh = active.filter(isNew);
    const old = active.filter((p) => !isNew(p));
    if (fresh.length > 0) {
      // Keep one new pod; an old one goes once the new one is available (surge) or right away.
      plan.delete.push(...fresh.slice(1).map((p) => String(p.metadata.name)));
      if (old.length > 0 && (isPodAvailable(fresh[0] as KObject, minReady, now) || maxSurge === 0)) plan.delete.push(...old.map((p) => String(p.metadata.name)));
      else if (old.length > 0) surging++;
      if (!isPodAvailable(fresh[0] as KObject, minReady, now)) unavailable++;
      continue;
    }
    plan.delete.push(...old.slice(1).map((p) => String(p.metadata.name)));
    const available = isPodAvailable(old[0] as KObject, minReady, now);
    if (!available) unavailable++;
    oldOnly.push({ node: name, old: old.slice(0, 1), available });
  }
  if (!rolling) return plan;
  // Unavailable old pods are replaced first; then available ones within the budget.
  oldOnly.sort((a, b) => Number(a.available) - Number(b.available));
  for (const entry of oldOnly) {
    if (maxSurge > 0) {
      if (surging >= maxSurge) break;
      plan.create.push(entry.node);
      surging++;
      continue;
    }
    if (entry.available && unavailable >= maxUnavailable) break;
    plan.delete.push(...entry.old.map((p) => String(p.metadata.name)));
    if (entry.available) unavailable++;
  }
  return plan;
}

export function daemonSetStatus(ds: KObject, nodes: KObject[], pods: KObject[], hash: string, now: Date): Record<string, unknown> {
  const minReady = intOr(obj(ds.spec).minReadySeconds, 0);
  const wanted = new Set(nodes.filter((n) => shouldRun(ds, n)).map((n) => String(n.metadata.name)));
  const active = pods.filter(isPodActive);
  const onNode = (name: string) => active.filter((p) => targetNodeName(p.spec) === name);
  let current = 0;
  let ready = 0;
  let available = 0;
  let updated = 0;
  for (const name of wanted) {
    const here = onNode(name);
    if (here.length === 0) continue;
    current++;
    const pod = here.find((p) => p.metadata.labels?.[revisionHashLabel] === hash) ?? (here[0] as KObject);
    if (pod.metadata.labels?.[revisionHashLabel] === hash) updated++;
    if (list(obj(pod.status).conditions).some((c) => c.type === 'Ready' && c.status === 'True')) ready++;
    if (isPodAvailable(pod, minReady, now)) available++;
  }
  const misscheduled = new Set(active.map((p) => targetNodeName(p.spec) ?? '').filter((n) => n && !wanted.has(n))).size;
  return {
    currentNumberScheduled: current,
    numberMisscheduled: misscheduled,
    desiredNumberScheduled: wanted.size,
    numberReady: ready,
    observedGeneration: ds.metadata.generation ?? 1,
    updatedNumberScheduled: updated,
    numberAvailable: available,
    ...(wanted.size - available > 0 ? { numberUnavailable: wanted.size - available } : {}),
  };
}
