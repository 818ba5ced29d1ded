/**
 * The eviction manager: the kubelet's pkg/kubelet/eviction/eviction_manager.go, thin mechanism
 * around the pure policy in thresholds.ts / ranking.ts / policy.ts.
 * Docs: https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/
 *
 * HOW THE AGENT WIRES IT IN
 *   const manager = new EvictionManager(evictionConfigFromKubelet(kubeletConfig), {
 *     observations: new NodeSignals({ rootDir, imageFsPath: dockerRootDir }),   // signals.ts (real)
 *     podStats,      // PodStatsSource: per-pod working set / rootfs / logs / emptyDir / process count
 *                    //   (from CRI containerStats + volume stats; cgroup-memory.ts reads working sets)
 *     activePods,    // ActivePodsSource: pods admitted and not yet terminated on this node
 *     killer,        // PodKiller: kill with the given grace period, then set status
 *                    //   {phase Failed, reason Evicted, message, DisruptionTarget condition}
 *                    //   and record the Warning event "Evicted" with its annotations; resolve
 *                    //   once the pod's containers are stopped (the kubelet waits for cleanup
 *                    //   before the next eviction)
 *     conditions,    // NodeConditionSink: MemoryPressure/DiskPressure/PIDPressure for node status;
 *                    //   taintsFor() in thresholds.ts gives the matching NoSchedule taints
 *     imageReclaimer: imageGC,              // image-gc.ts ImageGCManager over the CRI ImageService
 *     containerReclaimer,                   // removes dead containers (ContainerGC)
 *   });
 *   manager.start();        // sync every housekeeping interval (10 s) + fast memory poll
 *   manager.admit(pod)      // in pod admission: { admit:false, reason:'Evicted', message } rejects
 *   await manager.stop();
 *
 * Memory threshold notification: the kubelet arms a cgroup v1 memory.usage_in_bytes eventfd
 * (cgroup.event_control) to sync as soon as memory crosses a threshold. An eventfd needs native
 * code in Node, so instead the manager polls memory.available alone (root memory.usage_in_bytes +
 * memory.stat + /proc/meminfo: 0.5–1.5 ms measured on the build machine, bench/eviction-signals.ts,
 * i.e. ~0.1% of a core at 1 s) every `memoryPollIntervalMs` (1 s default) and runs a full sync at
 * once when a memory threshold becomes met. Timers, not cron: the periods are seconds and relative.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { createLogger, type Logger } from '../lib/log.js';
import type { KubeletConfiguration } from '../lib/config/kubelet.js';
import { admitPod, chooseEviction, evaluate, initialEvictionState, type AdmitResult, type EvictionDecision, type EvictionState } from './policy.js';
import { parseThresholds, thresholdsMet } from './thresholds.js';
import type {
  ActivePodsSource,
  ContainerReclaimer,
  ImageReclaimer,
  NodeConditionSink,
  ObservationSource,
  Observations,
  PodKiller,
  PodStatsSource,
  PressureCondition,
  Signal,
  SignalObservation,
  Threshold,
} from './types.js';
import { systemClock, type Clock } from '../lib/clock.js';

export interface EvictionManagerConfig {
  thresholds: Threshold[];
  pressureTransitionPeriodMs: number;
  maxPodGracePeriodSeconds: number;
  housekeepingIntervalMs: number;
  /** 0 disables the fast memory poll. */
  memoryPollIntervalMs: number;
}

/** Builds the manager config from a loaded KubeletConfiguration (throws ConfigError on bad thresholds). */
export function evictionConfigFromKubelet(config: KubeletConfiguration, housekeepingIntervalMs = 10_000, memoryPollIntervalMs = 1_000): EvictionManagerConfig {
  return {
    thresholds: parseThresholds(config),
    pressureTransitionPeriodMs: config.evictionPressureTransitionPeriod,
    maxPodGracePeriodSeconds: config.evictionMaxPodGracePeriod,
    housekeepingIntervalMs,
    memoryPollIntervalMs,
  };
}

interface EvictionManagerDeps {
  observations: ObservationSource & { observeMemory?(): Promise<SignalObservation> };
  podStats: PodStatsSource;
  activePods: ActivePodsSource;
  killer: PodKiller;
  conditions: NodeConditionSink;
  imageReclaimer?: ImageReclaimer;
  containerReclaimer?: ContainerReclaimer;
  clock?: Clock;
  logger?: Logger;
}

interface SyncResult {
  conditions: Set<PressureCondition>;
  actionable: Threshold[];
  observations: Observations;
  reclaimed: boolean;
  evicted?: EvictionDecision;
}

export class EvictionManager {
  private state: EvictionState = initialEvictionState();
  private current = new Set<PressureCondition>();
  private dedicatedImageFs: boolean | undefined;
  private timers: NodeJS.Timeout[] = [];
  private syncing: Promise<SyncResult | undefined> | undefined;
  private stopped = true;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(
    private readonly config: EvictionManagerConfig,
    private readonly deps: EvictionManagerDeps,
  ) {
    this.clock = deps.clock ?? systemClock;
    this.log = deps.logger ?? createLogger('eviction');
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.trigger();
    this.timers.push(setInterval(() => void this.trigger(), this.config.housekeepingIntervalMs));
    const hasMemoryThreshold = this.config.thresholds.some((t) => t.signal === 'memory.available');
    if (this.config.memoryPollIntervalMs > 0 && hasMemoryThreshold && this.deps.observations.observeMemory) {
      this.timers.push(setInterval(() => void this.pollMemory(), this.config.memoryPollIntervalMs));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    await this.syncing;
  }

  /** Current node pressure conditions (held for the transition period). */
  conditions(): ReadonlySet<PressureCondition> {
    return this.current;
  }

  isUnderMemoryPressure(): boolean {
    return this.current.has('MemoryPressure');
  }

  /** Pod admission (kubelet eviction manager Admit). */
  admit(pod: V1Pod): AdmitResult {
    return admitPod(pod, this.current);
  }

  /** Runs a sync unless one is running (then waits for that one). Errors are logged here. */
  trigger(): Promise<SyncResult | undefined> {
    if (this.syncing) return this.syncing;
    this.syncing = this.synchronize()
      .catch((error: unknown) => {
        this.log.error({ err: error }, 'eviction manager: sync failed');
        return undefined;
      })
      .finally(() => {
        this.syncing = undefined;
      });
    return this.syncing;
  }

  private async pollMemory(): Promise<void> {
    if (this.syncing || !this.deps.observations.observeMemory) return;
    try {
      const memory = await this.deps.observations.observeMemory();
      const met = thresholdsMet(this.config.thresholds, { 'memory.available': memory }, false);
      // Already under memory pressure: the housekeeping syncs carry on from here.
      if (met.length > 0 && !this.current.has('MemoryPressure')) await this.trigger();
    } catch (error) {
      this.log.warn({ err: error }, 'eviction manager: memory poll failed');
    }
  }

  /** One sync (eviction_manager.go synchronize). Throws on observation errors. */
  async synchronize(): Promise<SyncResult> {
    const observations = await this.deps.observations.observe();
    this.dedicatedImageFs ??= await this.deps.observations.hasDedicatedImageFs();
    const now = this.clock.now();
    const evaluation = evaluate(this.config.thresholds, observations, this.state, this.config.pressureTransitionPeriodMs, now);
    this.state = evaluation.state;
    this.setConditions(evaluation.conditions, now);
    const result: SyncResult = { conditions: evaluation.conditions, actionable: evaluation.actionable, observations, reclaimed: false };
    const threshold = evaluation.actionable[0];
    if (!threshold) return result;
    this.log.warn({ signal: threshold.signal, hard: threshold.hard, available: observations[threshold.signal]?.available }, 'eviction manager: threshold met, attempting to reclaim');
    if (await this.reclaimNodeLevel(threshold.signal)) {
      const after = await this.deps.observations.observe();
      if (thresholdsMet(evaluation.actionable, after, true).length === 0) {
        this.log.info({ signal: threshold.signal }, 'eviction manager: node-level reclaim relieved pressure, no pod evicted');
        return { ...result, observations: after, reclaimed: true };
      }
    }
    const pods = await this.deps.activePods.activePods();
    const usage = await this.deps.podStats.podUsage(pods);
    const decision = chooseEviction({
      pods,
      usage,
      threshold,
      observations,
      maxPodGracePeriodSeconds: this.config.maxPodGracePeriodSeconds,
      dedicatedImageFs: this.dedicatedImageFs,
      now,
    });
    if (!decision) {
      this.log.error({ signal: threshold.signal }, 'eviction manager: unable to evict any pod from the node (only critical pods left)');
      return result;
    }
    const pod = `${decision.pod.metadata?.namespace ?? ''}/${decision.pod.metadata?.name ?? ''}`;
    this.log.warn({ pod, gracePeriodSeconds: decision.gracePeriodSeconds, message: decision.status.message }, 'eviction manager: evicting pod');
    await this.deps.killer.evictPod(decision.pod, decision.gracePeriodSeconds, decision.status, decision.event);
    return { ...result, evicted: decision };
  }

  private setConditions(conditions: Set<PressureCondition>, now: number): void {
    const changed = conditions.size !== this.current.size || [...conditions].some((c) => !this.current.has(c));
    this.current = conditions;
    if (changed) this.log.info({ conditions: [...conditions] }, 'eviction manager: node pressure conditions changed');
    this.deps.conditions.setPressureConditions(conditions, now);
  }

  /**
   * Node-level reclaim before evicting (buildSignalToNodeReclaimFuncs): dead containers then
   * unused images for imagefs signals, and for nodefs signals when images share nodefs.
   */
  private async reclaimNodeLevel(signal: Signal): Promise<boolean> {
    const disk = signal.startsWith('nodefs.') || signal.startsWith('imagefs.') || signal.startsWith('containerfs.');
    if (!disk) return false;
    if (signal.startsWith('nodefs.') && this.dedicatedImageFs) return false;
    const { containerReclaimer, imageReclaimer } = this.deps;
    if (!containerReclaimer && !imageReclaimer) return false;
    try {
      await containerReclaimer?.deleteAllUnusedContainers();
      await imageReclaimer?.deleteUnusedImages();
    } catch (error) {
      this.log.warn({ err: error, signal }, 'eviction manager: node-level reclaim failed');
    }
    return true;
  }
}
