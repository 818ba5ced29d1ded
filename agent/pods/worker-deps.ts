/**
 * What a pod worker depends on (PodWorkerDeps, given by the agent) and what its sync steps
 * (pods/sandbox-step.ts, pods/container-start.ts, pods/termination.ts) see of the worker
 * (PodSyncContext): the pod, its waiting reasons, its resync timer and its grace period.
 */
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import type { ContainerRuntime } from '../../cri/runtime.js';
import type { Logger } from '../../lib/log.js';
import type { Backoff } from './backoff.js';
import type { Clock } from '../../lib/clock.js';
import type { EnvContext, EnvObjects } from './env.js';
import type { PodCgroups } from '../cgroups/pod-cgroups.js';
import type { WaitingReason } from '../status/pod-status.js';
import type { RuntimeConfigOptions } from './runtime-config.js';
import type { EventInput } from '../../lib/events.js';
import type { AllocationResult } from './allocation.js';
import type { RuntimePodCache } from './pod-cache.js';

export interface NodeFacts {
  hostIP?: string;
  allocatable?: EnvContext['allocatable'];
  memoryCapacityBytes: number;
}

interface ProbeView {
  ready(uid: string, container: string, containerId: string): boolean | undefined;
  started(uid: string, container: string, containerId: string): boolean | undefined;
}

export interface PodWorkerDeps {
  runtime: ContainerRuntime;
  clock: Clock;
  restartBackoff: Backoff;
  imageBackoff: Backoff;
  runtimeConfig: RuntimeConfigOptions;
  rootDir: string;
  log: Logger;
  objects(pod: V1Pod): Promise<EnvObjects>;
  node(): NodeFacts;
  onStatus(pod: V1Pod, status: V1PodStatus): void;
  /** Called once the pod is fully terminated (removed: it left the desired set). */
  onTerminated(pod: V1Pod, removed: boolean): void;
  probes?: ProbeView;
  /** Periodic resync (syncFrequency). */
  resyncMs: number;
  onPodStarted?(pod: V1Pod, latencyMs: number): void;
  /**
   * False when pods live in another network namespace than the agent (a node inside a test
   * netns): then httpGet hooks are refused instead of sending packets from the wrong namespace.
   */
  podNetworkReachable?: boolean;
  /**
   * Pod-level cgroups (cgroupsPerQOS with the cgroupfs driver): created with the pod's limits
   * before its sandbox, removed with the pod. Absent: the runtime alone makes the cgroup parent.
   */
  podCgroups?: PodCgroups;
  /** Records a kubelet event (the agent's one recorder, lib/events.ts); absent: none recorded. */
  recordEvent?(event: EventInput): void;
  /**
   * Allocated resources and resize admission (pods/allocation.ts AllocationManager): the pod as
   * allocated, and why a resize waits. Absent: containers run with their spec's resources and
   * are never resized in place.
   */
  allocation?: { allocate(pod: V1Pod): AllocationResult; release(uid: string): void };
  /**
   * The runtime pod cache the PLEG keeps (pods/pod-cache.ts): syncs read pods' state from it.
   * Absent: every sync lists and inspects the pod's sandboxes and containers itself.
   */
  podCache?: RuntimePodCache;
}

/** The worker as its sync steps see it. */
export interface PodSyncContext {
  readonly uid: string;
  /** The current spec (it changes with updates), its containers' resources as allocated. */
  readonly pod: V1Pod;
  /** "namespace/name", for logs. */
  readonly name: string;
  readonly deps: PodWorkerDeps;
  /** Records why a container waits (shown in its status). */
  setWaiting(container: string, waiting: WaitingReason): void;
  clearWaiting(container: string): void;
  /** Asks for another sync after `delayMs`. */
  schedule(delayMs: number): void;
  /** The grace period in force (delete's, spec's, or an in-place kill's). */
  graceSeconds(): number;
  /**
   * Records a kubelet event about the pod, or one of its containers when `container` is given
   * (reasons and messages of pkg/kubelet/events/event.go and the places that record them).
   */
  event(type: 'Normal' | 'Warning', reason: string, message: string, container?: string): void;
}
