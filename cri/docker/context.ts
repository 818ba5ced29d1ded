/** Options of the Docker runtime and what its modules share. */
import Docker from 'dockerode';
import { createLogger, type Logger } from '../../lib/log.js';
import { parseQuantity } from '../../lib/quantity.js';
import type { PodNetwork } from '../cni/network.js';
import type { Labels } from '../runtime.js';
import { dockerLabels } from './naming.js';

export interface DockerRuntimeOptions {
  /** A dockerode client, or the socket path (default /var/run/docker.sock). */
  docker?: Docker | string;
  /** The sandbox (pause) image; default knode.local/pause:3.10, built locally when absent. */
  podInfraImage?: string;
  /** Per-sandbox resolv.conf/hostname/hosts live in <sandboxRoot>/<sandbox name>/. */
  sandboxRoot?: string;
  /** Pod networking (CNI). Without it, only hostNetwork pods can run. */
  network?: PodNetwork;
  /** Interface name inside the pod (CNI_IFNAME); default eth0. */
  ifName?: string;
  /**
   * Labels put on every sandbox and container this runtime creates, and required on everything
   * it lists: several agents (or tests) can share one Docker Engine without seeing each other.
   */
  scopeLabels?: Labels;
  /** json-file rotation (kubelet containerLogMaxSize / containerLogMaxFiles). */
  logMaxSize?: string;
  logMaxFiles?: number;
  /** Grace period when stopPodSandbox stops leftover containers (s); default 10. */
  sandboxStopTimeoutSeconds?: number;
  logger?: Logger;
}

export interface RuntimeContext {
  docker: Docker;
  podInfraImage: string;
  sandboxRoot: string;
  network?: PodNetwork;
  ifName: string;
  scopeLabels: Labels;
  logMaxSize: string;
  logMaxFiles: number;
  sandboxStopTimeoutSeconds: number;
  log: Logger;
}

export const defaultSandboxRoot = '/var/lib/knode/cri/sandboxes';

export function makeContext(options: DockerRuntimeOptions, defaultInfraImage: string): RuntimeContext {
  const docker = options.docker instanceof Docker ? options.docker : new Docker({ socketPath: options.docker ?? '/var/run/docker.sock' });
  return {
    docker,
    podInfraImage: options.podInfraImage ?? defaultInfraImage,
    sandboxRoot: options.sandboxRoot ?? defaultSandboxRoot,
    network: options.network,
    ifName: options.ifName ?? 'eth0',
    scopeLabels: { ...options.scopeLabels },
    logMaxSize: dockerLogSize(options.logMaxSize ?? '10Mi'),
    logMaxFiles: options.logMaxFiles ?? 5,
    sandboxStopTimeoutSeconds: options.sandboxStopTimeoutSeconds ?? 10,
    log: options.logger ?? createLogger('cri'),
  };
}

/**
 * The kubelet's containerLogMaxSize is a Kubernetes quantity ("10Mi"); Docker's json-file
 * max-size takes bytes or its own units ("10m" = 10 MiB). Quantities become plain bytes.
 */
export function dockerLogSize(size: string): string {
  if (/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|M|G|T)?$/.test(size)) return String(Math.floor(parseQuantity(size)));
  return size;
}

/**
 * Docker list filters for one kind ("podsandbox" | "container") within the scope; both kinds
 * (the type label present, whatever its value) when `type` is undefined.
 */
export function labelFilters(context: RuntimeContext, type: string | undefined, extra: Labels = {}): string[] {
  const all: Labels = { ...extra, ...context.scopeLabels };
  return [...Object.entries(all).map(([key, value]) => `${key}=${value}`), type === undefined ? dockerLabels.type : `${dockerLabels.type}=${type}`];
}
