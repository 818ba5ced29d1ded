/**
 * What the kubelet puts between itself and the CRI, applied to any ContainerRuntime:
 * - runtimeRequestTimeout (pkg/kubelet/cri/remote/remote_runtime.go, remote_image.go): each call
 *   fails after the timeout (a sandbox run gets twice the timeout, a container stop the timeout
 *   plus its grace period); image pulls, exec with its own timeout, and the streaming calls
 *   (exec, attach, port-forward) have none, as upstream.
 * - serializeImagePulls / maxParallelImagePulls (pkg/kubelet/images/puller.go): pulls wait in a
 *   queue, one at a time when serialized, at most maxParallelImagePulls at once otherwise.
 * - registryPullQPS / registryBurst (pkg/kubelet/images/helpers.go throttleImagePulling): a pull
 *   beyond the rate fails at once with "pull QPS exceeded" (retried with the image back-off).
 * A timed-out call is not cancelled underneath (the Docker API has no deadline); its result is
 * dropped, as a gRPC client drops a reply that comes after DeadlineExceeded.
 */
import { TokenBucket } from '../lib/token-bucket.js';
import type { Clock } from '../lib/clock.js';
import type { ContainerRuntime } from './runtime.js';

interface RuntimePolicyOptions {
  /** ms; 0 = no timeout. */
  runtimeRequestTimeoutMs: number;
  serializeImagePulls: boolean;
  maxParallelImagePulls?: number | undefined;
  registryPullQPS: number;
  registryBurst: number;
  clock?: Clock;
}

const noTimeout = new Set(['pullImage', 'exec', 'attach', 'portForward']);

/** The deadline (ms) of one call, or undefined for none. */
export function callTimeoutMs(method: string, args: readonly unknown[], timeoutMs: number): number | undefined {
  if (timeoutMs <= 0 || noTimeout.has(method)) return undefined;
  if (method === 'runPodSandbox') return 2 * timeoutMs;
  if (method === 'stopContainer') return timeoutMs + Math.max(0, Number(args[1]) || 0) * 1000;
  if (method === 'execSync') {
    const seconds = Number(args[2]) || 0;
    return seconds > 0 ? seconds * 1000 + timeoutMs : undefined;
  }
  return timeoutMs;
}

/** A counting semaphore: at most `limit` holders; waiters in order. */
class PullQueue {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, method: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`runtime call ${method} timed out after ${ms / 1000}s (runtimeRequestTimeout): context deadline exceeded`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

export function applyRuntimePolicies<T extends ContainerRuntime>(runtime: T, options: RuntimePolicyOptions): T {
  const limit = options.serializeImagePulls ? 1 : (options.maxParallelImagePulls ?? Number.POSITIVE_INFINITY);
  const queue = new PullQueue(limit);
  const bucket = new TokenBucket(options.registryPullQPS, options.registryBurst, options.clock);
  const pull: ContainerRuntime['pullImage'] = (image, auth, sandbox) =>
    queue.run(() => {
      if (!bucket.tryTake()) return Promise.reject(new Error(`pull QPS exceeded (registryPullQPS ${options.registryPullQPS}) for image "${image.image}"`));
      return runtime.pullImage(image, auth, sandbox);
    });
  return new Proxy(runtime, {
    get: (target, property, receiver) => {
      if (property === 'pullImage') return pull;
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        const ms = callTimeoutMs(property, args, options.runtimeRequestTimeoutMs);
        return ms !== undefined && result instanceof Promise ? withTimeout(result, ms, property) : result;
      };
    },
  });
}
