/**
 * Building the Docker runtime from the agent's settings (the kubelet flag names:
 * --container-runtime-endpoint, --pod-infra-container-image, --cni-conf-dir, --cni-bin-dir,
 * --cni-cache-dir).
 */
import Docker from 'dockerode';
import type { Logger } from '../../lib/log.js';
import { CniNetwork } from '../cni/network.js';
import type { Labels } from '../runtime.js';
import { DockerRuntime } from './runtime.js';

interface DockerRuntimeSettings {
  /** unix:///var/run/docker.sock (default), or a plain socket path. */
  containerRuntimeEndpoint?: string;
  podInfraContainerImage?: string;
  /** Default /etc/cni/net.d. */
  cniConfDir?: string;
  /** Default ['/opt/cni/bin']; a "a:b" string is split. */
  cniBinDirs?: string[] | string;
  /** Default /var/lib/cni. */
  cniCacheDir?: string;
  /** Run CNI plugins in this network namespace (path); unset in production. */
  cniHostNetns?: string;
  /** Also run the `loopback` plugin for "lo" (needs it in a bin dir). */
  cniLoopback?: boolean;
  /** Default /var/lib/knode/cri/sandboxes. */
  sandboxRoot?: string;
  scopeLabels?: Labels;
  logMaxSize?: string;
  logMaxFiles?: number;
  logger?: Logger;
}

/** "unix:///var/run/docker.sock" → "/var/run/docker.sock"; only unix sockets are supported. */
export function socketPathOf(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint.slice('unix://'.length);
  if (endpoint.startsWith('/')) return endpoint;
  throw new Error(`unsupported container runtime endpoint "${endpoint}" (expected unix:///path/to/docker.sock)`);
}

export function createDockerRuntime(settings: DockerRuntimeSettings = {}): DockerRuntime {
  const binDirs = typeof settings.cniBinDirs === 'string' ? settings.cniBinDirs.split(/[:,]/).filter(Boolean) : (settings.cniBinDirs ?? ['/opt/cni/bin']);
  const network = new CniNetwork({
    confDir: settings.cniConfDir ?? '/etc/cni/net.d',
    binDirs,
    cacheDir: settings.cniCacheDir ?? '/var/lib/cni',
    hostNetns: settings.cniHostNetns,
    loopback: settings.cniLoopback,
  });
  return new DockerRuntime({
    docker: new Docker({ socketPath: socketPathOf(settings.containerRuntimeEndpoint ?? 'unix:///var/run/docker.sock') }),
    podInfraImage: settings.podInfraContainerImage,
    sandboxRoot: settings.sandboxRoot,
    network,
    scopeLabels: settings.scopeLabels,
    logMaxSize: settings.logMaxSize,
    logMaxFiles: settings.logMaxFiles,
    logger: settings.logger,
  });
}
