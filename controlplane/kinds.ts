/**
 * Per-kind strategy: the hooks the generic registry calls on create, update and delete (the
 * RESTCreateStrategy / RESTUpdateStrategy / RESTDeleteStrategy objects of
 * k8s.io/apiserver/pkg/registry/rest). Everything a kind does differently lives here, so the
 * registry never asks which kind it stores. Pods and Services have their own modules; the
 * simpler kinds are here.
 */
import type { StatusCause } from './status.js';
import type { KObject } from './storage/types.js';
import { podStrategy } from './kinds-pod.js';
import { serviceStrategy } from './kinds-service.js';
import { checkMetadata, invalidValue, required, type NameRule } from './validation.js';
import { isRecord } from './util.js';
import type { KindStrategy } from './strategy.js';
import { appsStrategies } from './kinds-apps.js';
import { batchStrategies } from './kinds-batch.js';
import { csrStrategy } from './kinds-csr.js';

export type { KindStrategy } from './strategy.js';

/** Kinds without their own rules: no validation beyond what the registry does. */
const plain: KindStrategy = { validate: () => [] };

export function strategyFor(kind: string): KindStrategy {
  return strategies[kind] ?? plain;
}

function simple(rule: NameRule, extra?: (object: KObject) => StatusCause[]): KindStrategy {
  return { validate: (object) => [...checkMetadata(object, rule), ...(extra ? extra(object) : [])] };
}

function checkStringMap(field: string, value: unknown, base64: boolean): StatusCause[] {
  if (value === undefined || value === null) return [];
  if (!isRecord(value)) return [invalidValue(field, value, 'must be a map')];
  const causes: StatusCause[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (!/^[-._a-zA-Z0-9]+$/.test(key) || key.length > 253)
      causes.push(invalidValue(`${field}[${key}]`, key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
    if (typeof v !== 'string') causes.push(invalidValue(`${field}[${key}]`, v, 'must be a string'));
    else if (base64 && !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) causes.push(invalidValue(`${field}[${key}]`, '<secret contents redacted>', 'illegal base64 data'));
  }
  return causes;
}

/** NamespaceLifecycle: "this namespace may not be deleted" (plugin/pkg/admission/namespace/lifecycle). */
const immortalNamespaces: ReadonlySet<string> = new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease']);

const namespaceStrategy: KindStrategy = {
  prepareForCreate(ns) {
    ns.status = { phase: 'Active' };
  },
  forbidDelete: (ns) => (immortalNamespaces.has(ns.metadata.name ?? '') ? 'this namespace may not be deleted' : undefined),
  defaults(ns) {
    ns.metadata.labels = { ...ns.metadata.labels, 'kubernetes.io/metadata.name': ns.metadata.name ?? '' };
    ns.spec = { finalizers: ['kubernetes'], ...(isRecord(ns.spec) ? ns.spec : {}) };
    ns.status = { phase: 'Active', ...(isRecord(ns.status) ? ns.status : {}) };
  },
  validate: (ns) => checkMetadata(ns, 'label'),
};

const eventStrategy = simple('subdomain', (event) => {
  const causes: StatusCause[] = [];
  if (!isRecord(event.involvedObject)) causes.push(required('involvedObject'));
  if (event.type !== undefined && !['Normal', 'Warning'].includes(event.type as string))
    causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: "${String(event.type)}": supported values: "Normal", "Warning"`, field: 'type' });
  return causes;
});

const endpointSliceStrategy = simple('subdomain', (slice) => {
  const causes: StatusCause[] = [];
  if (!['IPv4', 'IPv6', 'FQDN'].includes(slice.addressType as string))
    causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${JSON.stringify(slice.addressType ?? '')}: supported values: "FQDN", "IPv4", "IPv6"`, field: 'addressType' });
  if (slice.endpoints !== undefined && !Array.isArray(slice.endpoints)) causes.push(invalidValue('endpoints', slice.endpoints, 'must be a list'));
  return causes;
});

const leaseStrategy = simple('subdomain', (lease) => {
  const spec = isRecord(lease.spec) ? lease.spec : {};
  const duration = spec.leaseDurationSeconds;
  if (duration !== undefined && (typeof duration !== 'number' || duration <= 0)) return [invalidValue('spec.leaseDurationSeconds', duration, 'must be greater than 0')];
  return [];
});

export const strategies: Record<string, KindStrategy> = {
  Namespace: namespaceStrategy,
  Node: {
    defaults(node) {
      node.spec ??= {};
      node.status ??= {};
    },
    validate: (node) => checkMetadata(node, 'subdomain'),
  },
  Pod: podStrategy,
  Service: serviceStrategy,
  Endpoints: simple('subdomain'),
  Event: eventStrategy,
  ConfigMap: simple('subdomain', (cm) => [...checkStringMap('data', cm.data, false), ...checkStringMap('binaryData', cm.binaryData, true)]),
  Secret: {
    defaults(secret) {
      secret.type ??= 'Opaque';
      // stringData is write-only: merged into data, base64-encoded (core/v1 Secret docs).
      if (isRecord(secret.stringData)) {
        const data = isRecord(secret.data) ? { ...secret.data } : {};
        for (const [key, value] of Object.entries(secret.stringData)) data[key] = Buffer.from(String(value)).toString('base64');
        secret.data = data;
        delete secret.stringData;
      }
    },
    validate: (secret) => [...checkMetadata(secret, 'subdomain'), ...checkStringMap('data', secret.data, true)],
  },
  ServiceAccount: simple('subdomain'),
  Lease: leaseStrategy,
  EndpointSlice: endpointSliceStrategy,
  ...appsStrategies,
  ...batchStrategies,
  CertificateSigningRequest: csrStrategy,
};
