/**
 * Job decisions (pkg/controller/job/job_controller.go, pure; https://kubernetes.io/docs/concepts/workloads/controllers/job/):
 * finished pods are first recorded in status.uncountedTerminatedPods, then lose the
 * `batch.kubernetes.io/job-tracking` finalizer, then move to the succeeded/failed counters, so
 * a pod is counted exactly once even across a restart; podFailurePolicy rules (FailJob, Ignore,
 * Count on exit codes and pod conditions); backoffLimit, activeDeadlineSeconds, completions
 * (NonIndexed, or Indexed with completedIndexes), parallelism, and the exponential pod back-off
 * (10 s doubling, capped at 6 min).
 */
import type { KObject } from '../storage/types.js';
import { intOr, isPodReady, list, obj } from './workload-util.js';

export const trackingFinalizer = 'batch.kubernetes.io/job-tracking';
export const indexAnnotation = 'batch.kubernetes.io/job-completion-index';
const maxPodsPerSync = 500;

export function isFinished(job: KObject): 'Complete' | 'Failed' | undefined {
  for (const c of list(obj(job.status).conditions)) if ((c.type === 'Complete' || c.type === 'Failed') && c.status === 'True') return c.type;
  return undefined;
}

export function podIndex(pod: KObject): number | undefined {
  const value = Number.parseInt(pod.metadata.annotations?.[indexAnnotation] ?? '', 10);
  return Number.isInteger(value) && value >= 0 ? value : undefined;
}

/** "1,3-5,7" ↔ index sets (the completedIndexes format). */
export function parseIndexes(text: unknown): Set<number> {
  const out = new Set<number>();
  for (const part of String(text ?? '').split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const from = Number(m[1]);
    const to = Math.min(Number(m[2] ?? m[1]), from + 100_000);
    for (let i = from; i <= to; i++) out.add(i);
  }
  return out;
}

export function formatIndexes(indexes: Set<number>): string {
  const sorted = [...indexes].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${String(sorted[i])}-${String(sorted[j])}`);
    i = j + 1;
  }
  return parts.join(',');
}

type Rule = Record<string, unknown>;

/** The podFailurePolicy action for a failed pod, or undefined when no rule matches (then it counts). */
export function failureAction(job: KObject, pod: KObject): { action: string; rule: number } | undefined {
  const rules = list(obj(obj(job.spec).podFailurePolicy).rules);
  const exitCodes = list(obj(pod.status).containerStatuses)
    .map((c) => obj(obj(c.state).terminated).exitCode)
    .filter((code): code is number => typeof code === 'number' && code !== 0);
  const conditions = list(obj(pod.status).conditions);
  for (const [index, rule] of rules.entries()) {
    if (matchesRule(rule, exitCodes, conditions)) return { action: String(rule.action), rule: index };
  }
  return undefined;
}

function matchesRule(rule: Rule, exitCodes: number[], conditions: Rule[]): boolean {
  const onExit = obj(rule.onExitCodes);
  if (Object.keys(onExit).length > 0) {
    const values = Array.isArray(onExit.values) ? (onExit.values as number[]) : [];
    return exitCodes.some((code) => (onExit.operator === 'In' ? values.includes(code) : !values.includes(code)));
  }
  return list(rule.onPodConditions).some((p) => conditions.some((c) => c.type === p.type && c.status === (p.status ?? 'True')));
}

interface JobPods {
  active: KObject[];
  /** Finished (or terminating) pods still carrying the tracking finalizer, not yet in uncounted. */
  newlySucceeded: KObject[];
  newlyFailed: KObject[];
  /** Pods whose uid is in uncounted and that still carry the finalizer. */
  toRelease: KObject[];
}

export function hasFinalizer(pod: KObject): boolean {
  return (pod.metadata.finalizers ?? []).includes(trackingFinalizer);
}

export function classifyPods(job: KObject, pods: KObject[]): JobPods {
  const uncounted = obj(obj(job.status).uncountedTerminatedPods);
  const recorded = new Set([...(Array.isArray(uncounted.succeeded) ? uncounted.succeeded : []), ...(Array.isArray(uncounted.failed) ? uncounted.failed : [])].map(String));
  const out: JobPods = { active: [], newlySucceeded: [], newlyFailed: [], toRelease: [] };
  for (const pod of pods) {
    const phase = obj(pod.status).phase;
    const uid = pod.metadata.uid ?? '';
    if (recorded.has(uid)) {
      if (hasFinalizer(pod)) out.toRelease.push(pod);
      continue;
    }
    const finished = phase === 'Succeeded' || phase === 'Failed' || pod.metadata.deletionTimestamp !== undefined;
    if (!finished) out.active.push(pod);
    else if (hasFinalizer(pod)) (phase === 'Succeeded' ? out.newlySucceeded : out.newlyFailed).push(pod);
  }
  return out;
}

/** Back-off before the next pod after `failures` failed pods (10 s · 2^(n-1), at most 6 min). */
export function backoffMs(failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(10_000 * 2 ** Math.min(failures - 1, 20), 360_000);
}

interface CreatePlan {
  /** NonIndexed: how many pods; Indexed: which indexes. */
  count: number;
  indexes: number[];
}

/** Pods to create so that min(parallelism, remaining work) are active (manageJob). */
export function planCreates(job: KObject, active: KObject[], succeeded: number, completedIndexes: Set<number>): CreatePlan {
  const spec = obj(job.spec);
  const parallelism = Math.max(0, intOr(spec.parallelism, 1));
  const completions = spec.completions === undefined || spec.completions === null ? undefined : intOr(spec.completions, 1);
  if (spec.completionMode === 'Indexed' && completions !== undefined) {
    const busy = new Set(active.map(podIndex).filter((i): i is number => i !== undefined));
    const want = Math.max(0, parallelism - active.length);
    const indexes: number[] = [];
    for (let i = 0; i < completions && indexes.length < Math.min(want, maxPodsPerSync); i++) if (!busy.has(i) && !completedIndexes.has(i)) indexes.push(i);
    return { count: indexes.length, indexes };
  }
  let wantActive = parallelism;
  if (completions !== undefined) wantActive = Math.min(parallelism, Math.max(0, completions - succeeded));
  // Without completions (a work queue), no new pods once one has succeeded.
  else if (succeeded > 0) wantActive = Math.min(wantActive, active.length);
  return { count: Math.min(Math.max(0, wantActive - active.length), maxPodsPerSync), indexes: [] };
}

/** Whether the job's work is done (NonIndexed: succeeded ≥ completions, or a success with nothing active without completions). */
export function workDone(job: KObject, succeeded: number, completedIndexes: Set<number>, activeCount: number): boolean {
  const spec = obj(job.spec);
  const completions = spec.completions === undefined || spec.completions === null ? undefined : intOr(spec.completions, 1);
  if (spec.completionMode === 'Indexed' && completions !== undefined) return [...completedIndexes].filter((i) => i < completions).length >= completions;
  if (completions !== undefined) return succeeded >= completions;
  return succeeded > 0 && activeCount === 0;
}

export function readyCount(pods: KObject[]): number {
  return pods.filter(isPodReady).length;
}
