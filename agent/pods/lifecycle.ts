/**
 * Container lifecycle hooks (docs "Container Lifecycle Hooks"; pkg/kubelet/lifecycle/handlers.go):
 * exec runs in the container through the runtime, httpGet goes to the pod IP (host defaults to
 * it) on a numeric or named port, sleep waits. preStop is bounded by the remaining grace period;
 * a failing postStart kills the container (the kubelet's FailedPostStartHook).
 */
import type { V1Container, V1LifecycleHandler, V1Pod } from '@kubernetes/client-node';
import type { RuntimeService } from '../../cri/runtime.js';
import { describeError } from '../../lib/errors.js';

export class HookError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HookError';
  }
}

function resolvePort(container: V1Container, port: number | string | undefined): number {
  if (typeof port === 'number') return port;
  if (port !== undefined && /^\d+$/.test(port)) return Number(port);
  const named = container.ports?.find((p) => p.name === port);
  if (!named) throw new HookError(`container "${container.name}" has no port named "${String(port)}"`);
  return named.containerPort;
}

/** The URL of an httpGet handler (pure). */
function hookUrl(container: V1Container, handler: NonNullable<V1LifecycleHandler['httpGet']>, podIP: string): string {
  const host = handler.host || podIP || '127.0.0.1';
  const port = resolvePort(container, handler.port as number | string);
  const scheme = (handler.scheme ?? 'HTTP').toLowerCase();
  const path = handler.path ? (handler.path.startsWith('/') ? handler.path : `/${handler.path}`) : '/';
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return `${scheme}://${hostPart}:${port}${path}`;
}

interface HookContext {
  runtime: Pick<RuntimeService, 'execSync'>;
  pod: V1Pod;
  container: V1Container;
  containerId: string;
  podIP: string;
  timeoutMs: number;
  /** False when the pod network is not reachable from here: httpGet handlers fail at once. */
  allowNetwork?: boolean;
}

/** Runs one handler; throws HookError on failure or timeout. */
export async function runHook(handler: V1LifecycleHandler, context: HookContext, what: string): Promise<void> {
  const { container } = context;
  const timeoutSeconds = Math.max(1, Math.ceil(context.timeoutMs / 1000));
  try {
    if (handler.exec?.command?.length) {
      const result = await context.runtime.execSync(context.containerId, handler.exec.command, timeoutSeconds);
      if (result.exitCode !== 0) throw new Error(`command ${JSON.stringify(handler.exec.command)} exited with ${result.exitCode}: ${(result.stderr || result.stdout).trim().slice(0, 200)}`);
    } else if (handler.httpGet) {
      if (context.allowNetwork === false) throw new Error('httpGet handlers are disabled: the pod network is not reachable from the agent\'s network namespace');
      const headers = new Headers();
      for (const header of handler.httpGet.httpHeaders ?? []) headers.append(header.name, header.value);
      const response = await fetch(hookUrl(container, handler.httpGet, context.podIP), { headers, signal: AbortSignal.timeout(context.timeoutMs) });
      await response.arrayBuffer();
      if (response.status < 200 || response.status >= 400) throw new Error(`HTTP GET returned ${response.status}`);
    } else if (handler.sleep) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(context.timeoutMs, handler.sleep!.seconds * 1000)));
    } else if (handler.tcpSocket) {
      throw new Error('tcpSocket lifecycle handlers are not supported (deprecated in Kubernetes)');
    }
  } catch (error) {
    throw new HookError(`${what} hook of container "${container.name}" failed: ${describeError(error)}`, { cause: error });
  }
}
