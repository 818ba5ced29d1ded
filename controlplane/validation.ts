/**
 * Server-side validation, with kube-apiserver's field paths and messages
 * (k8s.io/apimachinery/pkg/util/validation, k8s.io/kubernetes/pkg/apis/core/validation). Each
 * check returns causes; the registry turns a non-empty list into a 422 Invalid Status.
 */
import type { StatusCause } from './status.js';
import type { KObject } from './storage/types.js';

const dns1123LabelRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123SubdomainRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dns1035LabelRe = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export const required = (field: string): StatusCause => ({ reason: 'FieldValueRequired', message: 'Required value', field });

export function invalidValue(field: string, value: unknown, detail: string): StatusCause {
  return { reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${detail}`, field };
}

export const duplicate = (field: string, value: unknown): StatusCause => ({
  reason: 'FieldValueDuplicate',
  message: `Duplicate value: ${JSON.stringify(value)}`,
  field,
});

export function unsupported(field: string, value: unknown, supported: string[]): StatusCause {
  return {
    reason: 'FieldValueNotSupported',
    message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${supported.map((s) => `"${s}"`).join(', ')}`,
    field,
  };
}

export const forbidden = (field: string, detail: string): StatusCause => ({ reason: 'FieldValueForbidden', message: `Forbidden: ${detail}`, field });

export type NameRule = 'subdomain' | 'label' | 'dns1035' | 'path';

export function checkName(field: string, name: string, rule: NameRule): StatusCause[] {
  if (rule === 'path') {
    return name === '.' || name === '..' || name.includes('/') || name.includes('%')
      ? [invalidValue(field, name, `may not be '.' or '..' and may not contain '/' or '%'`)]
      : [];
  }
  if (rule === 'subdomain') {
    if (name.length > 253) return [invalidValue(field, name, 'must be no more than 253 characters')];
    if (!dns1123SubdomainRe.test(name))
      return [
        invalidValue(
          field,
          name,
          `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
        ),
      ];
    return [];
  }
  if (name.length > 63) return [invalidValue(field, name, 'must be no more than 63 characters')];
  if (rule === 'label' && !dns1123LabelRe.test(name))
    return [
      invalidValue(
        field,
        name,
        `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
      ),
    ];
  if (rule === 'dns1035' && !dns1035LabelRe.test(name))
    return [
      invalidValue(
        field,
        name,
        `a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
      ),
    ];
  return [];
}

const labelKeyRe = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const labelValueRe = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

export function checkLabels(field: string, labels: unknown): StatusCause[] {
  if (labels === undefined || labels === null) return [];
  if (typeof labels !== 'object' || Array.isArray(labels)) return [invalidValue(field, labels, 'must be a map of strings')];
  const causes: StatusCause[] = [];
  for (const [key, value] of Object.entries(labels as Record<string, unknown>)) {
    const name = key.includes('/') ? key.slice(key.indexOf('/') + 1) : key;
    if (!labelKeyRe.test(key) || name.length > 63)
      causes.push(invalidValue(field, key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
    if (typeof value !== 'string' || value.length > 63 || !labelValueRe.test(value))
      causes.push(invalidValue(`${field}`, value, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
  }
  return causes;
}

function checkAnnotations(field: string, annotations: unknown): StatusCause[] {
  if (annotations === undefined || annotations === null) return [];
  if (typeof annotations !== 'object' || Array.isArray(annotations)) return [invalidValue(field, annotations, 'must be a map of strings')];
  let total = 0;
  const causes: StatusCause[] = [];
  for (const [key, value] of Object.entries(annotations as Record<string, unknown>)) {
    if (!labelKeyRe.test(key)) causes.push(invalidValue(field, key, "name part must consist of alphanumeric characters, '-', '_' or '.'"));
    if (typeof value !== 'string') causes.push(invalidValue(`${field}[${key}]`, value, 'must be a string'));
    else total += key.length + value.length;
  }
  if (total > 256 * 1024) causes.push({ reason: 'FieldValueTooLong', message: 'Too long: must have at most 262144 bytes', field });
  return causes;
}

export function checkMetadata(object: KObject, rule: NameRule): StatusCause[] {
  const meta = object.metadata;
  const causes: StatusCause[] = [];
  if (typeof meta.name !== 'string' || meta.name === '') causes.push(required('metadata.name'));
  else causes.push(...checkName('metadata.name', meta.name, rule));
  causes.push(...checkLabels('metadata.labels', meta.labels));
  causes.push(...checkAnnotations('metadata.annotations', meta.annotations));
  return causes;
}

export function checkPort(field: string, port: unknown): StatusCause[] {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    return [invalidValue(field, port, 'must be between 1 and 65535, inclusive')];
  return [];
}

export function checkProtocol(field: string, protocol: unknown): StatusCause[] {
  return ['TCP', 'UDP', 'SCTP'].includes(protocol as string) ? [] : [unsupported(field, protocol, ['SCTP', 'TCP', 'UDP'])];
}
