/**
 * batch/v1 strategies: Job and CronJob. Defaults follow pkg/apis/batch/v1/defaults.go
 * (completions/parallelism 1, backoffLimit 6, completionMode NonIndexed, suspend false,
 * podReplacementPolicy; CronJob concurrencyPolicy Allow, suspend false, history limits 3/1), the
 * generated selector of pkg/registry/batch/job/strategy.go (`batch.kubernetes.io/controller-uid`
 * plus the job-name labels on the template unless manualSelector), validation
 * pkg/apis/batch/validation.
 */
import cron from 'node-cron';
import type { StatusCause } from './status.js';
import type { KObject } from './storage/types.js';
import { checkMetadata, invalidValue, required, unsupported } from './validation.js';
import { canonicalJson, isRecord } from './util.js';
import { type WorkloadStrategy, clearStatus, defaultTemplate, immutableSelector, nonNegativeInt, obj, positiveInt, validateSelector, validateTemplate } from './kinds-workload.js';

const controllerUidLabel = 'batch.kubernetes.io/controller-uid';
const jobNameLabel = 'batch.kubernetes.io/job-name';

function defaultJobSpec(spec: Record<string, unknown>): void {
  if (spec.completions === undefined && spec.parallelism === undefined) {
    spec.completions = 1;
    spec.parallelism = 1;
  }
  spec.parallelism ??= 1;
  spec.backoffLimit ??= 6;
  spec.completionMode ??= 'NonIndexed';
  spec.suspend ??= false;
  spec.manualSelector ??= undefined;
  if (spec.manualSelector === undefined) delete spec.manualSelector;
  spec.podReplacementPolicy ??= isRecord(spec.podFailurePolicy) ? 'Failed' : 'TerminatingOrFailed';
  for (const rule of Array.isArray(obj(spec.podFailurePolicy).rules) ? (obj(spec.podFailurePolicy).rules as unknown[]) : [])
    for (const pattern of Array.isArray(obj(rule).onPodConditions) ? (obj(rule).onPodConditions as unknown[]) : []) if (isRecord(pattern)) pattern.status ??= 'True';
}

function defaultJob(job: KObject): void {
  const spec = obj(job.spec);
  job.spec = spec;
  defaultJobSpec(spec);
  const template = defaultTemplate(spec.template);
  // Generated selector (jobs strategy generateSelector): only when the user does not pick one.
  if (spec.manualSelector !== true && spec.selector === undefined && job.metadata.uid) {
    const uid = job.metadata.uid;
    const name = job.metadata.name ?? '';
    spec.selector = { matchLabels: { [controllerUidLabel]: uid } };
    const metadata = obj(template.metadata);
    metadata.labels = { ...obj(metadata.labels), [controllerUidLabel]: uid, [jobNameLabel]: name, 'controller-uid': uid, 'job-name': name };
    template.metadata = metadata;
  }
  spec.template = template;
}

const podFailureActions = ['Count', 'FailIndex', 'FailJob', 'Ignore'];

function validatePodFailurePolicy(policy: unknown, restart: unknown): StatusCause[] {
  if (policy === undefined || policy === null) return [];
  const causes: StatusCause[] = [];
  if (restart !== 'Never') causes.push(invalidValue('spec.template.spec.restartPolicy', restart, 'only "Never" is supported when podFailurePolicy is specified'));
  const rules = obj(policy).rules;
  if (!Array.isArray(rules)) return [...causes, required('spec.podFailurePolicy.rules')];
  if (rules.length > 20) causes.push({ reason: 'FieldValueTooMany', message: 'Too many: must have at most 20 items', field: 'spec.podFailurePolicy.rules' });
  rules.forEach((raw, i) => {
    const rule = obj(raw);
    const path = `spec.podFailurePolicy.rules[${i}]`;
    if (!podFailureActions.includes(String(rule.action))) causes.push(unsupported(`${path}.action`, rule.action, podFailureActions));
    const exit = rule.onExitCodes;
    const conditions = rule.onPodConditions;
    if ((exit === undefined) === (conditions === undefined)) causes.push(invalidValue(path, '', 'specifying one of OnExitCodes and OnPodConditions is required'));
    if (exit !== undefined) {
      const e = obj(exit);
      if (!['In', 'NotIn'].includes(String(e.operator))) causes.push(unsupported(`${path}.onExitCodes.operator`, e.operator, ['In', 'NotIn']));
      const values = Array.isArray(e.values) ? e.values : [];
      if (values.length === 0 || values.length > 255) causes.push(required(`${path}.onExitCodes.values`));
      values.forEach((v, j) => {
        if (typeof v !== 'number' || !Number.isInteger(v)) causes.push(invalidValue(`${path}.onExitCodes.values[${j}]`, v, 'must be an integer'));
        else if (v === 0 && e.operator === 'In') causes.push(invalidValue(`${path}.onExitCodes.values[${j}]`, v, 'must not be 0 for the In operator'));
      });
    }
  });
  return causes;
}

function validateJobSpec(spec: Record<string, unknown>, field = 'spec', generated = false): StatusCause[] {
  const causes: StatusCause[] = [];
  causes.push(...nonNegativeInt(`${field}.parallelism`, spec.parallelism), ...nonNegativeInt(`${field}.completions`, spec.completions));
  causes.push(...nonNegativeInt(`${field}.backoffLimit`, spec.backoffLimit), ...positiveInt(`${field}.activeDeadlineSeconds`, spec.activeDeadlineSeconds));
  causes.push(...nonNegativeInt(`${field}.ttlSecondsAfterFinished`, spec.ttlSecondsAfterFinished));
  if (spec.completionMode !== undefined && !['NonIndexed', 'Indexed'].includes(String(spec.completionMode)))
    causes.push(unsupported(`${field}.completionMode`, spec.completionMode, ['NonIndexed', 'Indexed']));
  if (spec.completionMode === 'Indexed') {
    if (spec.completions === undefined || spec.completions === null) causes.push(required(`${field}.completions`));
    else if (typeof spec.completions === 'number' && spec.completions > 100_000) causes.push(invalidValue(`${field}.completions`, spec.completions, 'must be less than or equal to 100000 when completion mode is Indexed'));
  }
  if (spec.selector !== undefined || !generated) causes.push(...validateSelector(`${field}.selector`, spec.selector).filter((c) => !(generated && c.reason === 'FieldValueRequired')));
  causes.push(...validateTemplate(`${field}.template`, spec.template, spec.selector, ['OnFailure', 'Never']));
  const restart = obj(obj(spec.template).spec).restartPolicy;
  if (restart === undefined) causes.push(required(`${field}.template.spec.restartPolicy`));
  causes.push(...validatePodFailurePolicy(spec.podFailurePolicy, restart).map((c) => ({ ...c, field: c.field?.replace(/^spec\./, `${field}.`) })));
  return causes;
}

function validateJob(job: KObject, old: KObject | undefined): StatusCause[] {
  const causes = checkMetadata(job, 'subdomain');
  const spec = obj(job.spec);
  causes.push(...validateJobSpec(spec));
  if (old) {
    causes.push(...immutableSelector(job, old));
    const before = obj(old.spec);
    if (canonicalJson(spec.completionMode) !== canonicalJson(before.completionMode)) causes.push(invalidValue('spec.completionMode', spec.completionMode, 'field is immutable'));
    if (canonicalJson(spec.template) !== canonicalJson(before.template) && before.suspend !== true)
      causes.push(invalidValue('spec.template', '', 'field is immutable'));
    if (spec.completionMode !== 'Indexed' && spec.completions !== before.completions) causes.push(invalidValue('spec.completions', spec.completions, 'field is immutable'));
  }
  return causes;
}

function defaultCronJob(cj: KObject): void {
  const spec = obj(cj.spec);
  cj.spec = spec;
  spec.concurrencyPolicy ??= 'Allow';
  spec.suspend ??= false;
  spec.successfulJobsHistoryLimit ??= 3;
  spec.failedJobsHistoryLimit ??= 1;
  const jobTemplate = obj(spec.jobTemplate);
  const jobSpec = obj(jobTemplate.spec);
  jobSpec.template = defaultTemplate(jobSpec.template);
  jobTemplate.spec = jobSpec;
  spec.jobTemplate = jobTemplate;
}

/** A time zone name the runtime knows (CronJob spec.timeZone is an IANA name). */
function validTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return !zone.includes(' ');
  } catch {
    return false;
  }
}

/** kube's cron accepts five fields and the @-macros (robfig/cron standard parser). */
export function cronScheduleError(schedule: string): string | undefined {
  const macros = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];
  if (macros.includes(schedule.trim())) return undefined;
  if (/TZ=|CRON_TZ=/.test(schedule)) return 'cannot use TZ or CRON_TZ in schedule, use timeZone field instead';
  const fields = schedule.trim().split(/\s+/);
  if (fields.length !== 5) return `expected exactly 5 fields, found ${fields.length}: ${schedule}`;
  const detail = cron.validateDetailed(schedule);
  // A date that never comes (30 February) is a valid schedule that never fires, as in kube's parser.
  const errors = detail.errors.filter((e) => !e.message.includes('impossible day of month'));
  if (!detail.valid && errors.length > 0) return errors.map((e) => e.message).join('; ') || 'invalid schedule';
  return undefined;
}

function validateCronJob(cj: KObject): StatusCause[] {
  const causes = checkMetadata(cj, 'subdomain');
  if (typeof cj.metadata.name === 'string' && cj.metadata.name.length > 52) causes.push(invalidValue('metadata.name', cj.metadata.name, 'must be no more than 52 characters'));
  const spec = obj(cj.spec);
  if (typeof spec.schedule !== 'string' || spec.schedule === '') causes.push(required('spec.schedule'));
  else {
    const error = cronScheduleError(spec.schedule);
    if (error) causes.push(invalidValue('spec.schedule', spec.schedule, error));
  }
  if (spec.timeZone !== undefined && spec.timeZone !== null && (typeof spec.timeZone !== 'string' || !validTimeZone(spec.timeZone)))
    causes.push(invalidValue('spec.timeZone', spec.timeZone, 'unknown time zone'));
  if (!['Allow', 'Forbid', 'Replace'].includes(String(spec.concurrencyPolicy))) causes.push(unsupported('spec.concurrencyPolicy', spec.concurrencyPolicy, ['Allow', 'Forbid', 'Replace']));
  causes.push(...nonNegativeInt('spec.startingDeadlineSeconds', spec.startingDeadlineSeconds));
  causes.push(...nonNegativeInt('spec.successfulJobsHistoryLimit', spec.successfulJobsHistoryLimit), ...nonNegativeInt('spec.failedJobsHistoryLimit', spec.failedJobsHistoryLimit));
  const jobSpec = obj(obj(spec.jobTemplate).spec);
  causes.push(...validateJobSpec(jobSpec, 'spec.jobTemplate.spec', true));
  return causes;
}

export const batchStrategies: Record<string, WorkloadStrategy> = {
  Job: { defaults: defaultJob, prepareForCreate: clearStatus, validate: validateJob },
  CronJob: { defaults: defaultCronJob, prepareForCreate: clearStatus, validate: validateCronJob },
};
