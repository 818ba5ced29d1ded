/**
 * Scaling a Deployment while a rollout is under way (pkg/controller/deployment/sync.go scale(),
 * util.GetProportion; https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#proportional-scaling):
 * when spec.replicas changes with several active ReplicaSets, the difference is spread over
 * them in proportion to their size, using the `deployment.kubernetes.io/max-replicas` annotation
 * each carries (replicas + maxSurge at its last scale), with the leftover given to (or taken
 * from) the largest. Pure: returns the new sizes; the controller writes them.
 */
import type { KObject } from '../storage/types.js';
import { desiredAnnotation, maxAnnotation, resolveBounds } from './deployment-policy.js';
import { intOr, obj } from './workload-util.js';

const size = (rs: KObject) => intOr(obj(rs.spec).replicas, 0);
const created = (rs: KObject) => rs.metadata.creationTimestamp ?? '';
const annotationInt = (rs: KObject, name: string): number | undefined => {
  const raw = rs.metadata.annotations?.[name];
  if (raw === undefined || !/^\d{1,9}$/.test(raw)) return undefined;
  return Number.parseInt(raw, 10);
};
/** integer.RoundToInt32: half away from zero. */
const round = (value: number) => Math.sign(value) * Math.round(Math.abs(value));

/** isScalingEvent: an active ReplicaSet's desired-replicas annotation differs from spec.replicas. */
export function isScalingEvent(deployment: KObject, sets: KObject[]): boolean {
  const replicas = intOr(obj(deployment.spec).replicas, 1);
  return sets.some((rs) => size(rs) > 0 && annotationInt(rs, desiredAnnotation) !== undefined && annotationInt(rs, desiredAnnotation) !== replicas);
}

/** getReplicaSetFraction: how many replicas this set gains (or loses) out of the scale. */
function fraction(rs: KObject, deployment: KObject): number {
  const replicas = intOr(obj(deployment.spec).replicas, 1);
  if (replicas === 0) return -size(rs);
  const maxNow = replicas + resolveBounds(deployment).maxSurge;
  let maxBefore = annotationInt(rs, maxAnnotation) ?? 0;
  if (maxBefore === 0) maxBefore = intOr(obj(deployment.status).replicas, 0);
  if (maxBefore === 0) return 0;
  return round((size(rs) * maxNow) / maxBefore) - size(rs);
}

/** GetProportion: the fraction, capped by what is still to be added or removed. */
function proportion(rs: KObject, deployment: KObject, toAdd: number, added: number): number {
  if (size(rs) === 0 || toAdd === 0 || toAdd === added) return 0;
  const allowed = toAdd - added;
  const share = fraction(rs, deployment);
  return toAdd > 0 ? Math.min(share, allowed) : Math.max(share, allowed);
}

function isSaturated(deployment: KObject, rs: KObject | undefined): boolean {
  if (!rs) return false;
  const replicas = intOr(obj(deployment.spec).replicas, 1);
  return annotationInt(rs, desiredAnnotation) === replicas && size(rs) === replicas && intOr(obj(rs.status).availableReplicas, 0) === replicas;
}

/** FindActiveOrLatest: the one active set, or the newest when none is active; undefined with several. */
function activeOrLatest(newRs: KObject | undefined, oldSets: KObject[]): KObject | undefined {
  const active = [...oldSets, ...(newRs ? [newRs] : [])].filter((rs) => size(rs) > 0);
  if (active.length === 1) return active[0];
  if (active.length > 1) return undefined;
  return newRs ?? [...oldSets].sort((a, b) => created(b).localeCompare(created(a)))[0];
}

/**
 * sync.go scale(): new sizes by ReplicaSet name (only those that change, or whose annotations
 * are to be refreshed: every set in the map gets the deployment's desired/max annotations).
 */
export function scaleDeployment(deployment: KObject, newRs: KObject | undefined, oldSets: KObject[]): Map<string, number> {
  const replicas = intOr(obj(deployment.spec).replicas, 1);
  const plan = new Map<string, number>();
  const one = activeOrLatest(newRs, oldSets);
  // Always listed, so that its desired/max annotations are refreshed even at the right size
  // (otherwise a stale annotation would keep this a "scaling event" forever).
  if (one) {
    plan.set(String(one.metadata.name), replicas);
    return plan;
  }
  if (isSaturated(deployment, newRs)) {
    for (const rs of oldSets) if (size(rs) > 0) plan.set(String(rs.metadata.name), 0);
    return plan;
  }
  if (obj(obj(deployment.spec).strategy).type === 'Recreate') return plan;
  const active = [...oldSets, ...(newRs ? [newRs] : [])].filter((rs) => size(rs) > 0);
  const total = active.reduce((sum, rs) => sum + size(rs), 0);
  const allowed = replicas > 0 ? replicas + resolveBounds(deployment).maxSurge : 0;
  const toAdd = allowed - total;
  if (toAdd === 0) return plan;
  // Scaling up: larger first, newer first among equals (ReplicaSetsBySizeNewer); down: older first.
  active.sort((a, b) => size(b) - size(a) || (toAdd > 0 ? created(b).localeCompare(created(a)) : created(a).localeCompare(created(b))));
  let added = 0;
  const sizes = active.map((rs) => {
    const share = proportion(rs, deployment, toAdd, added);
    added += share;
    return size(rs) + share;
  });
  // The leftover goes to the largest set.
  sizes[0] = Math.max(0, (sizes[0] as number) + toAdd - added);
  active.forEach((rs, i) => plan.set(String(rs.metadata.name), sizes[i] as number));
  return plan;
}
