/**
 * Pure pod ranking for eviction, the kubelet's pkg/kubelet/eviction/helpers.go:
 *   memory:  orderedBy(exceedMemoryRequests, priority, memory)   (rankMemoryPressure)
 *   disk:    orderedBy(exceedDiskRequests, priority, disk)       (rankDiskPressureFunc)
 *   pids:    orderedBy(priority, process)                        (rankPIDPressure)
 * A pod without stats ranks first, as in the kubelet ("prioritize evicting the pod for which no
 * stats were found"). QoS class is not a key (docs: "Pod selection for kubelet eviction").
 * Critical pods (static, mirror, priority >= 2000000000) are ranked like the others but are never
 * evicted: the kubelet's evictPod refuses them (kubelettypes.IsCriticalPod).
 */
import type { V1Pod } from '@kubernetes/client-node';
import { podPriority } from '../lib/k8s/priority.js';
import { podRequest } from '../lib/k8s/resources.js';
import type { PodUsage, PodUsageMap, Signal, StarvedResource } from './types.js';

/** Which disk stats count for a signal (kubelet fsStatsType: root, logs, localVolumeSource). */
type FsStat = 'root' | 'logs' | 'localVolume';

export function fsStatsToMeasure(signal: Signal, dedicatedImageFs: boolean): FsStat[] {
  if (!dedicatedImageFs) return ['root', 'logs', 'localVolume'];
  if (signal.startsWith('imagefs.')) return ['root'];
  return ['logs', 'localVolume'];
}

export function memoryUsage(usage: PodUsage): number {
  return usage.containers.reduce((total, c) => total + (c.memoryWorkingSetBytes ?? 0), 0);
}

export function diskUsage(usage: PodUsage, measure: readonly FsStat[], inodes: boolean): number {
  let total = 0;
  for (const c of usage.containers) {
    if (measure.includes('root')) total += (inodes ? c.rootfsInodesUsed : c.rootfsUsedBytes) ?? 0;
    if (measure.includes('logs')) total += (inodes ? c.logsInodesUsed : c.logsUsedBytes) ?? 0;
  }
  if (measure.includes('localVolume')) total += (inodes ? usage.localVolumesInodesUsed : usage.localVolumesUsedBytes) ?? 0;
  return total;
}

/** Sort keys computed once per pod (quantities are parsed once, not per comparison). */
interface Keys {
  pod: V1Pod;
  hasStats: boolean;
  priority: number;
  /** Usage minus request (memory, disk, inodes) or process count (pids). */
  amount: number;
}

type Cmp = (a: Keys, b: Keys) => number;

/** true before false. */
const cmpBool = (a: boolean, b: boolean): number => (a === b ? 0 : a ? -1 : 1);

/** Pods without stats first ("prioritize evicting the pod for which no stats were found"). */
const withStats =
  (compare: Cmp): Cmp =>
  (a, b) =>
    !a.hasStats || !b.hasStats ? cmpBool(!a.hasStats, !b.hasStats) : compare(a, b);

const exceedsRequests: Cmp = withStats((a, b) => cmpBool(a.amount > 0, b.amount > 0));
const byPriority: Cmp = (a, b) => a.priority - b.priority;
const byAmount: Cmp = withStats((a, b) => b.amount - a.amount);

function orderedBy(...cmps: Cmp[]): Cmp {
  return (a, b) => {
    for (const cmp of cmps) {
      const result = cmp(a, b);
      if (result !== 0) return result;
    }
    return 0;
  };
}

interface RankInput {
  signal: Signal;
  resource: StarvedResource;
  usage: PodUsageMap;
  dedicatedImageFs: boolean;
}

function amountFn(input: RankInput): (usage: PodUsage, pod: V1Pod) => number {
  const { resource } = input;
  if (resource === 'memory') return (u, p) => memoryUsage(u) - podRequest(p, 'memory');
  if (resource === 'pids') return (u) => u.processCount ?? 0;
  const measure = fsStatsToMeasure(input.signal, input.dedicatedImageFs);
  const inodes = resource === 'inodes';
  return (u, p) => diskUsage(u, measure, inodes) - podRequest(p, inodes ? 'inodes' : 'ephemeral-storage');
}

/** Returns the pods in eviction order (first = evicted first). Does not change the input. */
export function rankPods(pods: readonly V1Pod[], input: RankInput): V1Pod[] {
  const amount = amountFn(input);
  const keys = pods.map((pod): Keys => {
    const usage = input.usage.get(pod.metadata?.uid ?? '');
    return { pod, hasStats: usage !== undefined, priority: podPriority(pod), amount: usage ? amount(usage, pod) : 0 };
  });
  const cmp = input.resource === 'pids' ? orderedBy(byPriority, byAmount) : orderedBy(exceedsRequests, byPriority, byAmount);
  return keys.sort(cmp).map((key) => key.pod);
}
