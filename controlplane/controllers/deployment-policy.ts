/**
 * Deployment decisions (pkg/controller/deployment, pure; https://kubernetes.io/docs/concepts/workloads/controllers/deployment/):
 * the pod-template-hash (a stable FNV-1a hash of the template and collisionCount, encoded like
 * rand.SafeEncodeString), which ReplicaSet is "new" (its template equals the Deployment's but for
 * the hash label), the rolling-update arithmetic of rolling.go (NewRSNewReplicas with maxSurge,
 * reconcileOldReplicaSets with maxUnavailable, cleanupUnhealthyReplicas first), the
 * revision bookkeeping, history cleanup, and status with the Available/Progressing conditions
 * (progress.go, including ProgressDeadlineExceeded).
 */
import type { KObject } from '../storage/types.js';
import { scaledValue } from '../kinds-workload.js';
import { canonicalJson, deepClone, rfc3339 } from '../util.js';
import { intOr, list, obj } from './workload-util.js';

export const hashLabel = 'pod-template-hash';
export const revisionAnnotation = 'deployment.kubernetes.io/revision';
export const desiredAnnotation = 'deployment.kubernetes.io/desired-replicas';
export const maxAnnotation = 'deployment.kubernetes.io/max-replicas';

const safeAlphabet = 'bcdfghjklmnpqrstvwxz2456789';

/** FNV-1a 32-bit over the canonical template (+ collisionCount), as ComputeHash does over its deep-hash. */
export function templateHash(template: unknown, collisionCount = 0): string {
  let hash = 0x811c9dc5;
  const text = canonicalJson(template) + (collisionCount > 0 ? String(collisionCount) : '');
  for (const byte of Buffer.from(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return [...String(hash)].map((digit) => safeAlphabet[digit.charCodeAt(0) % safeAlphabet.length]).join('');
}

function withoutHash(template: unknown): unknown {
  const t = deepClone(obj(template));
  const meta = obj(t.metadata);
  const labels = { ...(obj(meta.labels) as Record<string, string>) };
  delete labels[hashLabel];
  const { creationTimestamp: _ignored, ...rest } = meta;
  return { ...t, metadata: { ...rest, labels } };
}

/** EqualIgnoreHash: the two templates differ at most in the pod-template-hash label. */
function templatesEqual(a: unknown, b: unknown): boolean {
  return canonicalJson(withoutHash(a)) === canonicalJson(withoutHash(b));
}

export function revisionOf(rs: KObject): number {
  const value = Number.parseInt(rs.metadata.annotations?.[revisionAnnotation] ?? '', 10);
  return Number.isFinite(value) ? value : 0;
}

export function findNewReplicaSet(deployment: KObject, sets: KObject[]): KObject | undefined {
  const template = obj(deployment.spec).template;
  // The oldest match wins when several equal templates exist (FindNewReplicaSet sorts by creation).
  return sortByCreation(sets).find((rs) => templatesEqual(obj(rs.spec).template, template));
}

function sortByCreation(sets: KObject[]): KObject[] {
  return [...sets].sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || String(a.metadata.name).localeCompare(String(b.metadata.name)));
}

const specReplicas = (rs: KObject) => intOr(obj(rs.spec).replicas, 0);
const statusOf = (rs: KObject, field: string) => intOr(obj(rs.status)[field], 0);

interface Bounds {
  maxSurge: number;
  maxUnavailable: number;
}

/** ResolveFenceposts: percentages of replicas, surge rounded up, unavailable down; both 0 means one unavailable. */
export function resolveBounds(deployment: KObject): Bounds {
  const spec = obj(deployment.spec);
  const replicas = intOr(spec.replicas, 1);
  const ru = obj(obj(spec.strategy).rollingUpdate);
  if (obj(spec.strategy).type === 'Recreate') return { maxSurge: 0, maxUnavailable: replicas };
  const maxSurge = scaledValue(ru.maxSurge ?? '25%', replicas, true);
  let maxUnavailable = scaledValue(ru.maxUnavailable ?? '25%', replicas, false);
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { maxSurge, maxUnavailable: Math.min(maxUnavailable, replicas) };
}

/** The new ReplicaSet's next size under RollingUpdate (NewRSNewReplicas). */
export function newReplicaSetReplicas(deployment: KObject, all: KObject[], newRs: KObject): number {
  const replicas = intOr(obj(deployment.spec).replicas, 1);
  if (obj(obj(deployment.spec).strategy).type === 'Recreate') return replicas;
  const { maxSurge } = resolveBounds(deployment);
  const current = all.reduce((sum, rs) => sum + specReplicas(rs), 0);
  const maxTotal = replicas + maxSurge;
  if (current >= maxTotal) return specReplicas(newRs);
  return specReplicas(newRs) + Math.max(0, Math.min(maxTotal - current, replicas - specReplicas(newRs)));
}

/** New sizes for old ReplicaSets under RollingUpdate (reconcileOldReplicaSets); only changed entries are returned. */
export function scaleDownOld(deployment: KObject, all: KObject[], oldSets: KObject[], newRs: KObject | undefined): Map<string, number> {
  const result = new Map<string, number>();
  const size = (rs: KObject) => result.get(String(rs.metadata.name)) ?? specReplicas(rs);
  const oldCount = oldSets.reduce((sum, rs) => sum + specReplicas(rs), 0);
  if (oldCount === 0) return result;
  const replicas = intOr(obj(deployment.spec).replicas, 1);
  const { maxUnavailable } = resolveBounds(deployment);
  const minAvailable = replicas - maxUnavailable;
  const allCount = all.reduce((sum, rs) => sum + specReplicas(rs), 0);
  const newUnavailable = newRs ? Math.max(0, specReplicas(newRs) - statusOf(newRs, 'availableReplicas')) : 0;
  const maxScaledDown = allCount - minAvailable - newUnavailable;
  if (maxScaledDown <= 0) return result;
  // Unhealthy replicas of old sets go first: removing them cannot lower availability.
  let cleaned = 0;
  for (const rs of sortByCreation(oldSets)) {
    if (cleaned >= maxScaledDown) break;
    const unhealthy = specReplicas(rs) - statusOf(rs, 'availableReplicas');
    if (unhealthy <= 0) continue;
    const down = Math.min(maxScaledDown - cleaned, unhealthy);
    result.set(String(rs.metadata.name), specReplicas(rs) - down);
    cleaned += down;
  }
  // Then available ones, while availability stays at or above minAvailable.
  const available = all.reduce((sum, rs) => sum + statusOf(rs, 'availableReplicas'), 0);
  if (available <= minAvailable) return result;
  let budget = Math.min(available - minAvailable, maxScaledDown - cleaned);
  for (const rs of sortByCreation(oldSets)) {
    if (budget <= 0) break;
    const current = size(rs);
    if (current === 0) continue;
    const down = Math.min(current, budget, statusOf(rs, 'availableReplicas'));
    if (down <= 0) continue;
    result.set(String(rs.metadata.name), current - down);
    budget -= down;
  }
  return result;
}

/** Old ReplicaSets beyond revisionHistoryLimit that may be deleted (cleanupDeployment): empty ones, oldest revision first. */
export function historyToDelete(deployment: KObject, oldSets: KObject[]): KObject[] {
  const limit = intOr(obj(deployment.spec).revisionHistoryLimit, 10);
  const empty = oldSets.filter((rs) => specReplicas(rs) === 0 && statusOf(rs, 'replicas') === 0 && !rs.metadata.deletionTimestamp);
  const excess = empty.length - limit;
  if (excess <= 0) return [];
  return [...empty].sort((a, b) => revisionOf(a) - revisionOf(b) || (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '')).slice(0, excess);
}

type Condition = Record<string, unknown>;

function condition(type: string, status: string, reason: string, message: string, now: Date, previous: Condition | undefined): Condition {
  const time = rfc3339(now);
  const keepTransition = previous && previous.status === status;
  return { type, status, lastUpdateTime: time, lastTransitionTime: keepTransition ? previous.lastTransitionTime : time, reason, message };
}

interface StatusInput {
  deployment: KObject;
  all: KObject[];
  newRs: KObject | undefined;
  now: Date;
  /** Why Progressing was last set by the sync (NewReplicaSetCreated, FoundNewReplicaSet, …), if it was. */
  event?: { reason: string; message: string };
}

/** DeploymentStatus with the Available and Progressing conditions (calculateStatus + syncRolloutStatus). */
export function deploymentStatus({ deployment, all, newRs, now, event }: StatusInput): Record<string, unknown> {
  const spec = obj(deployment.spec);
  const old = obj(deployment.status);
  const replicas = intOr(spec.replicas, 1);
  const sum = (field: string) => all.reduce((total, rs) => total + statusOf(rs, field), 0);
  const status: Record<string, unknown> = {
    observedGeneration: deployment.metadata.generation ?? 1,
    replicas: sum('replicas'),
    updatedReplicas: newRs ? statusOf(newRs, 'replicas') : 0,
    readyReplicas: sum('readyReplicas'),
    availableReplicas: sum('availableReplicas'),
  };
  status.unavailableReplicas = Math.max(0, replicas - (status.availableReplicas as number));
  if (typeof old.collisionCount === 'number') status.collisionCount = old.collisionCount;
  const previous = list(old.conditions);
  const prevOf = (type: string) => previous.find((c) => c.type === type);
  const { maxUnavailable } = resolveBounds(deployment);
  const available =
    (status.availableReplicas as number) >= replicas - maxUnavailable
      ? condition('Available', 'True', 'MinimumReplicasAvailable', 'Deployment has minimum availability.', now, prevOf('Available'))
      : condition('Available', 'False', 'MinimumReplicasUnavailable', 'Deployment does not have minimum availability.', now, prevOf('Available'));
  const progressing = progressingCondition(deployment, status, newRs, now, prevOf('Progressing'), event);
  const conditions = [available, ...(progressing ? [progressing] : [])];
  status.conditions = conditions.map((c) => {
    const prev = prevOf(String(c.type));
    // An unchanged condition keeps its timestamps, so a steady state writes nothing.
    return prev && prev.status === c.status && prev.reason === c.reason && prev.message === c.message && c.type === 'Available' ? prev : c;
  });
  return status;
}

export function isComplete(deployment: KObject, status: Record<string, unknown>): boolean {
  const replicas = intOr(obj(deployment.spec).replicas, 1);
  return status.updatedReplicas === replicas && status.replicas === replicas && status.availableReplicas === replicas && intOr(status.observedGeneration, 0) >= (deployment.metadata.generation ?? 1);
}

function progressingCondition(deployment: KObject, status: Record<string, unknown>, newRs: KObject | undefined, now: Date, previous: Condition | undefined, event?: { reason: string; message: string }): Condition | undefined {
  const spec = obj(deployment.spec);
  const old = obj(deployment.status);
  const rsName = String(newRs?.metadata.name ?? '');
  if (spec.paused === true) return condition('Progressing', 'Unknown', 'DeploymentPaused', 'Deployment is paused', now, previous);
  if (previous?.reason === 'DeploymentPaused') return condition('Progressing', 'Unknown', 'DeploymentResumed', 'Deployment is resumed', now, previous);
  if (isComplete(deployment, status)) {
    if (previous?.reason === 'NewReplicaSetAvailable' && previous.status === 'True') return previous;
    return condition('Progressing', 'True', 'NewReplicaSetAvailable', `ReplicaSet "${rsName}" has successfully progressed.`, now, previous);
  }
  if (event) return condition('Progressing', 'True', event.reason, event.message, now, previous);
  const progressed =
    intOr(status.updatedReplicas, 0) > intOr(old.updatedReplicas, 0) ||
    intOr(status.readyReplicas, 0) > intOr(old.readyReplicas, 0) ||
    intOr(status.availableReplicas, 0) > intOr(old.availableReplicas, 0) ||
    intOr(status.replicas, 0) - intOr(status.updatedReplicas, 0) < intOr(old.replicas, 0) - intOr(old.updatedReplicas, 0);
  if (progressed || !previous) return condition('Progressing', 'True', 'ReplicaSetUpdated', `ReplicaSet "${rsName}" is progressing.`, now, previous);
  if (previous.reason === 'ProgressDeadlineExceeded') return previous;
  const deadline = intOr(spec.progressDeadlineSeconds, 600);
  const last = Date.parse(String(previous.lastUpdateTime ?? ''));
  if (Number.isFinite(last) && last + deadline * 1000 < now.getTime())
    return condition('Progressing', 'False', 'ProgressDeadlineExceeded', `ReplicaSet "${rsName}" has timed out progressing.`, now, previous);
  return previous;
}

/** Milliseconds until the progress deadline of an unfinished rollout passes, for a requeue. */
export function msUntilDeadline(deployment: KObject, status: Record<string, unknown>, now: Date): number | undefined {
  const progressing = list(status.conditions).find((c) => c.type === 'Progressing');
  if (!progressing || progressing.status !== 'True' || progressing.reason === 'NewReplicaSetAvailable') return undefined;
  const last = Date.parse(String(progressing.lastUpdateTime ?? ''));
  if (!Number.isFinite(last)) return undefined;
  return Math.max(0, last + intOr(obj(deployment.spec).progressDeadlineSeconds, 600) * 1000 - now.getTime()) + 100;
}
