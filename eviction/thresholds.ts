/**
 * Pure threshold policy: config → thresholds, observations → thresholds met (with minimum
 * reclaim), soft grace periods, pressure-transition hold, node conditions and taints.
 * Mirrors pkg/kubelet/eviction/helpers.go (ParseThresholdConfig, thresholdsMet,
 * thresholdsFirstObservedAt, thresholdsMetGracePeriod, nodeConditions,
 * nodeConditionsLastObservedAt, nodeConditionsObservedSince) and
 * https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/.
 */
import type { V1Taint } from '@kubernetes/client-node';
import { ConfigError } from '../lib/errors.js';
import { evictionSignals, type KubeletConfiguration } from '../lib/config/kubelet.js';
import { parseThresholdValue, type ThresholdValue } from '../lib/quantity.js';
import type { Observations, PressureCondition, Signal, StarvedResource, Threshold } from './types.js';

type EvictionConfig = Pick<
  KubeletConfiguration,
  'evictionHard' | 'evictionSoft' | 'evictionSoftGracePeriod' | 'evictionMinimumReclaim'
>;

const signalToCondition: Record<Signal, PressureCondition> = {
  'memory.available': 'MemoryPressure',
  'nodefs.available': 'DiskPressure',
  'nodefs.inodesFree': 'DiskPressure',
  'imagefs.available': 'DiskPressure',
  'imagefs.inodesFree': 'DiskPressure',
  'containerfs.available': 'DiskPressure',
  'containerfs.inodesFree': 'DiskPressure',
  'pid.available': 'PIDPressure',
};

export const signalToResource: Record<Signal, StarvedResource> = {
  'memory.available': 'memory',
  'nodefs.available': 'ephemeral-storage',
  'nodefs.inodesFree': 'inodes',
  'imagefs.available': 'ephemeral-storage',
  'imagefs.inodesFree': 'inodes',
  'containerfs.available': 'ephemeral-storage',
  'containerfs.inodesFree': 'inodes',
  'pid.available': 'pids',
};

/** Taints the node lifecycle controller derives from the conditions (TaintNodesByCondition). */
export const conditionToTaintKey: Record<PressureCondition, string> = {
  MemoryPressure: 'node.kubernetes.io/memory-pressure',
  DiskPressure: 'node.kubernetes.io/disk-pressure',
  PIDPressure: 'node.kubernetes.io/pid-pressure',
};

function isSignal(name: string): name is Signal {
  return (evictionSignals as readonly string[]).includes(name);
}

function thresholdValue(signal: string, text: string, field: string): ThresholdValue {
  try {
    return parseThresholdValue(text);
  } catch (error) {
    throw new ConfigError(`${field}["${signal}"]: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Builds the thresholds from a loaded KubeletConfiguration (which already applied the
 * evictionHard defaults). Re-validates so that hand-built configs fail with one clear error.
 * "0%" and "100%" disable the signal; a zero quantity is an error (helpers.go parseThresholdStatement).
 */
export function parseThresholds(config: EvictionConfig): Threshold[] {
  const all = [...Object.keys(config.evictionHard), ...Object.keys(config.evictionSoft), ...Object.keys(config.evictionSoftGracePeriod), ...Object.keys(config.evictionMinimumReclaim)];
  const unknown = all.find((name) => !isSignal(name));
  if (unknown) throw new ConfigError(`unknown eviction signal "${unknown}" (one of ${evictionSignals.join(', ')})`);
  const minReclaim = (signal: Signal): ThresholdValue | undefined => {
    const text = config.evictionMinimumReclaim[signal];
    return text === undefined ? undefined : thresholdValue(signal, text, 'evictionMinimumReclaim');
  };
  const result: Threshold[] = [];
  for (const [signal, text] of Object.entries(config.evictionHard) as [Signal, string][]) {
    const value = thresholdValue(signal, text, 'evictionHard');
    if (isDisabled(signal, value, 'evictionHard')) continue;
    result.push({ signal, value, gracePeriodMs: 0, hard: true, minReclaim: minReclaim(signal) });
  }
  for (const [signal, text] of Object.entries(config.evictionSoft) as [Signal, string][]) {
    const value = thresholdValue(signal, text, 'evictionSoft');
    const grace = config.evictionSoftGracePeriod[signal];
    if (grace === undefined) throw new ConfigError(`evictionSoft["${signal}"]: soft eviction threshold has no evictionSoftGracePeriod`);
    if (grace < 0) throw new ConfigError(`evictionSoftGracePeriod["${signal}"]: must not be negative`);
    if (isDisabled(signal, value, 'evictionSoft')) continue;
    result.push({ signal, value, gracePeriodMs: grace, hard: false, minReclaim: minReclaim(signal) });
  }
  return result;
}

/** True when the threshold is disabled ("0%", "100%"); throws on a zero quantity. */
function isDisabled(signal: Signal, value: ThresholdValue, field: string): boolean {
  if ('percentage' in value) return value.percentage === 0 || value.percentage === 1;
  if (value.quantity === 0) throw new ConfigError(`${field}["${signal}"]: eviction threshold must be positive: 0`);
  return false;
}

/** Resolves a quantity or a percentage of capacity to an absolute amount (GetThresholdQuantity). */
export function resolveValue(value: ThresholdValue, capacity: number): number {
  return 'quantity' in value ? value.quantity : Math.trunc(capacity * value.percentage);
}

/** The amount below which the threshold is met, plus minimum reclaim when enforced. */
function thresholdQuantity(threshold: Threshold, capacity: number, enforceMinReclaim: boolean): number {
  const base = resolveValue(threshold.value, capacity);
  if (!enforceMinReclaim || !threshold.minReclaim) return base;
  return base + resolveValue(threshold.minReclaim, capacity);
}

/** Thresholds whose signal is observed below its quantity (thresholdsMet). Unobserved: not met. */
export function thresholdsMet(thresholds: readonly Threshold[], observations: Observations, enforceMinReclaim: boolean): Threshold[] {
  return thresholds.filter((threshold) => {
    const observed = observations[threshold.signal];
    if (!observed) return false;
    return observed.available < thresholdQuantity(threshold, observed.capacity, enforceMinReclaim);
  });
}

const thresholdKey = (threshold: Threshold): string => `${threshold.signal}/${threshold.hard ? 'hard' : 'soft'}`;

/** Union of two threshold lists without duplicates (mergeThresholds). */
export function mergeThresholds(a: readonly Threshold[], b: readonly Threshold[]): Threshold[] {
  const seen = new Set(a.map(thresholdKey));
  return [...a, ...b.filter((threshold) => !seen.has(thresholdKey(threshold)))];
}

/** First time each currently-met threshold was observed met; others are forgotten. */
export function thresholdsFirstObservedAt(met: readonly Threshold[], last: ReadonlyMap<string, number>, now: number): Map<string, number> {
  return new Map(met.map((threshold) => [thresholdKey(threshold), last.get(thresholdKey(threshold)) ?? now]));
}

/** Thresholds met for at least their grace period (0 for hard ones). */
export function thresholdsMetGracePeriod(met: readonly Threshold[], firstObservedAt: ReadonlyMap<string, number>, now: number): Threshold[] {
  return met.filter((threshold) => now - (firstObservedAt.get(thresholdKey(threshold)) ?? now) >= threshold.gracePeriodMs);
}

/** Conditions implied by thresholds that are met (before grace periods, as the kubelet). */
export function conditionsFor(met: readonly Threshold[]): Set<PressureCondition> {
  return new Set(met.map((threshold) => signalToCondition[threshold.signal]));
}

/** Refreshes the last time each condition was observed. */
export function conditionsLastObservedAt(
  conditions: ReadonlySet<PressureCondition>,
  last: ReadonlyMap<PressureCondition, number>,
  now: number,
): Map<PressureCondition, number> {
  const result = new Map(last);
  for (const condition of conditions) result.set(condition, now);
  return result;
}

/** Conditions observed within the transition period: the hold that stops oscillation. */
export function conditionsObservedSince(lastObservedAt: ReadonlyMap<PressureCondition, number>, periodMs: number, now: number): Set<PressureCondition> {
  const result = new Set<PressureCondition>();
  for (const [condition, at] of lastObservedAt) if (now - at < periodMs) result.add(condition);
  return result;
}

/** NoSchedule taints for the conditions (node.kubernetes.io/memory-pressure, …). */
export function taintsFor(conditions: ReadonlySet<PressureCondition>, now: number): V1Taint[] {
  const order: PressureCondition[] = ['MemoryPressure', 'DiskPressure', 'PIDPressure'];
  return order.filter((condition) => conditions.has(condition)).map((condition) => ({ key: conditionToTaintKey[condition], effect: 'NoSchedule', timeAdded: new Date(now) }));
}

/** Eviction order of thresholds: memory first (byEvictionPriority), then a fixed signal order. */
export function byEvictionPriority(thresholds: readonly Threshold[]): Threshold[] {
  const rank = (t: Threshold) => [...evictionSignals].indexOf(t.signal) + (t.hard ? 0 : 0.5);
  return [...thresholds].sort((a, b) => rank(a) - rank(b));
}

