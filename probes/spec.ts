/**
 * Probe validation and defaulting, as the API server does them (pkg/apis/core/validation
 * validateProbe, pkg/apis/core/v1/defaults SetDefaults_Probe):
 * https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#configure-probes
 * - timeoutSeconds 1, periodSeconds 10, successThreshold 1, failureThreshold 3 when 0/unset;
 * - successThreshold must be 1 for liveness and startup probes;
 * - terminationGracePeriodSeconds only on liveness/startup, and positive;
 * - exactly one handler (exec, httpGet, tcpSocket, grpc).
 */
import type { V1Container, V1Probe } from '@kubernetes/client-node';
import type { ProbeType } from './types.js';

export type ProbeHandler =
  | { kind: 'exec'; command: string[] }
  | { kind: 'httpGet'; host?: string; port: number | string; path: string; scheme: 'HTTP' | 'HTTPS'; headers: Array<{ name: string; value: string }> }
  | { kind: 'tcpSocket'; host?: string; port: number | string }
  | { kind: 'grpc'; port: number; service?: string };

/** A validated probe with defaults applied; durations stay in seconds like the API. */
export interface ProbeSpec {
  handler: ProbeHandler;
  initialDelaySeconds: number;
  periodSeconds: number;
  timeoutSeconds: number;
  successThreshold: number;
  failureThreshold: number;
  terminationGracePeriodSeconds?: number;
}

export class ProbeValidationError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid probe: ${problems.join('; ')}`);
    this.name = 'ProbeValidationError';
  }
}

const ianaSvcName = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$/;

function isInt32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31;
}

function checkPort(port: unknown, path: string, problems: string[], allowName: boolean): void {
  if (typeof port === 'number') {
    if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`${path}: Invalid value: ${port}: must be between 1 and 65535, inclusive`);
  } else if (typeof port === 'string' && allowName) {
    if (/^\d+$/.test(port)) checkPort(Number(port), path, problems, false);
    else if (!ianaSvcName.test(port)) problems.push(`${path}: Invalid value: "${port}": must be a port number or an IANA_SVC_NAME (at most 15 lowercase alphanumerics or '-', with a letter)`);
  } else {
    problems.push(`${path}: Required value: a port ${allowName ? 'number or name' : 'number'}`);
  }
}

function handlerOf(probe: V1Probe, path: string, problems: string[]): ProbeHandler | undefined {
  const set = (['exec', 'httpGet', 'tcpSocket', 'grpc'] as const).filter((key) => probe[key] !== undefined && probe[key] !== null);
  if (set.length !== 1) {
    problems.push(set.length === 0 ? `${path}: Required value: must specify a handler type` : `${path}: Forbidden: may not specify more than 1 handler type (${set.join(', ')})`);
    return undefined;
  }
  if (probe.exec) {
    const command = probe.exec.command ?? [];
    if (!Array.isArray(command) || command.length === 0 || command.some((arg) => typeof arg !== 'string')) {
      problems.push(`${path}.exec.command: Required value: a non-empty list of strings`);
    }
    return { kind: 'exec', command };
  }
  if (probe.httpGet) {
    const action = probe.httpGet;
    checkPort(action.port, `${path}.httpGet.port`, problems, true);
    const scheme = (action.scheme ?? 'HTTP').toUpperCase();
    if (scheme !== 'HTTP' && scheme !== 'HTTPS') problems.push(`${path}.httpGet.scheme: Unsupported value: "${action.scheme}": supported values: "HTTP", "HTTPS"`);
    const headers = (action.httpHeaders ?? []).map((header) => ({ name: header.name, value: header.value ?? '' }));
    for (const [i, header] of headers.entries()) {
      if (typeof header.name !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(header.name)) problems.push(`${path}.httpGet.httpHeaders[${i}].name: Invalid value: "${String(header.name)}": a valid HTTP header name`);
      if (/[\r\n]/.test(header.value)) problems.push(`${path}.httpGet.httpHeaders[${i}].value: Invalid value: must not contain CR or LF`);
    }
    const pathValue = action.path ?? '';
    if (/[\s]/.test(pathValue)) problems.push(`${path}.httpGet.path: Invalid value: "${pathValue}": must not contain whitespace`);
    return { kind: 'httpGet', host: action.host || undefined, port: action.port, path: pathValue, scheme: scheme === 'HTTPS' ? 'HTTPS' : 'HTTP', headers };
  }
  if (probe.tcpSocket) {
    checkPort(probe.tcpSocket.port, `${path}.tcpSocket.port`, problems, true);
    return { kind: 'tcpSocket', host: probe.tcpSocket.host || undefined, port: probe.tcpSocket.port };
  }
  const grpc = probe.grpc!;
  checkPort(grpc.port, `${path}.grpc.port`, problems, false);
  return { kind: 'grpc', port: grpc.port, service: grpc.service ?? undefined };
}

/** Applies the API defaults for a zero or unset field (SetDefaults_Probe). */
function orDefault(value: number | undefined, fallback: number): number {
  return value === undefined || value === 0 ? fallback : value;
}

/** Validates one probe of a container and returns it with defaults; throws ProbeValidationError. */
export function resolveProbe(probe: V1Probe, type: ProbeType, path = `${type}Probe`): ProbeSpec {
  const problems: string[] = [];
  const handler = handlerOf(probe, path, problems);
  const numbers = {
    initialDelaySeconds: probe.initialDelaySeconds ?? 0,
    timeoutSeconds: orDefault(probe.timeoutSeconds, 1),
    periodSeconds: orDefault(probe.periodSeconds, 10),
    successThreshold: orDefault(probe.successThreshold, 1),
    failureThreshold: orDefault(probe.failureThreshold, 3),
  };
  for (const [name, value] of Object.entries(numbers)) {
    if (!isInt32(value) || value < 0) problems.push(`${path}.${name}: Invalid value: ${String(value)}: must be greater than or equal to 0`);
  }
  // validation.go: "must be 1" for livenessProbe/startupProbe successThreshold.
  if (type !== 'readiness' && numbers.successThreshold !== 1) {
    problems.push(`${path}.successThreshold: Invalid value: ${numbers.successThreshold}: must be 1`);
  }
  const grace = probe.terminationGracePeriodSeconds;
  if (grace !== undefined && grace !== null) {
    if (type === 'readiness') problems.push(`${path}.terminationGracePeriodSeconds: Invalid value: ${grace}: must not be set for readinessProbes`);
    else if (!isInt32(grace) || grace <= 0) problems.push(`${path}.terminationGracePeriodSeconds: Invalid value: ${grace}: must be greater than 0`);
  }
  if (problems.length > 0 || handler === undefined) throw new ProbeValidationError(problems);
  return { handler, ...numbers, ...(grace !== undefined && grace !== null ? { terminationGracePeriodSeconds: grace } : {}) };
}

/** The probes a container declares, validated; throws with every problem of every probe. */
export function resolveContainerProbes(container: V1Container, path = `containers[${container.name}]`): Partial<Record<ProbeType, ProbeSpec>> {
  const out: Partial<Record<ProbeType, ProbeSpec>> = {};
  const problems: string[] = [];
  const declared: Array<[ProbeType, V1Probe | undefined]> = [
    ['startup', container.startupProbe],
    ['liveness', container.livenessProbe],
    ['readiness', container.readinessProbe],
  ];
  for (const [type, probe] of declared) {
    if (!probe) continue;
    try {
      out[type] = resolveProbe(probe, type, `${path}.${type}Probe`);
    } catch (error) {
      if (!(error instanceof ProbeValidationError)) throw error;
      problems.push(...error.problems);
    }
  }
  if (problems.length > 0) throw new ProbeValidationError(problems);
  return out;
}
