/**
 * Label and field selectors as the API accepts them in `labelSelector` / `fieldSelector`
 * (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors,
 * .../field-selectors/). Pure: parse once, then match objects.
 */
import type { KObject } from './storage/types.js';
import { recordOf, stringOf } from './util.js';

type LabelOperator = 'in' | 'notin' | 'exists' | '!' | '=' | '!=' | 'gt' | 'lt';

export interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  values: string[];
}

export class SelectorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SelectorError';
  }
}

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of text) {
    if (char === '(') depth++;
    if (char === ')') depth--;
    if (depth < 0) throw new SelectorError(`unbalanced parentheses in "${text}"`);
    if (char === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += char;
  }
  if (depth !== 0) throw new SelectorError(`unbalanced parentheses in "${text}"`);
  parts.push(current);
  return parts.map((part) => part.trim());
}

const keyPattern = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const valuePattern = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function checkKey(key: string): string {
  if (!keyPattern.test(key) || key.length > 316) throw new SelectorError(`invalid label key "${key}"`);
  return key;
}

function checkValue(value: string): string {
  if (!valuePattern.test(value) || value.length > 63) throw new SelectorError(`invalid label value: "${value}"`);
  return value;
}

function parseRequirement(text: string): LabelRequirement {
  const setMatch = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(text);
  if (setMatch) {
    const inner = (setMatch[3] ?? '').trim();
    // labels.NewRequirement: "for 'in', 'notin' operators, values set can't be empty".
    if (inner === '') throw new SelectorError(`for 'in', 'notin' operators, values set can't be empty`);
    const values = inner.split(',').map((v) => checkValue(v.trim()));
    return { key: checkKey(setMatch[1] ?? ''), operator: setMatch[2] === 'notin' ? 'notin' : 'in', values };
  }
  if (text.startsWith('!')) return { key: checkKey(text.slice(1).trim()), operator: '!', values: [] };
  // apimachinery's selection.GreaterThan / LessThan: `key>N`, `key<N` with one integer value.
  const numeric = /^([^<>=!\s]+)\s*([<>])\s*(.*)$/.exec(text);
  if (numeric) {
    const value = (numeric[3] ?? '').trim();
    if (!/^-?[0-9]+$/.test(value)) throw new SelectorError(`for 'Gt', 'Lt' operators, the value must be an integer: "${value}"`);
    return { key: checkKey(numeric[1] ?? ''), operator: numeric[2] === '>' ? 'gt' : 'lt', values: [value] };
  }
  const opMatch = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(text);
  if (opMatch) {
    const operator = opMatch[2] === '!=' ? '!=' : '=';
    return { key: checkKey(opMatch[1] ?? ''), operator, values: [checkValue((opMatch[3] ?? '').trim())] };
  }
  return { key: checkKey(text), operator: 'exists', values: [] };
}

export function parseLabelSelector(text: string | undefined): LabelRequirement[] {
  if (text === undefined || text.trim() === '') return [];
  return splitTopLevel(text).map((part) => {
    if (part === '') throw new SelectorError(`empty requirement in label selector "${text}"`);
    return parseRequirement(part);
  });
}

export function matchesLabels(requirements: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const set = labels ?? {};
  return requirements.every(({ key, operator, values }) => {
    const has = Object.prototype.hasOwnProperty.call(set, key);
    // Own labels only: `constructor` is not a label of every object.
    const value = has ? set[key] : undefined;
    switch (operator) {
      case 'exists':
        return has;
      case '!':
        return !has;
      case '=':
      case 'in':
        return value !== undefined && values.includes(value);
      case '!=':
      case 'notin':
        return value === undefined || !values.includes(value);
      case 'gt':
      case 'lt': {
        // A label whose value is not an integer does not match (labels.Requirement.Matches).
        if (value === undefined || !/^-?[0-9]+$/.test(value)) return false;
        const actual = Number(value);
        const bound = Number(values[0]);
        return operator === 'gt' ? actual > bound : actual < bound;
      }
    }
    return false;
  });
}

export interface FieldRequirement {
  field: string;
  equal: boolean;
  value: string;
}

/** Fields every kind supports, plus the ones the pod/node/event registries add. */
const fieldGetters: Record<string, (object: KObject) => string | undefined> = {
  'metadata.name': (o) => o.metadata.name,
  'metadata.namespace': (o) => o.metadata.namespace,
  'spec.nodeName': (o) => stringOf(recordOf(o.spec).nodeName) ?? '',
  'spec.schedulerName': (o) => stringOf(recordOf(o.spec).schedulerName) ?? '',
  'spec.unschedulable': (o) => String(recordOf(o.spec).unschedulable === true),
  'status.phase': (o) => stringOf(recordOf(o.status).phase) ?? '',
  'status.podIP': (o) => stringOf(recordOf(o.status).podIP) ?? '',
  'involvedObject.name': (o) => stringOf(recordOf(o.involvedObject).name) ?? '',
  'involvedObject.kind': (o) => stringOf(recordOf(o.involvedObject).kind) ?? '',
  'involvedObject.namespace': (o) => stringOf(recordOf(o.involvedObject).namespace) ?? '',
  'involvedObject.uid': (o) => stringOf(recordOf(o.involvedObject).uid) ?? '',
  // The rest of kube-apiserver's event fields (pkg/registry/core/event/strategy.go ToSelectableFields);
  // `kubectl events --for` selects on involvedObject.apiVersion.
  'involvedObject.apiVersion': (o) => stringOf(recordOf(o.involvedObject).apiVersion) ?? '',
  'involvedObject.resourceVersion': (o) => stringOf(recordOf(o.involvedObject).resourceVersion) ?? '',
  'involvedObject.fieldPath': (o) => stringOf(recordOf(o.involvedObject).fieldPath) ?? '',
  reason: (o) => (typeof o.reason === 'string' ? o.reason : ''),
  reportingComponent: (o) => (typeof o.reportingComponent === 'string' ? o.reportingComponent : ''),
  source: (o) => stringOf(recordOf(o.source).component) ?? (typeof o.reportingComponent === 'string' ? o.reportingComponent : ''),
  type: (o) => (typeof o.type === 'string' ? o.type : ''),
};

export function parseFieldSelector(text: string | undefined): FieldRequirement[] {
  if (text === undefined || text.trim() === '') return [];
  return text.split(',').map((part) => {
    const match = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part);
    if (!match) throw new SelectorError(`invalid selector: '${text}'; can't understand '${part}'`);
    const field = match[1] ?? '';
    if (!fieldGetters[field]) throw new SelectorError(`field label not supported: ${field}`);
    return { field, equal: match[2] !== '!=', value: match[3] ?? '' };
  });
}

export function matchesFields(requirements: FieldRequirement[], object: KObject): boolean {
  return requirements.every(({ field, equal, value }) => {
    const actual = fieldGetters[field]?.(object) ?? '';
    return (actual === value) === equal;
  });
}

/** A selector of a Service or a workload (`matchLabels` form): every pair must match. */
export function matchesMap(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  const set = labels ?? {};
  return Object.entries(selector).every(([key, value]) => set[key] === value);
}
