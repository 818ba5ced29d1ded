/**
 * The CronJob controller (kube-controller-manager's cronjob controller v2) carrying out
 * `cronjob-policy.ts`: tracks its Jobs in status.active, records SawCompletedJob and
 * lastSuccessfulTime, trims history, and at each due time creates `<cronjob>-<minutes>` from the
 * jobTemplate unless suspended, past startingDeadlineSeconds, or blocked by concurrencyPolicy
 * (Forbid waits, Replace deletes the running Jobs first). Requeues itself at the next due time.
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { resources, type ResourceInfo } from '../resources.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';
import { canonicalJson, deepClone, rfc3339 } from '../util.js';
import type { WatchCache } from '../watch-cache.js';
import type { Controller } from './controller.js';
import { QueuedController, wire } from './wiring.js';
import { dueTime, historyToDelete, jobFinished, jobNameFor } from './cronjob-policy.js';
import { controllerOf, controllerRefFor, getOrUndefined, ignoreNotFound, list, obj, splitKey } from './workload-util.js';

const cronjobs = resources.find((r) => r.name === 'cronjobs') as ResourceInfo;
const jobs = resources.find((r) => r.name === 'jobs') as ResourceInfo;
const scheduledAnnotation = 'batch.kubernetes.io/cronjob-scheduled-timestamp';

class CronJobController extends QueuedController {

  constructor(registry: Registry, log: Logger) {
    super(registry, log, 'cronjob-controller');
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = splitKey(key);
    const cj = await getOrUndefined(this.registry, cronjobs, namespace, name);
    if (!cj || cj.metadata.deletionTimestamp) return;
    const now = new Date();
    const owned = (await this.registry.list(jobs, namespace)).items.filter((j) => controllerOf(j)?.uid === cj.metadata.uid);
    const status: Record<string, unknown> = deepClone(obj(cj.status));
    const before = new Set(list(status.active).map((r) => String(r.uid)));
    let active = owned.filter((j) => !jobFinished(j) && !j.metadata.deletionTimestamp);
    for (const job of owned) {
      const state = jobFinished(job);
      if (!state || !before.has(String(job.metadata.uid))) continue;
      await this.events.record(cj, 'Normal', 'SawCompletedJob', `Saw completed job: ${String(job.metadata.name)}, condition: ${state}`);
      const done = obj(job.status).completionTime;
      if (state === 'Complete' && typeof done === 'string' && done > String(status.lastSuccessfulTime ?? '')) status.lastSuccessfulTime = done;
    }
    for (const job of historyToDelete(cj, owned)) {
      const deleted = await ignoreNotFound(this.registry.delete(jobs, namespace, job.metadata.name as string, { propagationPolicy: 'Background' }));
      if (deleted) await this.events.record(cj, 'Normal', 'SuccessfulDelete', `Deleted job ${String(job.metadata.name)}`);
    }
    const spec = obj(cj.spec);
    let due: ReturnType<typeof dueTime> = { missed: 0 };
    try {
      due = dueTime(cj, now);
    } catch (error) {
      // A schedule that cannot be parsed is reported, not retried in a loop (the object is invalid anyway).
      this.log.warn({ err: error, cronjob: key }, 'cannot compute the schedule');
      await this.events.record(cj, 'Warning', 'UnparseableSchedule', `unparseable schedule: ${String(spec.schedule)}`);
    }
    if (due.missed > 100) await this.events.record(cj, 'Warning', 'TooManyMissedTimes', 'too many missed start times: > 100. Set or decrease .spec.startingDeadlineSeconds or check clock skew');
    if (spec.suspend !== true && due.time) active = await this.start(cj, due.time, active, status, now);
    status.active = active.map((j) => ({ kind: 'Job', namespace, name: j.metadata.name, uid: j.metadata.uid, apiVersion: 'batch/v1', resourceVersion: j.metadata.resourceVersion }));
    if ((status.active as unknown[]).length === 0) delete status.active;
    if (canonicalJson(status) !== canonicalJson(obj(cj.status)))
      await ignoreNotFound(this.registry.mutate(cronjobs, namespace, name, (current) => (current.metadata.uid === cj.metadata.uid ? { ...current, status } : current), 'status'));
    if (due.next && spec.suspend !== true) this.delayed.add(key, due.next.getTime() - now.getTime() + 100);
  }

  /** Starts the job for `time` as concurrencyPolicy allows; returns the active jobs afterwards. */
  private async start(cj: KObject, time: Date, active: KObject[], status: Record<string, unknown>, now: Date): Promise<KObject[]> {
    const spec = obj(cj.spec);
    const namespace = cj.metadata.namespace as string;
    if (typeof spec.startingDeadlineSeconds === 'number' && time.getTime() + spec.startingDeadlineSeconds * 1000 < now.getTime()) return active;
    if (spec.concurrencyPolicy === 'Forbid' && active.length > 0) {
      // As cronjob_controllerv2.go syncCronJob: the skipped run is told, lastScheduleTime stays.
      await this.events.record(cj, 'Normal', 'JobAlreadyActive', 'Not starting job because prior execution is running and concurrency policy is Forbid');
      return active;
    }
    if (spec.concurrencyPolicy === 'Replace') {
      for (const job of active) {
        const deleted = await ignoreNotFound(this.registry.delete(jobs, namespace, job.metadata.name as string, { propagationPolicy: 'Background' }));
        if (deleted) await this.events.record(cj, 'Normal', 'SuccessfulDelete', `Deleted job ${String(job.metadata.name)}`);
      }
      active = [];
    }
    const template = obj(spec.jobTemplate);
    const meta = obj(template.metadata);
    const name = jobNameFor(cj, time);
    const job = {
      metadata: {
        name,
        namespace,
        labels: { ...(obj(meta.labels) as Record<string, string>) },
        annotations: { ...(obj(meta.annotations) as Record<string, string>), [scheduledAnnotation]: rfc3339(time) },
        ownerReferences: [controllerRefFor(cronjobs, cj)],
      },
      spec: deepClone(obj(template.spec)),
    } as unknown as KObject;
    try {
      const created = await this.registry.create(jobs, namespace, job);
      await this.events.record(cj, 'Normal', 'SuccessfulCreate', `Created job ${name}`);
      active = [...active, created];
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 409)) {
        await this.events.record(cj, 'Warning', 'FailedCreate', `Error creating job: ${error instanceof Error ? error.message : String(error)}`);
        throw error;
      }
    }
    status.lastScheduleTime = rfc3339(time);
    return active;
  }
}

export function startCronJobController(registry: Registry, cache: WatchCache, log: Logger): Controller {
  const controller = new CronJobController(registry, log);
  return wire(registry, cache, log, controller.queue, controller.delayed, { own: cronjobs, children: [jobs] });
}
