/**
 * Pod-level cgroup resources, as the kubelet's pod container manager computes them with
 * cgroupsPerQOS=true (pkg/kubelet/cm/helpers_linux.go ResourceConfigForPod, MilliCPUToShares,
 * MilliCPUToQuota; component-helpers resource.PodRequests/PodLimits; docs "Pod Overhead",
 * "Pod Quality of Service Classes", "Sidecar Containers" / KEP-753):
 * - pod requests/limits = max(sum over app containers and restartable (sidecar) init containers,
 *   each regular init container plus the sidecars started before it), plus spec.overhead
 *   (overhead adds to limits only where a limit exists);
 * - requests default to limits (API defaulting);
 * - cpu shares from the CPU request (BestEffort → 2); CFS quota only when every container
 *   declares a CPU limit (always for Guaranteed), memory limit only when every container
 *   declares one; pids.max = podPidsLimit when > 0;
 * - QoS tiers (pkg/kubelet/cm/qos_container_manager_linux.go setCPUCgroupConfig): besteffort
 *   gets 2 shares, burstable the shares of the summed CPU requests of its pods.
 * Pure: no I/O. The cgroup files written from this live in cgroups/pod-cgroups.ts.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { podQosClass } from '../../lib/k8s/qos.js';
import { podResources } from '../../lib/k8s/resources.js';

const minShares = 2;
const maxShares = 262_144;
const defaultQuotaPeriodUs = 100_000;
const minQuotaPeriodUs = 1_000;

/** The pod cgroup's settings; an absent field is left unlimited. */
export interface PodResourceConfig {
  cpuShares: number;
  /** CFS quota in µs per period (v1 cpu.cfs_quota_us); absent = unlimited. */
  cpuQuotaUs?: number;
  cpuPeriodUs?: number;
  memoryLimitBytes?: number;
  pidsLimit?: number;
}

export interface PodResourceOptions {
  /** cpuCFSQuota: false → no CFS quota at all (cpu.cfs_quota_us = -1). */
  cpuCFSQuota: boolean;
  cpuCFSQuotaPeriodMs: number;
  /** podPidsLimit (-1 or 0 = unlimited). */
  podPidsLimit: number;
}

/** CPU in millicores and memory in bytes; undefined when not set (or zero). */
interface ResourceAmounts {
  cpuMilli: number;
  memoryBytes: number;
}

interface PodAggregate {
  requests: ResourceAmounts;
  limits: ResourceAmounts;
  /** Every container (and init step) declares a CPU / memory limit. */
  cpuLimitsDeclared: boolean;
  memoryLimitsDeclared: boolean;
}

/** MilliCPUToShares: max(2, milli·1024/1000), capped at 262144; 0 → 2. */
export function milliCpuToShares(milliCpu: number): number {
  if (milliCpu <= 0) return minShares;
  const shares = Math.floor((milliCpu * 1024) / 1000);
  return Math.min(maxShares, Math.max(minShares, shares));
}

/** MilliCPUToQuota: milli·period/1000, at least 1 ms; 0 → no quota. */
export function milliCpuToQuota(milliCpu: number, periodUs: number): number | undefined {
  if (milliCpu <= 0) return undefined;
  return Math.max(minQuotaPeriodUs, Math.floor((milliCpu * periodUs) / 1000));
}

/** cgroup v2 cpu.weight for v1 shares (runc/kubelet CpuSharesToCpuWeight). */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262_142);
}

/**
 * Pod requests and limits in the units the cgroup settings need (lib/k8s/resources.ts
 * podResources: resource.PodRequests / PodLimits, with whether every container declared its
 * limits — the ContainerFn check of ResourceConfigForPod).
 */
export function aggregatePodResources(pod: V1Pod): PodAggregate {
  const { requests, limits, limitsDeclared } = podResources(pod);
  return {
    requests: { cpuMilli: requests.cpu ?? 0, memoryBytes: requests.memory ?? 0 },
    limits: { cpuMilli: limits.cpu ?? 0, memoryBytes: limits.memory ?? 0 },
    cpuLimitsDeclared: limitsDeclared.cpu,
    memoryLimitsDeclared: limitsDeclared.memory,
  };
}

/** ResourceConfigForPod. Throws (with the container named) on an invalid quantity. */
export function podResourceConfig(pod: V1Pod, options: PodResourceOptions): PodResourceConfig {
  const { requests, limits, cpuLimitsDeclared, memoryLimitsDeclared } = aggregatePodResources(pod);
  const qos = podQosClass(pod);
  const pidsLimit = options.podPidsLimit > 0 ? { pidsLimit: options.podPidsLimit } : {};
  if (qos === 'BestEffort') return { cpuShares: minShares, ...pidsLimit };
  const config: PodResourceConfig = { cpuShares: milliCpuToShares(requests.cpuMilli), ...pidsLimit };
  const guaranteed = qos === 'Guaranteed';
  const periodUs = Math.round(options.cpuCFSQuotaPeriodMs * 1000) || defaultQuotaPeriodUs;
  const quota = options.cpuCFSQuota ? milliCpuToQuota(limits.cpuMilli, periodUs) : undefined;
  if ((guaranteed || cpuLimitsDeclared) && quota !== undefined) {
    config.cpuQuotaUs = quota;
    config.cpuPeriodUs = periodUs;
  }
  if ((guaranteed || memoryLimitsDeclared) && limits.memoryBytes > 0) config.memoryLimitBytes = limits.memoryBytes;
  return config;
}

/**
 * CPU shares of the QoS tiers: besteffort 2, burstable the shares of the summed CPU requests
 * of the Burstable pods (qos_container_manager_linux.go setCPUCgroupConfig). Pods with invalid
 * quantities count as zero here (their own sync reports the error).
 */
export function qosTierCpuShares(pods: Iterable<V1Pod>): { burstable: number; besteffort: number } {
  let burstableMilli = 0;
  for (const pod of pods) {
    try {
      if (podQosClass(pod) === 'Burstable') burstableMilli += aggregatePodResources(pod).requests.cpuMilli;
    } catch {
      // An invalid quantity (the only failure of these pure functions): counted as zero, the pod's own sync reports it.
    }
  }
  return { burstable: milliCpuToShares(burstableMilli), besteffort: minShares };
}

/** One file write into a cgroup directory, by controller (v1 hierarchy name; '' on v2). */
export interface CgroupWrite {
  controller: 'cpu' | 'memory' | 'pids';
  file: string;
  value: string;
}

/** The cgroup files a PodResourceConfig becomes, on v1 or v2 (runc's v1→v2 conversions). */
export function cgroupWrites(config: PodResourceConfig, version: 1 | 2): CgroupWrite[] {
  const pids = config.pidsLimit !== undefined ? String(config.pidsLimit) : 'max';
  if (version === 1) {
    return [
      { controller: 'cpu', file: 'cpu.shares', value: String(config.cpuShares) },
      ...(config.cpuPeriodUs !== undefined ? [{ controller: 'cpu' as const, file: 'cpu.cfs_period_us', value: String(config.cpuPeriodUs) }] : []),
      { controller: 'cpu', file: 'cpu.cfs_quota_us', value: String(config.cpuQuotaUs ?? -1) },
      { controller: 'memory', file: 'memory.limit_in_bytes', value: String(config.memoryLimitBytes ?? -1) },
      { controller: 'pids', file: 'pids.max', value: pids },
    ];
  }
  return [
    { controller: 'cpu', file: 'cpu.weight', value: String(sharesToWeight(config.cpuShares)) },
    { controller: 'cpu', file: 'cpu.max', value: `${config.cpuQuotaUs ?? 'max'} ${config.cpuPeriodUs ?? defaultQuotaPeriodUs}` },
    { controller: 'memory', file: 'memory.max', value: config.memoryLimitBytes !== undefined ? String(config.memoryLimitBytes) : 'max' },
    { controller: 'pids', file: 'pids.max', value: pids },
  ];
}
