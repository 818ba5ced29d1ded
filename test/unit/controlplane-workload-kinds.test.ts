// apps/v1 and batch/v1 defaulting and validation as kube-apiserver does them (field paths included).
import { describe, expect, it } from 'vitest';
import { strategies } from '../../controlplane/kinds.js';
import type { KObject } from '../../controlplane/storage/types.js';
import { cronScheduleError } from '../../controlplane/kinds-batch.js';
import { selectorMatches, selectorString } from '../../controlplane/kinds-workload.js';

const template = (labels: Record<string, string>, restartPolicy?: string) => ({ metadata: { labels }, spec: { ...(restartPolicy ? { restartPolicy } : {}), containers: [{ name: 'c', image: 'i:1' }] } });
const object = (kind: string, spec: Record<string, unknown>, name = 'x'): KObject => ({ apiVersion: 'v', kind, metadata: { name, namespace: 'ns', uid: 'u-1' }, spec });
function check(kind: string, spec: Record<string, unknown>, old?: KObject, name?: string): { object: KObject; fields: string[] } {
  const o = object(kind, spec, name);
  strategies[kind]?.defaults?.(o);
  return { object: o, fields: (strategies[kind]?.validate(o, old) ?? []).map((c) => `${c.field}: ${c.message}`) };
}

describe('workload defaults', () => {
  it('defaults a Deployment as apps/v1 does', () => {
    const { object: d, fields } = check('Deployment', { selector: { matchLabels: { a: 'b' } }, template: template({ a: 'b' }) });
    expect(fields).toEqual([]);
    expect(d.spec).toMatchObject({ replicas: 1, revisionHistoryLimit: 10, progressDeadlineSeconds: 600, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } } });
    expect(d.spec).toMatchObject({ template: { metadata: { creationTimestamp: null }, spec: { restartPolicy: 'Always', dnsPolicy: 'ClusterFirst', terminationGracePeriodSeconds: 30 } } });
  });

  it('defaults a DaemonSet, a Job (with its generated selector) and a CronJob', () => {
    expect(check('DaemonSet', { selector: { matchLabels: { a: 'b' } }, template: template({ a: 'b' }) }).object.spec).toMatchObject({ updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } }, revisionHistoryLimit: 10 });
    const { object: job, fields } = check('Job', { template: template({}, 'Never') }, undefined, 'pi');
    expect(fields).toEqual([]);
    expect(job.spec).toMatchObject({ completions: 1, parallelism: 1, backoffLimit: 6, completionMode: 'NonIndexed', suspend: false, podReplacementPolicy: 'TerminatingOrFailed', selector: { matchLabels: { 'batch.kubernetes.io/controller-uid': 'u-1' } } });
    expect(job.spec).toMatchObject({ template: { metadata: { labels: { 'batch.kubernetes.io/job-name': 'pi', 'job-name': 'pi', 'controller-uid': 'u-1' } } } });
    expect(check('Job', { parallelism: 4, template: template({}, 'Never') }).object.spec).toMatchObject({ parallelism: 4 });
    const cron = check('CronJob', { schedule: '*/1 * * * *', jobTemplate: { spec: { template: template({}, 'OnFailure') } } });
    expect(cron.fields).toEqual([]);
    expect(cron.object.spec).toMatchObject({ concurrencyPolicy: 'Allow', suspend: false, successfulJobsHistoryLimit: 3, failedJobsHistoryLimit: 1 });
  });
});

describe('workload validation', () => {
  it.each([
    ['Deployment', { selector: { matchLabels: { a: 'b' } }, template: template({ a: 'c' }) }, 'spec.template.metadata.labels: Invalid value: {"a":"c"}: `selector` does not match template `labels`'],
    ['Deployment', { template: template({ a: 'b' }) }, 'spec.selector: Required value'],
    ['Deployment', { selector: {}, template: template({ a: 'b' }) }, 'spec.selector: Invalid value: {}: empty selector is invalid for deployment'],
    ['Deployment', { replicas: -1, selector: { matchLabels: { a: 'b' } }, template: template({ a: 'b' }) }, 'spec.replicas: Invalid value: -1: must be greater than or equal to 0'],
    ['Deployment', { selector: { matchLabels: { a: 'b' } }, strategy: { type: 'Recreate', rollingUpdate: {} }, template: template({ a: 'b' }) }, "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"],
    ['Deployment', { selector: { matchLabels: { a: 'b' } }, strategy: { rollingUpdate: { maxSurge: '120%' } }, template: template({ a: 'b' }) }, 'spec.strategy.rollingUpdate.maxSurge: Invalid value: "120%": must not be greater than 100%'],
    ['Deployment', { selector: { matchLabels: { a: 'b' } }, minReadySeconds: 700, template: template({ a: 'b' }) }, 'spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds'],
    ['Deployment', { selector: { matchLabels: { a: 'b' } }, template: template({ a: 'b' }, 'Never') }, 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'],
    ['ReplicaSet', { selector: { matchExpressions: [{ key: 'a', operator: 'In' }] }, template: template({ a: 'b' }) }, 'spec.selector.matchExpressions[0].values: Required value'],
    ['DaemonSet', { selector: { matchLabels: { a: 'b' } }, updateStrategy: { type: 'Sometimes' }, template: template({ a: 'b' }) }, 'spec.updateStrategy.type: Unsupported value: "Sometimes": supported values: "OnDelete", "RollingUpdate"'],
    ['Job', { template: template({}) }, 'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"'],
    ['Job', { completionMode: 'Indexed', completions: null, template: template({}, 'Never') }, 'spec.completions: Required value'],
    ['Job', { backoffLimit: -1, template: template({}, 'Never') }, 'spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0'],
    ['Job', { podFailurePolicy: { rules: [{ action: 'Explode', onExitCodes: { operator: 'In', values: [1] } }] }, template: template({}, 'Never') }, 'spec.podFailurePolicy.rules[0].action: Unsupported value: "Explode": supported values: "Count", "FailIndex", "FailJob", "Ignore"'],
    ['CronJob', { schedule: '61 * * * *', jobTemplate: { spec: { template: template({}, 'Never') } } }, 'spec.schedule: Invalid value'],
    ['CronJob', { schedule: '@hourly', timeZone: 'Mars/Olympus', jobTemplate: { spec: { template: template({}, 'Never') } } }, 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone'],
    ['CronJob', { schedule: '@hourly', concurrencyPolicy: 'Sometimes', jobTemplate: { spec: { template: template({}, 'Never') } } }, 'spec.concurrencyPolicy: Unsupported value: "Sometimes"'],
  ])('%s %j → %s', (kind, spec, expected) => {
    expect(check(kind, spec).fields.some((f) => f.startsWith(expected))).toBe(true);
  });

  it('keeps selectors immutable and Job templates fixed unless suspended', () => {
    const old = check('Deployment', { selector: { matchLabels: { a: 'b' } }, template: template({ a: 'b', c: 'd' }) }).object;
    expect(check('Deployment', { selector: { matchLabels: { c: 'd' } }, template: template({ a: 'b', c: 'd' }) }, old).fields).toContain('spec.selector: Invalid value: {"matchLabels":{"c":"d"}}: field is immutable');
    const job = check('Job', { template: template({}, 'Never') }).object;
    const changed = JSON.parse(JSON.stringify(job.spec)) as Record<string, unknown>;
    (changed.template as { spec: { containers: { image: string }[] } }).spec.containers[0]!.image = 'i:2';
    expect(check('Job', changed, job).fields.some((f) => f.startsWith('spec.template: Invalid value'))).toBe(true);
  });

  it('parses cron schedules as kube does, and matches label selectors', () => {
    expect(cronScheduleError('*/5 * * * *')).toBeUndefined();
    expect(cronScheduleError('@daily')).toBeUndefined();
    expect(cronScheduleError('0 0 30 2 *')).toBeUndefined();
    expect(cronScheduleError('* * * * * *')).toMatch(/exactly 5 fields/);
    expect(cronScheduleError('TZ=UTC * * * * *')).toMatch(/timeZone field/);
    const selector = { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['b', 'a'] }, { key: 'canary', operator: 'DoesNotExist' }] };
    expect(selectorMatches(selector, { app: 'web', tier: 'a' })).toBe(true);
    expect(selectorMatches(selector, { app: 'web', tier: 'a', canary: 'y' })).toBe(false);
    expect(selectorString(selector)).toBe('!canary,app=web,tier in (a,b)');
  });
});
