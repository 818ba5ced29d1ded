/** Request/response plumbing of the API server: body limits, decoding, Status replies. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { ApiError, badRequest, tooLarge, type StatusBody } from './status.js';
import { decodeProtobuf, isProtobuf } from './protobuf.js';
import { maxNestingDepth, nestingProblem } from '../lib/nesting.js';

/** kube-apiserver's default request body limit (3 MiB, --max-request-bytes for etcd is 1.5 MiB per object). */
const maxBodyBytes = 3 * 1024 * 1024;

export function readBody(req: IncomingMessage, limit = maxBodyBytes): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (error) => {
      if (!failed) reject(new ApiError(400, 'BadRequest', `error reading request body: ${error.message}`, undefined, { cause: error }));
    });
  });
}

/** Refuses a body or object nested too deeply or with a `__proto__` key (lib/nesting.ts). */
export function checkDepth(value: unknown, max = maxNestingDepth, what = 'the request body'): void {
  const problem = nestingProblem(value, max);
  if (problem) throw badRequest(`${what} ${problem}`);
}

/** Decodes a JSON or YAML body (application/json, application/yaml; patches are JSON or YAML). */
export function decodeBody(body: Buffer, contentType: string | undefined): unknown {
  const decoded = decodeRaw(body, contentType);
  checkDepth(decoded);
  return decoded;
}

function decodeRaw(body: Buffer, contentType: string | undefined): unknown {
  const type = (contentType ?? 'application/json').split(';')[0]?.trim().toLowerCase() ?? '';
  if (body.length === 0) throw badRequest('request body is empty');
  if (isProtobuf(type)) return decodeProtobuf(body);
  const text = body.toString('utf8');
  if (text.trim() === '') throw badRequest('request body is empty');
  if (type.includes('protobuf') || type.includes('cbor')) {
    throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml`);
  }
  if (type.endsWith('yaml')) {
    try {
      return parseYaml(text, { maxAliasCount: 100 }) as unknown;
    } catch (error) {
      throw badRequest(`error converting YAML to JSON: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw badRequest(`couldn't get version/kind; json parse error: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export function sendJson(res: ServerResponse, code: number, body: unknown, warnings: string[] = []): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  const headers: Record<string, string | number | string[]> = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' };
  // RFC 7234 warning headers, as kube-apiserver sends them (kubectl prints "Warning: ...").
  if (warnings.length > 0) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(code, headers);
  res.end(text);
}

export function sendStatus(res: ServerResponse, error: ApiError): void {
  sendJson(res, error.code, error.toStatus());
}

export function successStatus(details: Record<string, unknown>, code = 200): StatusBody {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', message: '', reason: '', code, details } as StatusBody;
}

export function queryInt(params: URLSearchParams, name: string): number | undefined {
  const raw = params.get(name);
  if (raw === null || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw badRequest(`invalid value for ${name}: "${raw}"`);
  return value;
}

const trueWords = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const falseWords = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/**
 * A boolean query parameter (watch, allowWatchBookmarks, ...) read as Go's strconv.ParseBool
 * reads it, so `watch=True` from the Python client is a watch (issue 25 item 11). Absent or
 * empty is false; anything else is a 400.
 */
export function queryBool(params: URLSearchParams, name: string): boolean {
  const raw = params.get(name);
  if (raw === null || raw === '') return false;
  if (trueWords.has(raw)) return true;
  if (falseWords.has(raw)) return false;
  throw badRequest(`invalid value for ${name}: "${raw}": strconv.ParseBool: parsing ${JSON.stringify(raw)}: invalid syntax`);
}
