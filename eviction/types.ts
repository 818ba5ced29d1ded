/**
 * Shared vocabulary of the eviction manager: signals, thresholds, observations, node conditions,
 * and the narrow interfaces the manager needs from the rest of the node (stats, pods, images,
 * containers, the API). Each interface has a fake in test/helpers/eviction-fakes.ts, checked at compile time there.
 *
 * Behaviour matched: https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/
 * and the kubelet's pkg/kubelet/eviction (api/types.go, helpers.go, eviction_manager.go).
 */
import type { V1Pod, V1PodCondition } from '@kubernetes/client-node';
import type { evictionSignals } from '../lib/config/kubelet.js';
import type { ThresholdValue } from '../lib/quantity.js';

export type Signal = (typeof evictionSignals)[number];

/** A configured threshold: `signal < value` (the kubelet only has the LessThan operator). */
export interface Threshold {
  signal: Signal;
  value: ThresholdValue;
  /** 0 for hard thresholds; the evictionSoftGracePeriod for soft ones. */
  gracePeriodMs: number;
  hard: boolean;
  /** evictionMinimumReclaim for the signal, if any. */
  minReclaim?: ThresholdValue;
}

/** What was observed for one signal: available and capacity in bytes / inodes / pids. */
export interface SignalObservation {
  available: number;
  capacity: number;
  /** When the value was sampled (ms since epoch). */
  time: number;
}

export type Observations = Partial<Record<Signal, SignalObservation>>;

export type PressureCondition = 'MemoryPressure' | 'DiskPressure' | 'PIDPressure';

/** The resource a signal starves (kubelet signalToResource); used in messages and ranking. */
export type StarvedResource = 'memory' | 'ephemeral-storage' | 'inodes' | 'pids';

/** Per-container usage, as the kubelet's summary API (stats/v1alpha1 ContainerStats) gives it. */
export interface ContainerUsage {
  name: string;
  memoryWorkingSetBytes?: number;
  rootfsUsedBytes?: number;
  rootfsInodesUsed?: number;
  logsUsedBytes?: number;
  logsInodesUsed?: number;
}

/** Per-pod usage (stats/v1alpha1 PodStats, reduced to what eviction reads). */
export interface PodUsage {
  containers: ContainerUsage[];
  /** Local ephemeral volumes (emptyDir not backed by memory, configMap, …). */
  localVolumesUsedBytes?: number;
  localVolumesInodesUsed?: number;
  processCount?: number;
}

/** Usage by pod UID; a pod without an entry has no stats and ranks as using nothing. */
export type PodUsageMap = ReadonlyMap<string, PodUsage>;

// ---- boundaries (the agent and the runtime provide these) ----

/** Reads node-level observations (memory, nodefs, imagefs, pid). `signals.ts` is the real one. */
export interface ObservationSource {
  observe(): Promise<Observations>;
  /** True when the image filesystem is a different filesystem from nodefs (kubelet withImageFs). */
  hasDedicatedImageFs(): Promise<boolean>;
}

/** Per-pod usage for ranking (the agent builds it from CRI ContainerStats and volume stats). */
export interface PodStatsSource {
  podUsage(pods: readonly V1Pod[]): Promise<PodUsageMap>;
}

/** The pods the node runs now and that could be evicted (the kubelet's active pods). */
export interface ActivePodsSource {
  activePods(): Promise<V1Pod[]>;
}

/** What the agent applies to the evicted pod's status (phase Failed, reason Evicted). */
export interface EvictedPodStatus {
  phase: 'Failed';
  reason: 'Evicted';
  message: string;
  /** DisruptionTarget, reason TerminationByKubelet (kubelet eviction_manager.go). */
  conditions: V1PodCondition[];
}

export interface EvictionEvent {
  type: 'Warning';
  reason: 'Evicted';
  message: string;
  /** offending_containers, offending_containers_usage, starved_resource. */
  annotations: Record<string, string>;
}

/** Kills a pod with a grace period and records its Failed/Evicted status and the event. */
export interface PodKiller {
  evictPod(pod: V1Pod, gracePeriodSeconds: number, status: EvictedPodStatus, event: EvictionEvent): Promise<void>;
}

/** Receives the node's pressure conditions after each sync (the agent's node status setter). */
export interface NodeConditionSink {
  setPressureConditions(conditions: ReadonlySet<PressureCondition>, at: number): void;
}

/** Node-level reclaim of images: delete every unused image old enough (kubelet DeleteUnusedImages). */
export interface ImageReclaimer {
  deleteUnusedImages(): Promise<number>;
}

/** Node-level reclaim of dead containers (kubelet ContainerGC.DeleteAllUnusedContainers). */
export interface ContainerReclaimer {
  deleteAllUnusedContainers(): Promise<void>;
}

