/**
 * Runs one probe attempt of any handler (kubelet pkg/kubelet/prober/prober.go runProbe):
 * resolves the port (number, or a named container port), the host (the probe's, else the pod
 * IP) and the timeout, then calls the exec, http, tcp or grpc prober. Probes reach the pod from
 * the node's network namespace (the agent's), like the kubelet.
 * A handler's own failure (refused, timed out, bad status) is an outcome; a probe that cannot
 * even be attempted (no pod IP yet, unknown named port) throws ProbeError, and the worker
 * discards it without counting, as the kubelet does with a probe error.
 */
import type { V1Container } from '@kubernetes/client-node';
import { probeGrpc } from './grpc.js';
import { maxResponseBodyBytes, probeHttp } from './http.js';
import type { ProbeHandler, ProbeSpec } from './spec.js';
import { probeTcp } from './tcp.js';
import type { ContainerExecutor, ProbeOutcome } from './types.js';

/** The probes' User-Agent for a kubelet version ("v1.32.0-knode" → "kube-probe/1.32"), as pkg/probe/http. */
export function probeUserAgent(kubeletVersion: string): string {
  const match = /^v?(\d+)\.(\d+)/.exec(kubeletVersion);
  if (!match) throw new Error(`cannot read major.minor from kubelet version "${kubeletVersion}"`);
  return `kube-probe/${match[1]}.${match[2]}`;
}

/** knode reports kubelet v1.32 (controlplane/discovery.ts gitVersion). */
export const defaultProbeUserAgent = probeUserAgent('v1.32.0');

export interface ProbeContext {
  podIP?: string;
  container: V1Container;
  containerId: string;
}

export interface Prober {
  probe(spec: ProbeSpec, context: ProbeContext): Promise<ProbeOutcome>;
}

export class ProbeError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ProbeError';
  }
}

/** A port number, or the containerPort of the container's port with that name (TCP). */
export function resolvePort(port: number | string, container: V1Container): number {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = (container.ports ?? []).find((candidate) => candidate.name === port && (candidate.protocol ?? 'TCP') === 'TCP');
  if (!named) throw new ProbeError(`couldn't find port "${port}" in container "${container.name}"`);
  return named.containerPort;
}

function hostOf(host: string | undefined, context: ProbeContext): string {
  const chosen = host || context.podIP;
  if (!chosen) throw new ProbeError(`pod has no IP yet for the probe of container "${context.container.name}"`);
  return chosen;
}

function text(value: Buffer | string): string {
  return typeof value === 'string' ? value : value.toString('utf8');
}

function isTimeout(error: unknown): boolean {
  const err = error as { code?: unknown; name?: unknown } | undefined;
  // ETIMEDOUT/ExecTimeoutError: our own; DeadlineExceeded: a CRI error code (ExecSync timeout).
  return err?.code === 'ETIMEDOUT' || err?.code === 'DeadlineExceeded' || err?.name === 'ExecTimeoutError' || err?.name === 'TimeoutError';
}

/**
 * exec (kubelet pkg/probe/exec): exit code 0 is success, any other is failure with the output;
 * a command that outlives timeoutSeconds is a failure (ExecProbeTimeout, GA in 1.20), whether
 * the executor reports the timeout or our own deadline passes first.
 */
export async function probeExec(executor: ContainerExecutor, containerId: string, command: string[], timeoutMs: number): Promise<ProbeOutcome> {
  const timedOut: ProbeOutcome = { result: 'failure', output: `command ${JSON.stringify(command.join(' '))} timed out` };
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    // The executor is given the timeout; our own deadline (plus a grace) guards executors that hang.
    timer = setTimeout(() => resolve('timeout'), timeoutMs + 1000);
  });
  try {
    const answer = await Promise.race([executor.execSync(containerId, command, timeoutMs), deadline]);
    if (answer === 'timeout') return timedOut;
    const output = (text(answer.stdout) + text(answer.stderr)).slice(0, maxResponseBodyBytes);
    return answer.exitCode === 0 ? { result: 'success', output } : { result: 'failure', output: output || `command exited with code ${answer.exitCode}` };
  } catch (error) {
    if (isTimeout(error)) return timedOut;
    throw new ProbeError(`exec probe in container ${containerId.slice(0, 12)} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/** The real prober: dispatches to the four handlers. */
export class HandlerProber implements Prober {
  constructor(
    private readonly executor: ContainerExecutor,
    private readonly userAgent = defaultProbeUserAgent,
  ) {}

  probe(spec: ProbeSpec, context: ProbeContext): Promise<ProbeOutcome> {
    const timeoutMs = spec.timeoutSeconds * 1000;
    return this.run(spec.handler, context, timeoutMs);
  }

  private async run(handler: ProbeHandler, context: ProbeContext, timeoutMs: number): Promise<ProbeOutcome> {
    switch (handler.kind) {
      case 'exec':
        return probeExec(this.executor, context.containerId, handler.command, timeoutMs);
      case 'httpGet':
        return probeHttp({
          scheme: handler.scheme,
          host: hostOf(handler.host, context),
          port: resolvePort(handler.port, context.container),
          path: handler.path,
          headers: handler.headers,
          timeoutMs,
          userAgent: this.userAgent,
        });
      case 'tcpSocket':
        return probeTcp(hostOf(handler.host, context), resolvePort(handler.port, context.container), timeoutMs);
      case 'grpc':
        return probeGrpc(hostOf(undefined, context), handler.port, handler.service ?? '', timeoutMs, this.userAgent);
    }
  }
}

const _handlerProber: Prober = new HandlerProber({ execSync: async () => ({ exitCode: 0, stdout: '', stderr: '' }) });
void _handlerProber;
