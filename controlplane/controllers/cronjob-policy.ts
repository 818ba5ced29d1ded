/**
 * CronJob decisions (pkg/controller/cronjob, pure; https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/):
 * schedules are parsed by node-cron (five fields and the @-macros), evaluated in spec.timeZone
 * (default: the control plane's zone, UTC here) with cron's rule that a restricted day-of-month
 * and a restricted day-of-week match when either does; the most recent missed time since
 * lastScheduleTime (bounded by startingDeadlineSeconds; more than 100 misses is reported), the
 * job name `<cronjob>-<minutes since epoch>`, and which finished jobs fall out of history.
 */
import cron from 'node-cron';
import type { KObject } from '../storage/types.js';
import { intOr, list, obj } from './workload-util.js';

interface Schedule {
  minute: Set<number>;
  hour: Set<number>;
  dayOfMonth: Set<number>;
  month: Set<number>;
  dayOfWeek: Set<number>;
  domRestricted: boolean;
  dowRestricted: boolean;
}

/** The parsed schedule, or undefined for one that can never fire (30 February). */
export function parseSchedule(expression: string): Schedule | undefined {
  let fields: ReturnType<typeof cron.parse>;
  try {
    fields = cron.parse(expression.trim());
  } catch (error) {
    if (error instanceof Error && error.message.includes('impossible day of month')) return undefined;
    throw new Error(`invalid cron schedule "${expression}"`, { cause: error });
  }
  const nums = (values: (number | string)[]) => new Set(values.map((v) => Number(v)).filter((v) => Number.isInteger(v)));
  const dow = nums(fields.dayOfWeek);
  if (dow.has(7)) dow.add(0);
  const dom = nums(fields.dayOfMonth);
  return { minute: nums(fields.minute), hour: nums(fields.hour), dayOfMonth: dom, month: nums(fields.month), dayOfWeek: dow, domRestricted: dom.size < 31, dowRestricted: dow.size < 7 };
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function localParts(date: Date, timeZone: string): { month: number; day: number; weekday: number; hour: number; minute: number } {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', month: 'numeric', day: 'numeric', weekday: 'short', hour: 'numeric', minute: 'numeric' });
    if (formatters.size > 64) formatters.clear();
    formatters.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(date).map((p) => [p.type, p.value]));
  const weekdays = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  return { month: Number(parts.month), day: Number(parts.day), weekday: weekdays.indexOf(String(parts.weekday)), hour: Number(parts.hour), minute: Number(parts.minute) };
}

function dayMatches(s: Schedule, p: { month: number; day: number; weekday: number }): boolean {
  if (!s.month.has(p.month)) return false;
  if (s.domRestricted && s.dowRestricted) return s.dayOfMonth.has(p.day) || s.dayOfWeek.has(p.weekday);
  return s.dayOfMonth.has(p.day) && s.dayOfWeek.has(p.weekday);
}

const minuteMs = 60_000;
/** How far ahead to look: five years covers every satisfiable five-field schedule (29 February, leap years). */
const horizonMs = 5 * 366 * 24 * 3600_000;

/** The first scheduled time strictly after `after`, or undefined within the horizon. */
export function nextTime(s: Schedule, after: Date, timeZone = 'UTC'): Date | undefined {
  let t = Math.floor(after.getTime() / minuteMs) * minuteMs + minuteMs;
  const end = t + horizonMs;
  while (t < end) {
    const p = localParts(new Date(t), timeZone);
    if (!dayMatches(s, p)) {
      // Jump to the start of the next local day.
      t += ((23 - p.hour) * 60 + (60 - p.minute)) * minuteMs;
      continue;
    }
    if (!s.hour.has(p.hour)) {
      // Jump to the start of the next local hour.
      t += (60 - p.minute) * minuteMs;
      continue;
    }
    const minute = [...s.minute].filter((m) => m >= p.minute).sort((a, b) => a - b)[0];
    if (minute === undefined) {
      t += (60 - p.minute) * minuteMs;
      continue;
    }
    return new Date(t + (minute - p.minute) * minuteMs);
  }
  return undefined;
}

interface Due {
  /** The most recent scheduled time not yet run, if any. */
  time?: Date;
  /** How many scheduled times were missed (more than 100 is reported as upstream does). */
  missed: number;
  /** The next time after now, for a requeue. */
  next?: Date;
}

/** getMostRecentScheduleTime: the latest unmet schedule time in (max(last, now − deadline), now]. */
export function dueTime(cronJob: KObject, now: Date): Due {
  const spec = obj(cronJob.spec);
  const status = obj(cronJob.status);
  const schedule = parseSchedule(String(spec.schedule ?? ''));
  if (!schedule) return { missed: 0 };
  const zone = typeof spec.timeZone === 'string' && spec.timeZone ? spec.timeZone : 'UTC';
  let earliest = Date.parse(String(status.lastScheduleTime ?? cronJob.metadata.creationTimestamp ?? ''));
  if (!Number.isFinite(earliest)) earliest = now.getTime();
  if (typeof spec.startingDeadlineSeconds === 'number') earliest = Math.max(earliest, now.getTime() - spec.startingDeadlineSeconds * 1000);
  // Count misses up to 101 (upstream warns past 100), then find the latest in growing windows.
  let missed = 0;
  let cursor = new Date(earliest);
  while (missed <= 100) {
    const candidate = nextTime(schedule, cursor, zone);
    if (!candidate || candidate.getTime() > now.getTime()) break;
    missed++;
    cursor = candidate;
  }
  const next = nextTime(schedule, now, zone);
  if (missed === 0) return { missed, next };
  for (const windowMs of [3600_000, 86_400_000, 31 * 86_400_000, 366 * 86_400_000, horizonMs]) {
    let at = new Date(Math.max(earliest, now.getTime() - windowMs));
    let time: Date | undefined;
    for (let i = 0; i < 2000; i++) {
      const candidate = nextTime(schedule, at, zone);
      if (!candidate || candidate.getTime() > now.getTime()) break;
      time = candidate;
      at = candidate;
    }
    if (time) return { time, missed, next };
  }
  return { missed, next };
}

export function jobNameFor(cronJob: KObject, scheduled: Date): string {
  return `${String(cronJob.metadata.name)}-${Math.floor(scheduled.getTime() / minuteMs)}`;
}

export function jobFinished(job: KObject): 'Complete' | 'Failed' | undefined {
  for (const c of list(obj(job.status).conditions)) if ((c.type === 'Complete' || c.type === 'Failed') && c.status === 'True') return c.type;
  return undefined;
}

/** Finished jobs beyond the history limits, oldest first (cleanupFinishedJobs). */
export function historyToDelete(cronJob: KObject, jobs: KObject[]): KObject[] {
  const spec = obj(cronJob.spec);
  const byStart = (a: KObject, b: KObject) => String(obj(a.status).startTime ?? a.metadata.creationTimestamp ?? '').localeCompare(String(obj(b.status).startTime ?? b.metadata.creationTimestamp ?? ''));
  const excess = (state: 'Complete' | 'Failed', limit: number) => {
    const finished = jobs.filter((j) => jobFinished(j) === state && !j.metadata.deletionTimestamp).sort(byStart);
    return finished.slice(0, Math.max(0, finished.length - limit));
  };
  return [...excess('Complete', intOr(spec.successfulJobsHistoryLimit, 3)), ...excess('Failed', intOr(spec.failedJobsHistoryLimit, 1))];
}
