/**
 * The pure core of one eviction-manager sync (kubelet eviction_manager.go synchronize):
 *   evaluate():        observations + previous state → thresholds to act on, node conditions, new state
 *   chooseEviction():  ranked pods → at most ONE pod to evict, with its grace period, Failed/Evicted
 *                      status, DisruptionTarget condition, message and event annotations
 *   admitPod():        pod admission under pressure (eviction_manager.go Admit)
 * No I/O and no clock: `now` is an argument.
 */
import type { V1Pod, V1Toleration } from '@kubernetes/client-node';
import { formatBytes, parseQuantity } from '../lib/quantity.js';
import { memoryUsage, diskUsage, fsStatsToMeasure, rankPods } from './ranking.js';
import { isCriticalPod } from '../lib/k8s/priority.js';
import { podQosClass } from '../lib/k8s/qos.js';
import { toleratesAny } from '../lib/k8s/tolerations.js';
import {
  byEvictionPriority,
  conditionToTaintKey,
  conditionsFor,
  conditionsLastObservedAt,
  conditionsObservedSince,
  mergeThresholds,
  resolveValue,
  signalToResource,
  thresholdsFirstObservedAt,
  thresholdsMet,
  thresholdsMetGracePeriod,
} from './thresholds.js';
import type { EvictedPodStatus, EvictionEvent, Observations, PodUsageMap, PressureCondition, StarvedResource, Threshold } from './types.js';

export interface EvictionState {
  /** Thresholds acted on in the last sync (kept until resolved with minimum reclaim). */
  thresholdsMet: Threshold[];
  thresholdsFirstObservedAt: Map<string, number>;
  conditionsLastObservedAt: Map<PressureCondition, number>;
}

export const initialEvictionState = (): EvictionState => ({ thresholdsMet: [], thresholdsFirstObservedAt: new Map(), conditionsLastObservedAt: new Map() });

interface Evaluation {
  state: EvictionState;
  /** Node conditions to report (held for the transition period). */
  conditions: Set<PressureCondition>;
  /** Thresholds met for their grace period, in eviction priority order (memory first). */
  actionable: Threshold[];
}

/** One sync's threshold bookkeeping, in the kubelet's order of steps. */
export function evaluate(thresholds: readonly Threshold[], observations: Observations, previous: EvictionState, transitionPeriodMs: number, now: number): Evaluation {
  let met = thresholdsMet(thresholds, observations, false);
  // Thresholds met last time stay met until they are resolved by their minimum reclaim.
  if (previous.thresholdsMet.length > 0) met = mergeThresholds(met, thresholdsMet(previous.thresholdsMet, observations, true));
  const firstObservedAt = thresholdsFirstObservedAt(met, previous.thresholdsFirstObservedAt, now);
  const lastObservedAt = conditionsLastObservedAt(conditionsFor(met), previous.conditionsLastObservedAt, now);
  const conditions = conditionsObservedSince(lastObservedAt, transitionPeriodMs, now);
  const actionable = byEvictionPriority(thresholdsMetGracePeriod(met, firstObservedAt, now));
  for (const [condition, at] of lastObservedAt) if (!conditions.has(condition) && now - at >= transitionPeriodMs) lastObservedAt.delete(condition);
  return { state: { thresholdsMet: actionable, thresholdsFirstObservedAt: firstObservedAt, conditionsLastObservedAt: lastObservedAt }, conditions, actionable };
}

/** Quantity.String() of a BinarySI byte count ("100Mi", "83886081") or a DecimalSI count ("5k"). */
export function formatAmount(amount: number, resource: StarvedResource): string {
  if (resource === 'memory' || resource === 'ephemeral-storage') return formatBytes(Math.trunc(amount));
  let value = Math.trunc(amount);
  const suffixes = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
  let index = 0;
  while (value !== 0 && value % 1000 === 0 && index < suffixes.length - 1) {
    value /= 1000;
    index++;
  }
  return `${value}${suffixes[index]}`;
}

interface EvictionMessage {
  message: string;
  annotations: Record<string, string>;
}

/** The kubelet's evictionMessage (helpers.go), fragments verbatim including trailing spaces. */
export function evictionMessage(pod: V1Pod, threshold: Threshold, observations: Observations, usage: PodUsageMap, dedicatedImageFs: boolean): EvictionMessage {
  const resource = signalToResource[threshold.signal];
  let message = `The node was low on resource: ${resource}. `;
  const observed = observations[threshold.signal];
  if (observed) {
    const quantity = resolveValue(threshold.value, observed.capacity);
    message += `Threshold quantity: ${formatAmount(quantity, resource)}, available: ${formatAmount(observed.available, resource)}. `;
  }
  const offending: string[] = [];
  const offendingUsage: string[] = [];
  const podUsage = usage.get(pod.metadata?.uid ?? '');
  if (podUsage && (resource === 'memory' || resource === 'ephemeral-storage')) {
    const measure = fsStatsToMeasure(threshold.signal, dedicatedImageFs);
    for (const stats of podUsage.containers) {
      const container = pod.spec?.containers.find((c) => c.name === stats.name);
      if (!container) continue;
      const used =
        resource === 'memory'
          ? memoryUsage({ containers: [stats] })
          : diskUsage({ containers: [{ name: stats.name, rootfsUsedBytes: stats.rootfsUsedBytes, logsUsedBytes: stats.logsUsedBytes }] }, measure.includes('root') ? ['root', 'logs'] : ['logs'], false);
      const requestText = container.resources?.requests?.[resource];
      const request = requestText === undefined ? 0 : parseQuantity(requestText);
      if (used > request) {
        message += `Container ${container.name} was using ${formatAmount(used, resource)}, request is ${requestText ?? '0'}, has larger consumption of ${resource}. `;
        offending.push(container.name);
        offendingUsage.push(formatAmount(used, resource));
      }
    }
  }
  return {
    message,
    annotations: { offending_containers: offending.join(','), offending_containers_usage: offendingUsage.join(','), starved_resource: resource },
  };
}

/** kubelet immediateEvictionGracePeriodSeconds: hard evictions get 1 s (docs say "0s"; the code passes 1). */
const immediateEvictionGracePeriodSeconds = 1;

/** Grace period: hard → immediate; soft → min(evictionMaxPodGracePeriod, pod's terminationGracePeriodSeconds). */
export function evictionGracePeriod(pod: V1Pod, threshold: Threshold, maxPodGracePeriodSeconds: number): number {
  if (threshold.hard) return immediateEvictionGracePeriodSeconds;
  const podGrace = pod.spec?.terminationGracePeriodSeconds;
  return podGrace === undefined ? maxPodGracePeriodSeconds : Math.min(maxPodGracePeriodSeconds, podGrace);
}

export interface EvictionDecision {
  pod: V1Pod;
  threshold: Threshold;
  gracePeriodSeconds: number;
  status: EvictedPodStatus;
  event: EvictionEvent;
}

interface ChooseInput {
  pods: readonly V1Pod[];
  usage: PodUsageMap;
  threshold: Threshold;
  observations: Observations;
  maxPodGracePeriodSeconds: number;
  dedicatedImageFs: boolean;
  now: number;
}

/** Ranks the pods for the threshold and picks the first that may be evicted (one per sync). */
export function chooseEviction(input: ChooseInput): EvictionDecision | undefined {
  const { threshold } = input;
  const resource = signalToResource[threshold.signal];
  const ranked = rankPods(input.pods, { signal: threshold.signal, resource, usage: input.usage, dedicatedImageFs: input.dedicatedImageFs });
  const pod = ranked.find((candidate) => !isCriticalPod(candidate));
  if (!pod) return undefined;
  const { message, annotations } = evictionMessage(pod, threshold, input.observations, input.usage, input.dedicatedImageFs);
  const condition = { type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message, lastTransitionTime: new Date(input.now) };
  return {
    pod,
    threshold,
    gracePeriodSeconds: evictionGracePeriod(pod, threshold, input.maxPodGracePeriodSeconds),
    status: { phase: 'Failed', reason: 'Evicted', message, conditions: [condition] },
    event: { type: 'Warning', reason: 'Evicted', message, annotations },
  };
}

export type AdmitResult = { admit: true } | { admit: false; reason: 'Evicted'; message: string };

function toleratesMemoryPressure(tolerations: readonly V1Toleration[] | undefined): boolean {
  return toleratesAny(tolerations, { key: conditionToTaintKey.MemoryPressure, effect: 'NoSchedule' });
}

/**
 * Admission under pressure (kubelet eviction_manager.go Admit): no pressure → admit; critical
 * pods → admit; memory pressure only → admit unless BestEffort (and not tolerating the
 * memory-pressure taint); any other pressure → reject. Message: "The node had condition: [X]. ".
 */
export function admitPod(pod: V1Pod, conditions: ReadonlySet<PressureCondition>): AdmitResult {
  if (conditions.size === 0 || isCriticalPod(pod)) return { admit: true };
  const order: PressureCondition[] = ['MemoryPressure', 'DiskPressure', 'PIDPressure'];
  const list = order.filter((condition) => conditions.has(condition));
  if (list.length === 1 && list[0] === 'MemoryPressure') {
    if (podQosClass(pod) !== 'BestEffort' || toleratesMemoryPressure(pod.spec?.tolerations)) return { admit: true };
  }
  return { admit: false, reason: 'Evicted', message: `The node had condition: [${list.join(' ')}]. ` };
}
