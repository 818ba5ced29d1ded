/**
 * What the workload kinds (apps/v1, batch/v1) share: the label selector (metav1.LabelSelector)
 * and its match against labels, pod-template defaulting through the Pod defaults, and the
 * validation kube-apiserver runs on every pod template (apps/validation ValidatePodTemplateSpecForReplicaSet):
 * a non-empty selector that selects the template's labels, a valid template spec, a restart
 * policy the kind allows.
 */
import type { StatusCause } from './status.js';
import type { KObject } from './storage/types.js';
import { validatePod } from './kinds-pod.js';
import { defaultPodSpec } from './defaults-core.js';
import { checkLabels, forbidden, invalidValue, required, unsupported } from './validation.js';
import { canonicalJson, isRecord } from './util.js';

type Obj = Record<string, unknown>;
export const obj = (value: unknown): Obj => (isRecord(value) ? value : {});

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

const operators = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** metav1.LabelSelectorAsSelector: every matchLabels pair and every expression must hold; an empty selector matches everything. */
export function selectorMatches(selector: unknown, labels: Record<string, string> | undefined): boolean {
  const s = obj(selector);
  const have = labels ?? {};
  for (const [key, value] of Object.entries(obj(s.matchLabels))) if (have[key] !== value) return false;
  for (const raw of Array.isArray(s.matchExpressions) ? s.matchExpressions : []) {
    const e = obj(raw);
    const key = String(e.key);
    const values = Array.isArray(e.values) ? e.values.map(String) : [];
    const present = Object.hasOwn(have, key);
    if (e.operator === 'In' && !(present && values.includes(have[key] as string))) return false;
    if (e.operator === 'NotIn' && present && values.includes(have[key] as string)) return false;
    if (e.operator === 'Exists' && !present) return false;
    if (e.operator === 'DoesNotExist' && present) return false;
    if (!operators.includes(String(e.operator))) return false;
  }
  return true;
}

/** The selector in the string form of `status.selector` (what the scale subresource and HPA read). */
export function selectorString(selector: unknown): string {
  const s = obj(selector);
  const parts = Object.entries(obj(s.matchLabels)).map(([k, v]) => `${k}=${String(v)}`);
  for (const raw of Array.isArray(s.matchExpressions) ? s.matchExpressions : []) {
    const e = obj(raw);
    const values = Array.isArray(e.values) ? e.values.map(String).sort().join(',') : '';
    if (e.operator === 'In') parts.push(`${String(e.key)} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${String(e.key)} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(String(e.key));
    else if (e.operator === 'DoesNotExist') parts.push(`!${String(e.key)}`);
  }
  return parts.sort().join(',');
}

export function validateSelector(field: string, selector: unknown): StatusCause[] {
  if (!isRecord(selector)) return [required(field)];
  const causes = checkLabels(`${field}.matchLabels`, selector.matchLabels);
  const expressions = selector.matchExpressions;
  if (expressions !== undefined && !Array.isArray(expressions)) causes.push(invalidValue(`${field}.matchExpressions`, expressions, 'must be a list'));
  if (Array.isArray(expressions))
    expressions.forEach((raw, i) => {
      const e = obj(raw);
      const path = `${field}.matchExpressions[${i}]`;
      if (!operators.includes(String(e.operator))) causes.push(unsupported(`${path}.operator`, e.operator, operators));
      const values = Array.isArray(e.values) ? e.values : [];
      if ((e.operator === 'In' || e.operator === 'NotIn') && values.length === 0) causes.push(required(`${path}.values`));
      if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && values.length > 0) causes.push(forbidden(`${path}.values`, 'may not be specified when `operator` is \'Exists\' or \'DoesNotExist\''));
    });
  if (Object.keys(obj(selector.matchLabels)).length === 0 && (!Array.isArray(expressions) || expressions.length === 0))
    causes.push(invalidValue(field, selector, 'empty selector is invalid for deployment'));
  return causes;
}

/** Defaults a pod template as kube-apiserver does (SetDefaults_PodSpec and below; not SetDefaults_Pod nor pod admission: defaults-core.ts). */
export function defaultTemplate(template: unknown, restartPolicy?: string): Obj {
  const t = obj(template);
  const spec = obj(t.spec);
  if (restartPolicy && spec.restartPolicy === undefined) spec.restartPolicy = restartPolicy;
  defaultPodSpec(spec);
  const metadata = obj(t.metadata);
  if (metadata.generation === 0) delete metadata.generation;
  // kube-apiserver stores a template's zero creationTimestamp as null (metav1.Time of the Go struct).
  if (typeof metadata.creationTimestamp !== 'string') metadata.creationTimestamp = null;
  return { ...t, metadata, spec };
}

/** Template validation with field paths under `field` (spec.template). */
export function validateTemplate(field: string, template: unknown, selector: unknown, allowedRestart: string[]): StatusCause[] {
  if (!isRecord(template)) return [required(field)];
  const metadata = obj(template.metadata);
  const labels = (isRecord(metadata.labels) ? metadata.labels : {}) as Record<string, string>;
  const causes: StatusCause[] = checkLabels(`${field}.metadata.labels`, metadata.labels);
  if (isRecord(selector) && !selectorMatches(selector, labels))
    causes.push(invalidValue(`${field}.metadata.labels`, labels, '`selector` does not match template `labels`'));
  // Validate as a pod named by the template; metadata name rules do not apply to templates.
  const pod = { metadata: { name: 'template', namespace: 'default' }, spec: template.spec } as KObject;
  for (const cause of validatePod(pod)) causes.push({ ...cause, field: `${field}.${cause.field ?? ''}`.replace(/\.$/, '') });
  const restart = obj(template.spec).restartPolicy;
  if (restart !== undefined && !allowedRestart.includes(String(restart))) causes.push(unsupported(`${field}.spec.restartPolicy`, restart, allowedRestart));
  return causes;
}

export function nonNegativeInt(field: string, value: unknown): StatusCause[] {
  if (value === undefined || value === null) return [];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) return [invalidValue(field, value, 'must be greater than or equal to 0')];
  return [];
}

export function positiveInt(field: string, value: unknown): StatusCause[] {
  if (value === undefined || value === null) return [];
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) return [invalidValue(field, value, 'must be greater than 0')];
  return [];
}

/** `spec.selector` may not change after creation (apps/v1 and batch/v1 both make it immutable). */
export function immutableSelector(object: KObject, old: KObject | undefined): StatusCause[] {
  if (!old) return [];
  if (canonicalJson(obj(object.spec).selector) === canonicalJson(obj(old.spec).selector)) return [];
  return [invalidValue('spec.selector', obj(object.spec).selector, 'field is immutable')];
}

/** An int-or-percent (intstr.IntOrString) against a total: percentages round up or down as the caller asks. */
export function scaledValue(value: unknown, total: number, roundUp: boolean): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^\d+%$/.test(value)) {
    const exact = (Number.parseInt(value, 10) * total) / 100;
    return roundUp ? Math.ceil(exact) : Math.floor(exact);
  }
  if (typeof value === 'string' && /^\d+$/.test(value)) return Number.parseInt(value, 10);
  return 0;
}

export function checkIntOrPercent(field: string, value: unknown): StatusCause[] {
  if (value === undefined) return [];
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return [];
  if (typeof value === 'string' && /^\d+%$/.test(value)) {
    if (Number.parseInt(value, 10) > 100) return [invalidValue(field, value, 'must not be greater than 100%')];
    return [];
  }
  return [invalidValue(field, value, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")];
}

/** The shape of kinds.ts KindStrategy, restated so that these modules do not import kinds.ts (which imports them). */
export interface WorkloadStrategy {
  defaults?(object: KObject): void;
  prepareForCreate?(object: KObject): void;
  validate(object: KObject, old: KObject | undefined): StatusCause[];
}

/**
 * PrepareForCreate of the kinds with a status subresource (deployment, replicaset, daemonset,
 * job and cronjob strategy.go): status is not writable through the main resource, on create
 * either; what a client sends there is dropped.
 */
export function clearStatus(object: KObject): void {
  object.status = {};
}
