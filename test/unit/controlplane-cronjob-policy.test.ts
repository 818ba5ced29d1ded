// CronJob schedule arithmetic: node-cron parsing, time zones, cron's day-of-month/day-of-week
// rule, missed times with startingDeadlineSeconds, job names and history limits.
import { describe, expect, it } from 'vitest';
import type { KObject } from '../../controlplane/storage/types.js';
import { dueTime, historyToDelete, jobNameFor, nextTime, parseSchedule } from '../../controlplane/controllers/cronjob-policy.js';

describe('cron schedules', () => {
  it.each([
    ['*/15 * * * *', 'UTC', '2026-03-04T10:07:00Z', '2026-03-04T10:15:00Z'],
    ['0 9 * * 1', 'Europe/Paris', '2026-03-04T10:07:00Z', '2026-03-09T08:00:00Z'],
    ['0 0 1 * 1', 'UTC', '2026-03-04T10:07:00Z', '2026-03-09T00:00:00Z'], // restricted day-of-month OR day-of-week
    ['0 0 29 2 *', 'UTC', '2026-03-04T10:07:00Z', '2028-02-29T00:00:00Z'],
    ['@hourly', 'UTC', '2026-03-04T10:59:59Z', '2026-03-04T11:00:00Z'],
    ['30 2 * * *', 'Asia/Kolkata', '2026-03-04T00:00:00Z', '2026-03-04T21:00:00Z'],
  ])('%s in %s after %s → %s', (expression, zone, after, expected) => {
    const schedule = parseSchedule(expression);
    expect(schedule).toBeDefined();
    expect(nextTime(schedule!, new Date(after), zone)?.toISOString().replace('.000', '')).toBe(expected);
  });

  it('treats an impossible date as never firing', () => {
    expect(parseSchedule('0 0 30 2 *')).toBeUndefined();
    const cj = { metadata: { name: 'n', creationTimestamp: '2020-01-01T00:00:00Z' }, spec: { schedule: '0 0 30 2 *' } } as KObject;
    expect(dueTime(cj, new Date('2026-01-01T00:00:00Z'))).toEqual({ missed: 0 });
  });

  it('finds the latest missed time, counts misses and honours startingDeadlineSeconds', () => {
    const cj = (extra: Record<string, unknown>): KObject => ({ metadata: { name: 'c', creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { schedule: '*/1 * * * *', ...extra }, status: { lastScheduleTime: '2026-01-01T00:00:00Z' } });
    const now = new Date('2026-01-01T00:03:30Z');
    expect(dueTime(cj({}), now)).toMatchObject({ time: new Date('2026-01-01T00:03:00Z'), missed: 3, next: new Date('2026-01-01T00:04:00Z') });
    const later = dueTime(cj({}), new Date('2026-01-02T00:00:30Z'));
    expect(later.missed).toBeGreaterThan(100);
    expect(later.time).toEqual(new Date('2026-01-02T00:00:00Z'));
    expect(dueTime(cj({ startingDeadlineSeconds: 10 }), new Date('2026-01-01T00:03:30Z')).time).toBeUndefined();
    expect(jobNameFor(cj({}), new Date('2026-01-01T00:03:00Z'))).toBe(`c-${Math.floor(Date.parse('2026-01-01T00:03:00Z') / 60000)}`);
  });

  it('keeps successfulJobsHistoryLimit and failedJobsHistoryLimit', () => {
    const job = (name: string, type: string, start: string): KObject => ({ metadata: { name }, status: { startTime: start, conditions: [{ type, status: 'True' }] } });
    const jobs = [job('s1', 'Complete', '1'), job('s2', 'Complete', '2'), job('s3', 'Complete', '3'), job('f1', 'Failed', '1'), job('f2', 'Failed', '2'), { metadata: { name: 'running' }, status: {} } as KObject];
    const cj = { metadata: { name: 'c' }, spec: { successfulJobsHistoryLimit: 1, failedJobsHistoryLimit: 1 } } as KObject;
    expect(historyToDelete(cj, jobs).map((j) => j.metadata.name)).toEqual(['s1', 's2', 'f1']);
  });
});
