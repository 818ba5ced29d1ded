/**
 * The Job controller (kube-controller-manager's job controller) carrying out `job-policy.ts`:
 * pods carry the job-tracking finalizer until counted; two status writes bracket the finalizer
 * removal (record as uncounted → release → move to counters) so a restart at any point neither
 * loses nor double-counts a pod. Indexed pods get the completion-index annotation and label, the
 * `JOB_COMPLETION_INDEX` variable (downward API on the annotation) and hostname `<job>-<index>`.
 * Also: suspend/resume, activeDeadlineSeconds, backoff, ttlSecondsAfterFinished (the
 * ttl-after-finished controller), and the Events upstream records.
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { resources, type ResourceInfo } from '../resources.js';
import type { KObject } from '../storage/types.js';
import { canonicalJson, deepClone, rfc3339 } from '../util.js';
import type { WatchCache } from '../watch-cache.js';
import { setCondition } from '../binding.js';
import type { Controller } from './controller.js';
import { QueuedController, wire } from './wiring.js';
import { podFromTemplate } from './replicaset-policy.js';
import { slowStart } from './replicaset.js';
import { backoffMs, classifyPods, failureAction, formatIndexes, hasFinalizer, indexAnnotation, isFinished, parseIndexes, planCreates, podIndex, readyCount, trackingFinalizer, workDone } from './job-policy.js';
import { controllerOf, controllerRefFor, getOrUndefined, ignoreNotFound, intOr, list, obj, splitKey } from './workload-util.js';

const jobs = resources.find((r) => r.name === 'jobs') as ResourceInfo;
const pods = resources.find((r) => r.name === 'pods') as ResourceInfo;

type Status = Record<string, unknown>;

class JobController extends QueuedController {
  /** When each job last saw a new failure (the pod back-off clock). */
  private readonly lastFailure = new Map<string, number>();

  constructor(registry: Registry, log: Logger) {
    super(registry, log, 'job-controller');
  }

  private async release(pod: KObject): Promise<void> {
    await ignoreNotFound(
      this.registry.mutate(pods, pod.metadata.namespace, pod.metadata.name as string, (current) => {
        current.metadata.finalizers = (current.metadata.finalizers ?? []).filter((f) => f !== trackingFinalizer);
        return current;
      }),
    );
  }

  private async writeStatus(job: KObject, status: Status): Promise<KObject> {
    const updated = await this.registry.mutate(jobs, job.metadata.namespace, job.metadata.name as string, (current) => {
      if (current.metadata.uid !== job.metadata.uid || canonicalJson(current.status) === canonicalJson(status)) return current;
      return { ...current, status };
    }, 'status');
    job.status = updated.status;
    return updated;
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = splitKey(key);
    const job = await getOrUndefined(this.registry, jobs, namespace, name);
    const all = (await this.registry.list(pods, namespace)).items.filter((p) => controllerOf(p)?.kind === 'Job' && controllerOf(p)?.name === name);
    if (!job || job.metadata.deletionTimestamp) {
      // The job is gone: its pods must not stay blocked by the tracking finalizer.
      for (const pod of all) if (hasFinalizer(pod) && controllerOf(pod)?.uid !== job?.metadata.uid) await this.release(pod);
      if (job) for (const pod of all) if (hasFinalizer(pod)) await this.release(pod);
      return;
    }
    const owned = all.filter((p) => controllerOf(p)?.uid === job.metadata.uid);
    const spec = obj(job.spec);
    const now = new Date();
    const status: Status = deepClone(obj(job.status));
    const completed = parseIndexes(status.completedIndexes);
    const indexed = spec.completionMode === 'Indexed';
    const classes = classifyPods(job, owned);
    // 1. Record finished pods as uncounted (before their finalizer goes).
    const uncounted = obj(status.uncountedTerminatedPods);
    const succeededUids = (Array.isArray(uncounted.succeeded) ? uncounted.succeeded : []).map(String);
    const failedUids = (Array.isArray(uncounted.failed) ? uncounted.failed : []).map(String);
    let failJob: { reason: string; message: string } | undefined;
    const ignored: KObject[] = [];
    for (const pod of classes.newlySucceeded) {
      succeededUids.push(pod.metadata.uid as string);
      const index = podIndex(pod);
      if (indexed && index !== undefined && index < intOr(spec.completions, 1)) completed.add(index);
    }
    for (const pod of classes.newlyFailed) {
      const verdict = obj(pod.status).phase === 'Failed' ? failureAction(job, pod) : undefined;
      if (verdict?.action === 'Ignore') {
        ignored.push(pod);
        continue;
      }
      if (verdict?.action === 'FailJob') failJob = { reason: 'PodFailurePolicy', message: `Pod ${namespace}/${String(pod.metadata.name)} failed matching FailJob rule at index ${verdict.rule}` };
      failedUids.push(pod.metadata.uid as string);
    }
    if (classes.newlyFailed.length > ignored.length) this.lastFailure.set(key, now.getTime());
    const recorded = [...classes.newlySucceeded, ...classes.newlyFailed.filter((p) => !ignored.includes(p))];
    if (recorded.length > 0) {
      status.uncountedTerminatedPods = { succeeded: succeededUids, failed: failedUids };
      if (indexed) status.completedIndexes = formatIndexes(completed);
      await this.writeStatus(job, deepClone(status));
    }
    // 2. Release them, 3. then count them.
    for (const pod of [...recorded, ...classes.toRelease, ...ignored]) await this.release(pod);
    status.succeeded = indexed ? completed.size : intOr(status.succeeded, 0) + succeededUids.length;
    status.failed = intOr(status.failed, 0) + failedUids.length;
    delete status.uncountedTerminatedPods;
    if (indexed) status.completedIndexes = formatIndexes(completed);
    let active = classes.active;
    if (!isFinished(job)) active = await this.manage(job, key, status, active, completed, failJob, now);
    status.active = active.length;
    status.ready = readyCount(active);
    status.terminating = owned.filter((p) => p.metadata.deletionTimestamp && !['Succeeded', 'Failed'].includes(String(obj(p.status).phase))).length;
    await this.writeStatus(job, status);
    await this.afterFinish(job, key, now);
  }

  /** Fail, complete, suspend or create pods; returns the active pods after that. */
  private async manage(job: KObject, key: string, status: Status, active: KObject[], completed: Set<number>, failJob: { reason: string; message: string } | undefined, now: Date): Promise<KObject[]> {
    const spec = obj(job.spec);
    const time = rfc3339(now);
    const deadline = typeof spec.activeDeadlineSeconds === 'number' && typeof status.startTime === 'string' ? Date.parse(status.startTime) + spec.activeDeadlineSeconds * 1000 : undefined;
    let failure = failJob;
    if (!failure && intOr(status.failed, 0) > intOr(spec.backoffLimit, 6)) failure = { reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' };
    if (!failure && deadline !== undefined && now.getTime() >= deadline) failure = { reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' };
    if (failure) {
      await this.deletePods(job, active);
      setCondition(status, { type: 'Failed', status: 'True', reason: failure.reason, message: failure.message, lastProbeTime: time, lastTransitionTime: time });
      await this.events.record(job, 'Warning', failure.reason, failure.message);
      return [];
    }
    if (workDone(job, intOr(status.succeeded, 0), completed, active.length)) {
      await this.deletePods(job, active);
      setCondition(status, { type: 'Complete', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods', lastProbeTime: time, lastTransitionTime: time });
      status.completionTime = time;
      await this.events.record(job, 'Normal', 'Completed', 'Job completed');
      return [];
    }
    if (spec.suspend === true) {
      await this.deletePods(job, active);
      setCondition(status, { type: 'Suspended', status: 'True', reason: 'JobSuspended', message: 'Job suspended', lastProbeTime: time, lastTransitionTime: time });
      delete status.startTime;
      return [];
    }
    if (list(status.conditions).some((c) => c.type === 'Suspended' && c.status === 'True'))
      setCondition(status, { type: 'Suspended', status: 'False', reason: 'JobResumed', message: 'Job resumed', lastProbeTime: time, lastTransitionTime: time });
    status.startTime ??= time;
    if (deadline === undefined && typeof spec.activeDeadlineSeconds === 'number') this.delayed.add(key, spec.activeDeadlineSeconds * 1000 + 50);
    else if (deadline !== undefined) this.delayed.add(key, deadline - now.getTime() + 50);
    const parallelism = Math.max(0, intOr(spec.parallelism, 1));
    if (active.length > parallelism) {
      const extra = [...active].sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '')).slice(0, active.length - parallelism);
      await this.deletePods(job, extra);
      return active.filter((p) => !extra.includes(p));
    }
    const plan = planCreates(job, active, intOr(status.succeeded, 0), completed);
    if (plan.count === 0) return active;
    const wait = (this.lastFailure.get(key) ?? 0) + backoffMs(intOr(status.failed, 0)) - now.getTime();
    if (wait > 0) {
      this.delayed.add(key, wait);
      return active;
    }
    return [...active, ...(await this.createPods(job, plan.count, plan.indexes))];
  }

  private async createPods(job: KObject, count: number, indexes: number[]): Promise<KObject[]> {
    const namespace = job.metadata.namespace as string;
    const name = String(job.metadata.name);
    const owner = controllerRefFor(jobs, job);
    const created: KObject[] = [];
    const queue = [...indexes];
    const result = await slowStart(count, async () => {
      const index = queue.shift();
      const pod = podFromTemplate(obj(job.spec).template, namespace, index === undefined ? `${name}-` : `${name}-${index}-`, owner);
      pod.metadata.finalizers = [...(pod.metadata.finalizers ?? []), trackingFinalizer];
      if (index !== undefined) withIndex(pod, name, index);
      const made = await this.registry.create(pods, namespace, pod);
      created.push(made);
      await this.events.record(job, 'Normal', 'SuccessfulCreate', `Created pod: ${String(made.metadata.name)}`);
    });
    if (result.error !== undefined) {
      const message = result.error instanceof Error ? result.error.message : String(result.error);
      await this.events.record(job, 'Warning', 'FailedCreate', `Error creating: ${message}`);
      throw new Error(`job ${namespace}/${name}: created ${result.created} of ${count} pods`, { cause: result.error });
    }
    return created;
  }

  /** Pods the controller removes itself are released first: they are not failures. */
  private async deletePods(job: KObject, victims: KObject[]): Promise<void> {
    for (const pod of victims) {
      await this.release(pod);
      const deleted = await ignoreNotFound(this.registry.delete(pods, pod.metadata.namespace, pod.metadata.name as string));
      if (deleted) await this.events.record(job, 'Normal', 'SuccessfulDelete', `Deleted pod: ${String(pod.metadata.name)}`);
    }
  }

  /** ttlSecondsAfterFinished (https://kubernetes.io/docs/concepts/workloads/controllers/ttlafterfinished/). */
  private async afterFinish(job: KObject, key: string, now: Date): Promise<void> {
    const ttl = obj(job.spec).ttlSecondsAfterFinished;
    const finished = isFinished(job);
    if (!finished || typeof ttl !== 'number') return;
    const condition = list(obj(job.status).conditions).find((c) => c.type === finished);
    const at = Date.parse(String(obj(job.status).completionTime ?? condition?.lastTransitionTime ?? '')) + ttl * 1000;
    if (!Number.isFinite(at)) return;
    if (at > now.getTime()) return this.delayed.add(key, at - now.getTime() + 50);
    await ignoreNotFound(this.registry.delete(jobs, job.metadata.namespace, job.metadata.name as string, { propagationPolicy: 'Background', preconditions: { uid: job.metadata.uid } }));
  }
}

function withIndex(pod: KObject, job: string, index: number): void {
  pod.metadata.annotations = { ...pod.metadata.annotations, [indexAnnotation]: String(index) };
  pod.metadata.labels = { ...pod.metadata.labels, [indexAnnotation]: String(index) };
  const spec = obj(pod.spec);
  spec.hostname ??= `${job}-${index}`;
  const env = { name: 'JOB_COMPLETION_INDEX', valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${indexAnnotation}']` } } };
  for (const field of ['containers', 'initContainers']) for (const c of list(spec[field])) c.env = [...list(c.env).filter((e) => e.name !== env.name), env];
  pod.spec = spec;
}

export function startJobController(registry: Registry, cache: WatchCache, log: Logger): Controller {
  const controller = new JobController(registry, log);
  return wire(registry, cache, log, controller.queue, controller.delayed, { own: jobs, children: [pods] });
}
