/**
 * certificates.k8s.io/v1 CertificateSigningRequest
 * (https://kubernetes.io/docs/reference/access-authn-authz/certificate-signing-requests/), as
 * pkg/registry/certificates/certificates and pkg/apis/certificates/validation define it:
 * - create: status cleared; spec.username/groups filled from the requesting user (never from the
 *   body); spec.request must be one PEM CERTIFICATE REQUEST whose signature verifies (checked
 *   asynchronously by `prepareCsrCreate`, the rest here); signerName required; usages known and
 *   unique; expirationSeconds ≥ the minimum (600 s upstream, `--csr-min-duration` here).
 * - update: spec is immutable; `/approval` changes only the Approved/Denied conditions;
 *   `/status` changes the certificate and the other conditions, never Approved/Denied.
 * - Approved and Denied exclude each other and are never removed; a certificate, once issued,
 *   never changes.
 */
import type { KindStrategy } from './strategy.js';
import type { StatusCause } from './status.js';
import { invalid } from './status.js';
import type { KObject } from './storage/types.js';
import { isRecord } from './util.js';
import { checkMetadata, duplicate, forbidden, invalidValue, required, unsupported } from './validation.js';
import { decodeRequest, parseCsr } from './auth/csr.js';
import type { UserInfo } from './auth/authn.js';
import { nodeNameOf } from './auth/authz.js';

export const kubeletClientSigner = 'kubernetes.io/kube-apiserver-client-kubelet';
export const kubeletServingSigner = 'kubernetes.io/kubelet-serving';
export const apiserverClientSigner = 'kubernetes.io/kube-apiserver-client';

const knownUsages = [
  'signing', 'digital signature', 'content commitment', 'key encipherment', 'key agreement', 'data encipherment', 'cert sign', 'crl sign', 'encipher only',
  'decipher only', 'any', 'server auth', 'client auth', 'code signing', 'email protection', 's/mime', 'ipsec end system', 'ipsec tunnel', 'ipsec user',
  'timestamping', 'ocsp signing', 'microsoft sgc', 'netscape sgc',
];

/** The shortest spec.expirationSeconds accepted (upstream: 600, fixed). Set once by the control plane. */
let minExpirationSeconds = 600;
export function setCsrMinDuration(seconds: number): void {
  minExpirationSeconds = seconds;
}
const csrMinDuration = () => minExpirationSeconds;

interface Condition {
  type?: unknown;
  status?: unknown;
  reason?: unknown;
  message?: unknown;
  lastUpdateTime?: unknown;
  lastTransitionTime?: unknown;
}

const specOf = (csr: KObject): Record<string, unknown> => (isRecord(csr.spec) ? csr.spec : {});
const statusOf = (csr: KObject): Record<string, unknown> => (isRecord(csr.status) ? csr.status : {});
export const conditionsOf = (csr: KObject): Condition[] => (Array.isArray(statusOf(csr).conditions) ? (statusOf(csr).conditions as unknown[]).filter(isRecord) : []);
const isDecision = (c: Condition) => c.type === 'Approved' || c.type === 'Denied';

const signerNameRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[-A-Za-z0-9_.]{1,}(\/[-A-Za-z0-9_.]+)*$/;

function checkSpec(csr: KObject): StatusCause[] {
  const spec = specOf(csr);
  const causes: StatusCause[] = [];
  try {
    decodeRequest(spec.request);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    causes.push(message === 'Required value' ? required('spec.request') : invalidValue('spec.request', '<request>', message));
  }
  if (typeof spec.signerName !== 'string' || spec.signerName === '') causes.push(required('spec.signerName'));
  else if (spec.signerName.length > 571 || !signerNameRe.test(spec.signerName)) causes.push(invalidValue('spec.signerName', spec.signerName, 'must be a fully qualified domain and path of the form \'example.com/signer-name\''));
  if (!Array.isArray(spec.usages) || spec.usages.length === 0) causes.push(required('spec.usages'));
  else {
    const seen = new Set<unknown>();
    spec.usages.forEach((usage, i) => {
      if (typeof usage !== 'string' || !knownUsages.includes(usage)) causes.push(unsupported(`spec.usages[${i}]`, usage, knownUsages));
      else if (seen.has(usage)) causes.push(duplicate(`spec.usages[${i}]`, usage));
      seen.add(usage);
    });
  }
  const seconds = spec.expirationSeconds;
  if (seconds !== undefined && seconds !== null) {
    if (typeof seconds !== 'number' || !Number.isInteger(seconds)) causes.push(invalidValue('spec.expirationSeconds', seconds, 'must be an integer'));
    else if (seconds < minExpirationSeconds) causes.push(invalidValue('spec.expirationSeconds', seconds, `may not specify a duration less than ${minExpirationSeconds} seconds`));
  }
  return causes;
}

function checkStatus(csr: KObject, old: KObject | undefined): StatusCause[] {
  const causes: StatusCause[] = [];
  const conditions = conditionsOf(csr);
  const seen = new Set<unknown>();
  conditions.forEach((c, i) => {
    if (typeof c.type !== 'string' || c.type === '') causes.push(required(`status.conditions[${i}].type`));
    if (!['True', 'False', 'Unknown'].includes(c.status as string)) causes.push(unsupported(`status.conditions[${i}].status`, c.status, ['False', 'True', 'Unknown']));
    if (['Approved', 'Denied', 'Failed'].includes(c.type as string) && seen.has(c.type)) causes.push(duplicate(`status.conditions[${i}].type`, c.type));
    seen.add(c.type);
  });
  const approved = conditions.some((c) => c.type === 'Approved' && c.status === 'True');
  const denied = conditions.some((c) => c.type === 'Denied' && c.status === 'True');
  if (approved && denied) causes.push(invalidValue('status.conditions', 'Denied', 'Approved and Denied conditions are mutually exclusive'));
  const certificate = statusOf(csr).certificate;
  if (certificate !== undefined && certificate !== null && certificate !== '') {
    if (typeof certificate !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(certificate)) causes.push(invalidValue('status.certificate', '<certificate data>', 'illegal base64 data'));
    else if (!approved) causes.push(forbidden('status.certificate', 'certificate can only be set if an Approved condition is present'));
  }
  if (old) {
    for (const type of ['Approved', 'Denied']) {
      if (conditionsOf(old).some((c) => c.type === type) && !conditions.some((c) => c.type === type)) causes.push(forbidden('status.conditions', `updates may not remove a condition of type "${type}"`));
    }
    const before = statusOf(old).certificate;
    if (typeof before === 'string' && before !== '' && before !== certificate) causes.push(forbidden('status.certificate', 'updates may not modify existing certificate content'));
  }
  return causes;
}

/** Conditions get lastTransitionTime / lastUpdateTime when missing (the status strategies do). */
function stampConditions(csr: KObject): void {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  for (const c of conditionsOf(csr)) {
    c.lastTransitionTime ??= now;
    c.lastUpdateTime ??= now;
  }
}

export const csrStrategy: KindStrategy = {
  prepareForCreate(csr) {
    csr.status = {};
  },
  prepareForUpdate(csr, old) {
    csr.spec = old.spec;
  },
  prepareForSubresourceUpdate(subresource, csr, old) {
    const next: KObject = { ...old, metadata: { ...csr.metadata }, status: { ...statusOf(old) } };
    const oldConditions = conditionsOf(old);
    const conditions = conditionsOf(csr);
    if (subresource === 'approval') {
      (next.status as Record<string, unknown>).conditions = [...conditions.filter(isDecision), ...oldConditions.filter((c) => !isDecision(c))];
    } else {
      (next.status as Record<string, unknown>).certificate = statusOf(csr).certificate;
      (next.status as Record<string, unknown>).conditions = [...oldConditions.filter(isDecision), ...conditions.filter((c) => !isDecision(c))];
    }
    stampConditions(next);
    return next;
  },
  validate: (csr, old) => [...checkMetadata(csr, 'path'), ...(old ? [] : checkSpec(csr)), ...checkStatus(csr, old)],
};

/**
 * What the registry strategy cannot do synchronously on create: verify the request's signature,
 * stamp the requesting user into spec, and NodeRestriction's rule that a node asks for kubelet
 * certificates only in its own name.
 */
export async function prepareCsrCreate(body: unknown, user: UserInfo): Promise<{ body: unknown; forbidden?: string }> {
  if (!isRecord(body)) return { body };
  const spec = isRecord(body.spec) ? { ...body.spec } : {};
  const name = isRecord(body.metadata) && typeof body.metadata.name === 'string' ? body.metadata.name : '';
  let parsed;
  try {
    parsed = await parseCsr(spec.request);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (message === 'Required value') return { body }; // reported by validation
    throw invalid('CertificateSigningRequest', 'certificates.k8s.io', name, [invalidValue('spec.request', '<request>', message)]);
  }
  const node = nodeNameOf(user);
  const kubeletSigner = spec.signerName === kubeletClientSigner || spec.signerName === kubeletServingSigner;
  if (node !== undefined && kubeletSigner && parsed.commonName !== `system:node:${node}`) return { body, forbidden: `can only create a node CSR with CN=system:node:${node}` };
  spec.username = user.name;
  spec.groups = user.groups;
  delete spec.uid;
  delete spec.extra;
  return { body: { ...body, spec } };
}

const short = (seconds: unknown) => {
  if (typeof seconds !== 'number') return '<none>';
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
};

/** printCertificateSigningRequest's Condition column: Approved/Denied/Failed (+ Issued), else Pending. */
export function csrConditionText(csr: KObject): string {
  const parts = conditionsOf(csr).filter((c) => ['Approved', 'Denied', 'Failed'].includes(c.type as string) && c.status === 'True').map((c) => c.type as string);
  if (typeof statusOf(csr).certificate === 'string' && statusOf(csr).certificate !== '') parts.push('Issued');
  return parts.length === 0 ? 'Pending' : parts.join(',');
}

export const csrCells = {
  signerName: (csr: KObject) => String(specOf(csr).signerName ?? ''),
  requestor: (csr: KObject) => String(specOf(csr).username ?? ''),
  requestedDuration: (csr: KObject) => short(specOf(csr).expirationSeconds),
};
