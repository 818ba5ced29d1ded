/** Docker errors → CriError with the pod/container they concern. */
import { describeError } from '../../lib/errors.js';
import { CriError, type CriErrorCode, type CriErrorContext } from '../runtime.js';

interface DockerishError {
  statusCode?: number;
  code?: string;
  message?: string;
  json?: { message?: string } | null;
}

export function dockerStatus(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null ? (error as DockerishError).statusCode : undefined;
}

export function isNotFound(error: unknown): boolean {
  return dockerStatus(error) === 404;
}

/** True when the Docker daemon cannot be reached (socket missing, refused, reset). */
function isUnavailable(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as DockerishError).code : undefined;
  return code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT';
}

/** The daemon's own message ("No such image: foo:1") rather than dockerode's wrapper text. */
export function dockerMessage(error: unknown): string {
  if (typeof error !== 'object' || error === null) return String(error);
  const e = error as DockerishError;
  const fromJson = e.json && typeof e.json === 'object' ? e.json.message : undefined;
  if (fromJson) return fromJson.trim();
  return error instanceof Error ? describeError(error) : (e.message ?? String(error)).trim();
}

function codeOf(error: unknown): CriErrorCode {
  if (error instanceof CriError) return error.code;
  if (isUnavailable(error)) return 'Unavailable';
  switch (dockerStatus(error)) {
    case 404:
      return 'NotFound';
    case 409:
      return 'AlreadyExists';
    case 400:
      return 'InvalidArgument';
    default:
      return 'Unknown';
  }
}

/** Wraps any error of a Docker call: "<what>: <docker message>", with code and context. */
export function criError(what: string, error: unknown, context: Omit<CriErrorContext, 'cause' | 'code'> & { code?: CriErrorCode } = {}): CriError {
  if (error instanceof CriError && error.message.startsWith(what)) return error;
  const detail = error instanceof CriError ? error.message : dockerMessage(error);
  return new CriError(`${what}: ${detail}`, { ...context, code: context.code ?? codeOf(error), cause: error });
}
