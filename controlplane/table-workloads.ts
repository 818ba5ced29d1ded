/**
 * `kubectl get` columns of the workload kinds, as kube-apiserver's printers
 * (pkg/printers/internalversion) give them: Deployment READY/UP-TO-DATE/AVAILABLE, ReplicaSet
 * DESIRED/CURRENT/READY, DaemonSet DESIRED/CURRENT/READY/UP-TO-DATE/AVAILABLE/NODE SELECTOR,
 * Job STATUS/COMPLETIONS/DURATION, CronJob SCHEDULE/TIMEZONE/SUSPEND/ACTIVE/LAST SCHEDULE.
 * Built from the name and age columns table.ts hands in (table.ts imports this module, not the reverse).
 */
import type { KObject } from './storage/types.js';
import { isRecord } from './util.js';

/** A Table column and how to fill it (the Column of table.ts). */
export interface WorkloadColumn {
  name: string;
  type: string;
  format?: string;
  description: string;
  priority: number;
  cell(object: KObject, now: Date): unknown;
}

const obj = (value: unknown): Record<string, unknown> => (isRecord(value) ? value : {});
const num = (value: unknown): number => (typeof value === 'number' ? value : 0);
const col = (name: string, description: string, cell: WorkloadColumn['cell'], type = 'string'): WorkloadColumn => ({ name, type, description, priority: 0, cell });

function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 3600 * 2) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

function jobStatus(job: KObject): string {
  const conditions = Array.isArray(obj(job.status).conditions) ? (obj(job.status).conditions as unknown[]).filter(isRecord) : [];
  const has = (type: string) => conditions.some((c) => c.type === type && c.status === 'True');
  if (has('Complete')) return 'Complete';
  if (has('Failed')) return 'Failed';
  if (has('Suspended')) return 'Suspended';
  if (job.metadata.deletionTimestamp) return 'Terminating';
  return 'Running';
}

export function workloadColumns(name: WorkloadColumn, age: WorkloadColumn): Record<string, WorkloadColumn[]> {
  return {
    Deployment: [
      name,
      col('Ready', 'Number of the pod with ready state', (d) => `${num(obj(d.status).readyReplicas)}/${num(obj(d.spec).replicas)}`),
      col('Up-to-date', 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.', (d) => num(obj(d.status).updatedReplicas), 'integer'),
      col('Available', 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.', (d) => num(obj(d.status).availableReplicas), 'integer'),
      age,
    ],
    ReplicaSet: [
      name,
      col('Desired', 'Number of desired pods.', (r) => num(obj(r.spec).replicas), 'integer'),
      col('Current', 'Number of actual replicas.', (r) => num(obj(r.status).replicas), 'integer'),
      col('Ready', 'The number of ready replicas for this replica set.', (r) => num(obj(r.status).readyReplicas), 'integer'),
      age,
    ],
    DaemonSet: [
      name,
      col('Desired', 'The total number of nodes that should be running the daemon pod.', (d) => num(obj(d.status).desiredNumberScheduled), 'integer'),
      col('Current', 'The number of nodes that are running at least one daemon pod.', (d) => num(obj(d.status).currentNumberScheduled), 'integer'),
      col('Ready', 'The number of nodes that should be running the daemon pod and have one or more ready.', (d) => num(obj(d.status).numberReady), 'integer'),
      col('Up-to-date', 'The total number of nodes that are running updated daemon pod.', (d) => num(obj(d.status).updatedNumberScheduled), 'integer'),
      col('Available', 'The number of nodes that should be running the daemon pod and have one or more available.', (d) => num(obj(d.status).numberAvailable), 'integer'),
      col('Node Selector', 'NodeSelector is a selector which must be true for the pod to fit on a node.', (d) => Object.entries(obj(obj(obj(obj(d.spec).template).spec).nodeSelector)).map(([k, v]) => `${k}=${String(v)}`).join(',') || '<none>'),
      age,
    ],
    Job: [
      name,
      col('Status', 'Status of the job.', jobStatus),
      col('Completions', 'The desired number of successfully finished pods the job should be run with.', (j) => (obj(j.spec).completions === undefined || obj(j.spec).completions === null ? `${num(obj(j.status).succeeded)}/1 of ${num(obj(j.spec).parallelism)}` : `${num(obj(j.status).succeeded)}/${num(obj(j.spec).completions)}`)),
      col('Duration', 'Time required to complete the job.', (j, now) => {
        const start = Date.parse(String(obj(j.status).startTime ?? ''));
        if (!Number.isFinite(start)) return '';
        const end = Date.parse(String(obj(j.status).completionTime ?? ''));
        return duration((Number.isFinite(end) ? end : now.getTime()) - start);
      }),
      age,
    ],
    CronJob: [
      name,
      col('Schedule', 'The schedule for running the job, in Cron format.', (c) => obj(c.spec).schedule ?? ''),
      col('Timezone', 'The time zone for the given schedule.', (c) => obj(c.spec).timeZone ?? '<none>'),
      col('Suspend', 'This flag tells the controller to suspend subsequent executions.', (c) => (obj(c.spec).suspend === true ? 'True' : 'False')),
      col('Active', 'The number of pointers to currently running jobs.', (c) => (Array.isArray(obj(c.status).active) ? (obj(c.status).active as unknown[]).length : 0), 'integer'),
      col('Last Schedule', 'Information when was the last time the job was successfully scheduled.', (c, now) => {
        const last = Date.parse(String(obj(c.status).lastScheduleTime ?? ''));
        return Number.isFinite(last) ? duration(now.getTime() - last) : '<none>';
      }),
      age,
    ],
    ControllerRevision: [
      name,
      col('Controller', 'Controller of the object', (r) => {
        const ref = (r.metadata.ownerReferences ?? []).find((o) => isRecord(o) && o.controller === true) as Record<string, unknown> | undefined;
        return ref ? `${String(ref.kind).toLowerCase()}.apps/${String(ref.name)}` : '<none>';
      }),
      col('Revision', 'Revision of the ControllerRevision', (r) => num(r.revision), 'integer'),
      age,
    ],
  };
}
