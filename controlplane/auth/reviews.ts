/**
 * The review APIs a kubelet in Webhook mode calls (docs "Kubelet authentication/authorization"),
 * answered with the same authenticator and authorizer that guard this API server, never stored:
 * - `authentication.k8s.io/v1` TokenReview (pkg/registry/authentication/tokenreview): spec.token
 *   through the bearer-token authenticators → status.authenticated / user / error;
 * - `authorization.k8s.io/v1` SubjectAccessReview (pkg/registry/authorization/subjectaccessreview):
 *   spec.user / groups with resourceAttributes or nonResourceAttributes → status.allowed / reason;
 * - SelfSubjectAccessReview: the same for the requesting user (what `kubectl auth can-i` sends).
 * The authorizers here only ever give "no opinion" when they do not allow, so `status.denied`
 * stays unset, as kube-apiserver's RBAC/Node union reports it.
 * Who may create them is authz.ts's business (system:masters; nodes: tokenreviews and
 * subjectaccessreviews as bootstrappolicy.NodeRules; everyone authenticated: selfsubjectaccessreviews).
 */
import { badRequest, invalid, type StatusCause } from '../status.js';
import { isRecord, stringOf } from '../util.js';
import { authenticateToken, type UserInfo } from './authn.js';
import { authorize, type RequestAttributes } from './authz.js';
import type { AccessControl } from './request.js';

type ReviewKind = 'TokenReview' | 'SubjectAccessReview' | 'SelfSubjectAccessReview';
const groupOf: Record<ReviewKind, string> = { TokenReview: 'authentication.k8s.io', SubjectAccessReview: 'authorization.k8s.io', SelfSubjectAccessReview: 'authorization.k8s.io' };

export function isReviewKind(kind: string): kind is ReviewKind {
  return kind in groupOf;
}

/** A zero value as Go's ObjectMeta{} has it (protobuf decoding yields empty strings, times and maps). */
const isEmptyValue = (value: unknown): boolean =>
  value === undefined || value === null || value === '' || value === 0 || (Array.isArray(value) && value.length === 0) || (isRecord(value) && Object.values(value).every(isEmptyValue));

/** The body as the typed decoder would accept it: apiVersion/kind of this resource (or absent), an object spec. */
function checkEnvelope(kind: ReviewKind, body: unknown): { spec: Record<string, unknown>; metadata: Record<string, unknown> } {
  if (!isRecord(body)) throw badRequest(`the body of a ${kind} must be a JSON object`);
  const apiVersion = `${groupOf[kind]}/v1`;
  if (body.apiVersion !== undefined && body.apiVersion !== apiVersion) throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersion})`);
  if (body.kind !== undefined && body.kind !== kind) throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${kind})`);
  const metadata = isRecord(body.metadata) ? body.metadata : {};
  // ValidateSubjectAccessReview et al.: the object has no identity, metadata must be empty (managedFields aside).
  if (Object.entries(metadata).some(([key, value]) => key !== 'managedFields' && !isEmptyValue(value))) {
    throw invalid(kind, groupOf[kind], '', [{ reason: 'FieldValueInvalid', field: 'metadata', message: 'Invalid value: the metadata: must be empty' }]);
  }
  if (body.spec !== undefined && !isRecord(body.spec)) throw badRequest(`spec of a ${kind} must be an object`);
  return { spec: isRecord(body.spec) ? body.spec : {}, metadata };
}

const stringsOf = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);

/** authorizationutil.ResourceAttributesFrom / NonResourceAttributesFrom. */
function attributesOf(kind: ReviewKind, spec: Record<string, unknown>): RequestAttributes {
  const resource = spec.resourceAttributes;
  const nonResource = spec.nonResourceAttributes;
  const causes: StatusCause[] = [];
  if (resource !== undefined && nonResource !== undefined) causes.push({ reason: 'FieldValueInvalid', field: 'spec.nonResourceAttributes', message: 'Invalid value: cannot be specified in combination with resourceAttributes' });
  if (resource === undefined && nonResource === undefined) causes.push({ reason: 'FieldValueInvalid', field: 'spec.resourceAttributes', message: 'Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified' });
  if (kind === 'SubjectAccessReview' && !stringOf(spec.user) && stringsOf(spec.groups).length === 0) causes.push({ reason: 'FieldValueInvalid', field: 'spec.user', message: 'Invalid value: "": at least one of user or group must be specified' });
  if (causes.length > 0) throw invalid(kind, groupOf[kind], '', causes);
  if (isRecord(resource)) {
    const text = (key: string) => stringOf(resource[key]) ?? '';
    return { resourceRequest: true, verb: text('verb'), path: '', apiGroup: text('group'), resource: text('resource'), subresource: text('subresource'), namespace: text('namespace'), name: text('name') };
  }
  const fields = isRecord(nonResource) ? nonResource : {};
  return { resourceRequest: false, verb: stringOf(fields.verb) ?? '', path: stringOf(fields.path) ?? '', apiGroup: '', resource: '', subresource: '', namespace: '', name: '' };
}

async function tokenReview(spec: Record<string, unknown>, access: AccessControl): Promise<Record<string, unknown>> {
  const token = stringOf(spec.token) ?? '';
  if (token === '') throw badRequest('token is required for TokenReview in authentication');
  const user = await authenticateToken(token, access.authn);
  if (!user) return { authenticated: false, user: {}, error: 'invalid bearer token' };
  const audiences = stringsOf(spec.audiences);
  return { authenticated: true, user: { username: user.name, groups: user.groups }, ...(audiences.length > 0 ? { audiences } : {}) };
}

async function accessReview(kind: ReviewKind, spec: Record<string, unknown>, requester: UserInfo, access: AccessControl): Promise<Record<string, unknown>> {
  const attrs = attributesOf(kind, spec);
  const subject: UserInfo = kind === 'SelfSubjectAccessReview' ? requester : { name: stringOf(spec.user) ?? '', groups: stringsOf(spec.groups) };
  const decision = await authorize(subject, attrs, access.graph);
  return decision.allowed ? { allowed: true } : { allowed: false, ...(decision.reason ? { reason: decision.reason } : {}) };
}

/** The answered review (HTTP 201): the request echoed with its status. */
export async function answerReview(kind: ReviewKind, body: unknown, requester: UserInfo, access: AccessControl): Promise<Record<string, unknown>> {
  const { spec, metadata } = checkEnvelope(kind, body);
  const status = kind === 'TokenReview' ? await tokenReview(spec, access) : await accessReview(kind, spec, requester, access);
  return { kind, apiVersion: `${groupOf[kind]}/v1`, metadata: { ...metadata, creationTimestamp: null }, spec, status };
}
