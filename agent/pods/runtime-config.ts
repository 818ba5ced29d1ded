/**
 * Pod spec → CRI PodSandboxConfig / ContainerConfig, as the kubelet's kuberuntime does
 * (kuberuntime_sandbox.go generatePodSandboxConfig, kuberuntime_container.go
 * generateContainerConfig, kuberuntime_container_linux.go for resources, labels.go for the
 * labels/annotations that let a restarted agent rebuild its view from the runtime alone).
 * DNS follows dnsPolicy (pkg/kubelet/network/dns/dns.go): ClusterFirst → clusterDNS with the
 * "<ns>.svc.<domain> svc.<domain> <domain>" search path and ndots:5 (falls back to Default when
 * no clusterDNS is configured or the pod is hostNetwork with ClusterFirst); Default → the
 * node's resolv.conf; None → spec.dnsConfig only; dnsConfig is merged in for all policies.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type { KubeletConfiguration } from '../../lib/config/kubelet.js';
import type { Logger } from '../../lib/log.js';
import { containerLogPath, kubeAnnotations, kubeLabels, podLogDirectory as criPodLogDirectory, type ContainerConfig, type DNSConfig, type Mount, type PodSandboxConfig, type PortMapping, type Protocol } from '../../cri/runtime.js';
import { parseMilliCPU, parseQuantity } from '../../lib/quantity.js';
import { containerHash, sandboxHash } from './container-hash.js';
import { sandboxHashAnnotation } from './actions.js';
import { podCgroupParent } from '../../lib/k8s/cgroups.js';
import { podQosClass } from '../../lib/k8s/qos.js';

export interface RuntimeConfigOptions {
  nodeName: string;
  /** Root for pod log directories (the kubelet's /var/log/pods). */
  podLogsDir: string;
  clusterDomain: string;
  clusterDNS: string[];
  /** Parsed node resolv.conf, for dnsPolicy Default. */
  hostDNS: DNSConfig;
  cgroupDriver: 'cgroupfs' | 'systemd';
  cgroupRoot: string;
  cgroupsPerQOS: boolean;
  cpuCFSQuota: boolean;
  cpuCFSQuotaPeriodMs: number;
  podPidsLimit: number;
  /**
   * Lowest oom_score_adj containers may get: where the node cannot lower scores (no
   * CAP_SYS_RESOURCE in its user namespace, e.g. inside a container), runc fails to start a
   * container asking for less than its parent has, so scores are clamped to what is allowed.
   */
  minOomScoreAdj?: number;
}

/** The runtime settings of a KubeletConfiguration (hostDNS and minOomScoreAdj: prepareRuntimeHost). */
export function runtimeConfigFor(config: KubeletConfiguration, nodeName: string, podLogsDir: string): RuntimeConfigOptions {
  return {
    nodeName,
    podLogsDir,
    clusterDomain: config.clusterDomain,
    clusterDNS: config.clusterDNS,
    hostDNS: { servers: [], searches: [], options: [] },
    cgroupDriver: config.cgroupDriver,
    cgroupRoot: config.cgroupRoot,
    // Pod cgroups under /kubepods/<tier>/pod<uid> with the cgroupfs driver, the slices
    // kubepods[-<tier>]-pod<uid>.slice with the systemd driver (agent/cgroups/pod-cgroups.ts).
    cgroupsPerQOS: config.cgroupsPerQOS,
    cpuCFSQuota: config.cpuCFSQuota,
    cpuCFSQuotaPeriodMs: config.cpuCFSQuotaPeriod,
    podPidsLimit: config.podPidsLimit,
  };
}

/** Default pod log root when none is given: <rootDir>/pod-logs. */
export function defaultPodLogsDir(rootDir: string): string {
  return join(rootDir, 'pod-logs');
}

/**
 * What the runtime settings learn from the host at start: the node's resolv.conf (dnsPolicy
 * Default; a missing file means no host DNS, as the kubelet's empty resolvConf) and the lowest
 * oom_score_adj the agent may give (applyOwnOomScoreAdj).
 */
export async function prepareRuntimeHost(options: RuntimeConfigOptions, config: Pick<KubeletConfiguration, 'resolvConf' | 'oomScoreAdj'>, log: Logger): Promise<void> {
  let text = '';
  try {
    // resolvConf "" turns host DNS off (KubeletConfiguration resolvConf).
    if (config.resolvConf !== '') text = await readFile(config.resolvConf, 'utf8');
  } catch (error) {
    log.warn({ err: error, resolvConf: config.resolvConf }, 'cannot read the node\'s resolv.conf: pods with dnsPolicy Default get no nameservers');
  }
  options.hostDNS = parseResolvConf(text);
  options.minOomScoreAdj = await applyOwnOomScoreAdj(config.oomScoreAdj, log);
}

/**
 * The kubelet gives itself oomScoreAdj (default -999). Where lowering a score is not allowed,
 * that fails; then the agent's current score is the floor for its containers too.
 */
async function applyOwnOomScoreAdj(wanted: number, log: Logger): Promise<number> {
  const file = '/proc/self/oom_score_adj';
  try {
    await writeFile(file, String(wanted));
    return -1000;
  } catch (error) {
    let current = 0;
    try {
      current = Number((await readFile(file, 'utf8')).trim()) || 0;
    } catch (readError) {
      log.warn({ err: readError }, 'cannot read the agent\'s oom_score_adj; taking 0');
    }
    log.warn({ wanted, current, err: error }, 'cannot lower oom_score_adj here; container OOM scores are clamped to the current one');
    return current;
  }
}

/** Parses resolv.conf text into nameservers/search/options. */
export function parseResolvConf(text: string): DNSConfig {
  const config: DNSConfig = { servers: [], searches: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...values] = line.split(/\s+/);
    if (key === 'nameserver' && values[0]) config.servers.push(values[0]);
    else if (key === 'search' || key === 'domain') config.searches = values;
    else if (key === 'options') config.options.push(...values);
  }
  return config;
}

export function podDnsConfig(pod: V1Pod, options: Pick<RuntimeConfigOptions, 'clusterDNS' | 'clusterDomain' | 'hostDNS'>): DNSConfig {
  const spec = pod.spec!;
  let policy = spec.dnsPolicy ?? 'ClusterFirst';
  if (policy === 'ClusterFirst' && (spec.hostNetwork || options.clusterDNS.length === 0)) policy = 'Default';
  let base: DNSConfig;
  if (policy === 'None') base = { servers: [], searches: [], options: [] };
  else if (policy === 'Default') base = structuredClone(options.hostDNS);
  else {
    const ns = pod.metadata?.namespace ?? 'default';
    const domain = options.clusterDomain;
    const searches = domain ? [`${ns}.svc.${domain}`, `svc.${domain}`, domain] : [];
    base = { servers: [...options.clusterDNS], searches: [...searches, ...options.hostDNS.searches], options: ['ndots:5'] };
  }
  const extra = spec.dnsConfig;
  if (extra) {
    base.servers = [...new Set([...base.servers, ...(extra.nameservers ?? [])])];
    base.searches = [...new Set([...base.searches, ...(extra.searches ?? [])])];
    const opts = new Map(base.options.map((o) => [o.split(':')[0]!, o]));
    for (const o of extra.options ?? []) if (o.name) opts.set(o.name, o.value !== undefined ? `${o.name}:${o.value}` : o.name);
    base.options = [...opts.values()];
  }
  base.searches = base.searches.slice(0, 32);
  return base;
}

export function podLogDirectory(pod: V1Pod, podLogsDir: string): string {
  const m = pod.metadata!;
  return criPodLogDirectory(m.namespace ?? 'default', m.name ?? '', m.uid ?? '', podLogsDir);
}

function portMappings(pod: V1Pod): PortMapping[] {
  const mappings: PortMapping[] = [];
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const port of c.ports ?? []) {
      if (!port.hostPort) continue;
      mappings.push({ protocol: (port.protocol ?? 'TCP') as Protocol, containerPort: port.containerPort, hostPort: port.hostPort, ...(port.hostIP ? { hostIp: port.hostIP } : {}) });
    }
  }
  return mappings;
}

function podIdentity(pod: V1Pod): Record<string, string> {
  const m = pod.metadata!;
  return { [kubeLabels.podName]: m.name!, [kubeLabels.podNamespace]: m.namespace ?? 'default', [kubeLabels.podUid]: m.uid! };
}

export function buildSandboxConfig(pod: V1Pod, attempt: number, options: RuntimeConfigOptions): PodSandboxConfig {
  const m = pod.metadata!;
  const spec = pod.spec!;
  const hostname = spec.hostNetwork ? undefined : (spec.hostname ?? m.name!).slice(0, 63);
  const sc = spec.securityContext;
  const sysctls = Object.fromEntries((sc?.sysctls ?? []).map((s) => [s.name, s.value]));
  return {
    metadata: { name: m.name!, namespace: m.namespace ?? 'default', uid: m.uid!, attempt },
    ...(hostname ? { hostname } : {}),
    logDirectory: podLogDirectory(pod, options.podLogsDir),
    dnsConfig: podDnsConfig(pod, options),
    portMappings: portMappings(pod),
    labels: { ...m.labels, ...podIdentity(pod) },
    annotations: { ...m.annotations, [sandboxHashAnnotation]: sandboxHash(pod) },
    linux: {
      ...(options.cgroupsPerQOS ? { cgroupParent: podCgroupParent(podQosClass(pod), m.uid!, options.cgroupDriver, options.cgroupRoot) } : {}),
      securityContext: {
        namespaceOptions: { network: spec.hostNetwork ? 'NODE' : 'POD', pid: spec.hostPID ? 'NODE' : spec.shareProcessNamespace ? 'POD' : 'CONTAINER', ipc: spec.hostIPC ? 'NODE' : 'POD' },
        ...(sc?.runAsUser !== undefined ? { runAsUser: sc.runAsUser } : {}),
        ...(sc?.runAsGroup !== undefined ? { runAsGroup: sc.runAsGroup } : {}),
        ...(sc?.supplementalGroups?.length ? { supplementalGroups: sc.supplementalGroups } : {}),
      },
      ...(Object.keys(sysctls).length ? { sysctls } : {}),
    },
  };
}

interface ContainerInputs {
  env: ReadonlyMap<string, string>;
  command?: string[];
  args?: string[];
  mounts: Mount[];
  oomScoreAdj: number;
}

/** Linux resources from requests/limits (kuberuntime_container_linux.go calculateLinuxResources). */
export function linuxResources(container: V1Container, options: Pick<RuntimeConfigOptions, 'cpuCFSQuota' | 'cpuCFSQuotaPeriodMs' | 'podPidsLimit' | 'minOomScoreAdj'>, requestedOomScoreAdj: number): NonNullable<NonNullable<ContainerConfig['linux']>['resources']> {
  const requests = (container.resources?.requests ?? {}) as Record<string, string>;
  const limits = (container.resources?.limits ?? {}) as Record<string, string>;
  const oomScoreAdj = Math.max(requestedOomScoreAdj, options.minOomScoreAdj ?? -1000);
  const cpuRequest = requests.cpu ?? limits.cpu;
  const shares = cpuRequest !== undefined ? Math.max(2, Math.floor((parseMilliCPU(String(cpuRequest)) * 1024) / 1000)) : 2;
  const out: NonNullable<NonNullable<ContainerConfig['linux']>['resources']> = { cpuShares: shares, oomScoreAdj };
  if (limits.cpu !== undefined && options.cpuCFSQuota) {
    const period = Math.round(options.cpuCFSQuotaPeriodMs * 1000);
    out.cpuPeriod = period;
    out.cpuQuota = Math.max(1000, Math.floor((parseMilliCPU(String(limits.cpu)) * period) / 1000));
  }
  if (limits.memory !== undefined) out.memoryLimitInBytes = Math.floor(parseQuantity(String(limits.memory)));
  if (options.podPidsLimit > 0) out.pidsLimit = options.podPidsLimit;
  return out;
}

export function buildContainerConfig(pod: V1Pod, container: V1Container, attempt: number, inputs: ContainerInputs, options: RuntimeConfigOptions): ContainerConfig {
  const sc = container.securityContext;
  const grace = pod.spec?.terminationGracePeriodSeconds ?? 30;
  return {
    metadata: { name: container.name, attempt },
    image: { image: container.image! },
    ...(inputs.command ? { command: inputs.command } : {}),
    ...(inputs.args ? { args: inputs.args } : {}),
    ...(container.workingDir ? { workingDir: container.workingDir } : {}),
    envs: [...inputs.env].map(([key, value]) => ({ key, value })),
    mounts: inputs.mounts,
    labels: { ...podIdentity(pod), [kubeLabels.containerName]: container.name },
    annotations: {
      [kubeAnnotations.containerHash]: containerHash(container),
      [kubeAnnotations.restartCount]: String(attempt),
      [kubeAnnotations.terminationMessagePath]: container.terminationMessagePath ?? '/dev/termination-log',
      [kubeAnnotations.terminationMessagePolicy]: container.terminationMessagePolicy ?? 'File',
      [kubeAnnotations.podTerminationGracePeriod]: String(grace),
      ...(container.ports?.length ? { [kubeAnnotations.containerPorts]: JSON.stringify(container.ports) } : {}),
    },
    logPath: containerLogPath(container.name, attempt),
    stdin: container.stdin === true,
    stdinOnce: container.stdinOnce === true,
    tty: container.tty === true,
    linux: {
      resources: linuxResources(container, options, inputs.oomScoreAdj),
      securityContext: {
        ...(sc?.privileged ? { privileged: true } : {}),
        ...(sc?.runAsUser !== undefined ? { runAsUser: sc.runAsUser } : pod.spec?.securityContext?.runAsUser !== undefined ? { runAsUser: pod.spec.securityContext.runAsUser } : {}),
        ...(sc?.runAsGroup !== undefined ? { runAsGroup: sc.runAsGroup } : {}),
        ...(sc?.readOnlyRootFilesystem ? { readonlyRootfs: true } : {}),
        ...(sc?.allowPrivilegeEscalation === false ? { noNewPrivs: true } : {}),
        ...(sc?.capabilities ? { capabilities: { addCapabilities: sc.capabilities.add ?? [], dropCapabilities: sc.capabilities.drop ?? [] } } : {}),
        namespaceOptions: { network: pod.spec?.hostNetwork ? 'NODE' : 'POD', pid: pod.spec?.hostPID ? 'NODE' : pod.spec?.shareProcessNamespace ? 'POD' : 'CONTAINER', ipc: pod.spec?.hostIPC ? 'NODE' : 'POD' },
      },
    },
  };
}
