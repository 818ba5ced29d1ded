/**
 * API errors as kube-apiserver reports them: every failure is a `meta.k8s.io/v1` Status with
 * `reason`, `code` and `details` (k8s.io/apimachinery/pkg/api/errors). kubectl prints
 * `Error from server (<reason>): <message>` from these, so messages follow the same wording.
 */

export interface StatusCause {
  reason?: string;
  message: string;
  field?: string;
}

interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  code: number;
  details?: StatusDetails;
}

/** A failure that the HTTP layer turns into a Status response. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiError';
  }

  toStatus(): StatusBody {
    const body: StatusBody = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
    if (this.details) body.details = this.details;
    return body;
  }
}

/** The resource as apiserver names it in messages: `pods`, `leases.coordination.k8s.io`. */
interface ResourceRef {
  name: string;
  group: string;
}

function qualified(ref: ResourceRef): string {
  return ref.group ? `${ref.name}.${ref.group}` : ref.name;
}

export function notFound(ref: ResourceRef, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${qualified(ref)} "${name}" not found`, { name, group: ref.group, kind: ref.name });
}

export function alreadyExists(ref: ResourceRef, name: string): ApiError {
  return new ApiError(409, 'AlreadyExists', `${qualified(ref)} "${name}" already exists`, { name, group: ref.group, kind: ref.name });
}

/** Optimistic-concurrency failure, worded as kube-apiserver's registry does. */
export function conflict(ref: ResourceRef, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again'): ApiError {
  return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(ref)} "${name}": ${why}`, {
    name,
    group: ref.group,
    kind: ref.name,
  });
}

/** 422: `<Kind> "<name>" is invalid: <field>: <message>, ...` with one cause per field error. */
export function invalid(kind: string, group: string, name: string, causes: StatusCause[]): ApiError {
  const text = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  const summary = text.length === 1 ? text[0] : `[${text.join(', ')}]`;
  return new ApiError(422, 'Invalid', `${kind}${group ? `.${group}` : ''} "${name}" is invalid: ${summary}`, {
    name,
    group,
    kind,
    causes,
  });
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

export function gone(message: string): ApiError {
  return new ApiError(410, 'Expired', message);
}

export function methodNotAllowed(message = 'the server does not allow this method on the requested resource'): ApiError {
  return new ApiError(405, 'MethodNotAllowed', message);
}

export function unsupportedMediaType(type: string): ApiError {
  return new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`, {
    causes: [{ reason: 'UnsupportedMediaType', message: type }],
  });
}

export function tooLarge(limit = 3 * 1024 * 1024): ApiError {
  return new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limit}`);
}

/** errors.NewForbidden: `<resource> "<name>" is forbidden: <why>`. */
export function forbidden(ref: ResourceRef, name: string, why: string): ApiError {
  return new ApiError(403, 'Forbidden', `${qualified(ref)} "${name}" is forbidden: ${why}`, { name, group: ref.group, kind: ref.name });
}

/** storage.NewTooLargeResourceVersionError: a 504 Timeout Status that tells the client to retry. */
export function tooLargeResourceVersion(requested: number, current: number): ApiError {
  return new ApiError(504, 'Timeout', `Timeout: Too large resource version: ${requested}, current: ${current}`, {
    causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
    retryAfterSeconds: 1,
  });
}

function internalError(error: unknown): ApiError {
  const text = error instanceof Error ? error.message : String(error);
  return new ApiError(500, 'InternalError', `Internal error occurred: ${text}`, { causes: [{ message: text }] }, { cause: error });
}

function forbiddenNamespace(ref: ResourceRef, name: string, namespace: string, why: string): ApiError {
  return new ApiError(403, 'Forbidden', `${qualified(ref)} "${name}" is forbidden: ${why}`, { name, group: ref.group, kind: ref.name }, {
    cause: namespace,
  });
}

export function toApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : internalError(error);
}
