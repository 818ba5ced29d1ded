/**
 * The probe manager (kubelet pkg/kubelet/prober/prober_manager.go): owns the workers and the
 * result caches, and turns results into what the agent needs. The agent-facing API is
 * documented in probes/index.ts.
 */
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../lib/log.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { ProbeMetrics } from './metrics.js';
import type { Prober } from './prober.js';
import { resolveContainerProbes, ProbeValidationError } from './spec.js';
import { ProbeWorker, type WorkerHost } from './worker.js';
import type { PodStatusProvider, ProbeListener, ProbeResult, ProbeTarget, ProbeType } from './types.js';
import { probeTypes } from './types.js';

export interface ProbeManagerOptions {
  prober: Prober;
  listener: ProbeListener;
  statusProvider: PodStatusProvider;
  /** Metrics go here; the global prom-client registry is never used implicitly. */
  registry: Registry;
  clock?: Clock;
  logger?: Logger;
  /** Source of the first-tick jitter; Math.random by default. */
  random?: () => number;
  /** Observes every scheduled tick (benchmarks measure drift with it). */
  onTick?: (type: ProbeType, scheduledMs: number, actualMs: number) => void;
}

const key = (podUid: string, containerName: string, type: ProbeType): string => `${podUid}\u0000${containerName}\u0000${type}`;

export class ProbeManager {
  private readonly workers = new Map<string, ProbeWorker>();
  private readonly results = new Map<string, ProbeResult>();
  private readonly host: WorkerHost;
  private running = false;
  private stopped = false;

  constructor(private readonly options: ProbeManagerOptions) {
    const clock = options.clock ?? systemClock;
    this.host = {
      clock,
      prober: options.prober,
      listener: options.listener,
      metrics: new ProbeMetrics(options.registry),
      logger: options.logger ?? createLogger('probes'),
      random: options.random ?? Math.random,
      managerStartMs: clock.now(),
      getPodStatus: (podUid) => options.statusProvider.getPodStatus(podUid),
      isPodTerminationRequested: (podUid) => options.statusProvider.isPodTerminationRequested?.(podUid) ?? false,
      isStarted: (podUid, containerName, containerId) => this.isStarted(podUid, containerName, containerId),
      setResult: (target, containerId, type, result) => this.setResult(target, containerId, type, result),
      removeResult: (containerId, type) => this.results.delete(`${containerId}\u0000${type}`),
      workerDone: (worker) => {
        const id = key(worker.target.podUid, worker.target.containerName, worker.type);
        if (this.workers.get(id) === worker) this.workers.delete(id);
      },
      onTick: options.onTick,
    };
  }

  /** Starts the workers added so far and any added later. Idempotent. */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.host.managerStartMs = this.host.clock.now();
    for (const worker of this.workers.values()) worker.start();
  }

  /** Stops every worker; the manager cannot be started again. Idempotent. */
  stop(): void {
    this.stopped = true;
    this.running = false;
    for (const worker of this.workers.values()) worker.stop();
    this.workers.clear();
  }

  /**
   * Adds workers for every probe of every container of the pod (kubelet AddPod). Validates all
   * probes first: an invalid probe throws ProbeValidationError and adds nothing for the pod.
   * Idempotent: existing workers are kept.
   */
  addPod(pod: V1Pod): void {
    if (this.stopped) return;
    const podUid = pod.metadata?.uid;
    if (!podUid) throw new ProbeValidationError(['metadata.uid: Required value']);
    const containers = pod.spec?.containers ?? [];
    const specs = containers.map((container, i) => ({ container, probes: resolveContainerProbes(container, `spec.containers[${i}]`) }));
    for (const { container, probes } of specs) {
      for (const type of probeTypes) {
        const spec = probes[type];
        const id = key(podUid, container.name, type);
        if (!spec || this.workers.has(id)) continue;
        const worker = new ProbeWorker(this.host, pod, container, type, spec);
        this.workers.set(id, worker);
        if (this.running) worker.start();
      }
    }
  }

  /** Stops and forgets the pod's workers (kubelet RemovePod). Idempotent. */
  removePod(podUid: string): void {
    for (const [id, worker] of this.workers) {
      if (worker.target.podUid !== podUid) continue;
      worker.stop();
      this.workers.delete(id);
    }
  }

  /** Stops the workers of every pod not in desired (kubelet CleanupPods). */
  cleanupPods(desiredPodUids: ReadonlySet<string>): void {
    const gone = new Set([...this.workers.values()].map((worker) => worker.target.podUid).filter((uid) => !desiredPodUids.has(uid)));
    for (const uid of gone) this.removePod(uid);
  }

  /** The cached result of a container's probe; undefined when none was set for that container. */
  getResult(containerId: string, type: ProbeType): ProbeResult | undefined {
    return this.results.get(`${containerId}\u0000${type}`);
  }

  hasWorker(podUid: string, containerName: string, type: ProbeType): boolean {
    return this.workers.has(key(podUid, containerName, type));
  }

  get workerCount(): number {
    return this.workers.size;
  }

  /** Started: the startup probe succeeded for this container, or there is no startup probe. */
  isStarted(podUid: string, containerName: string, containerId: string): boolean {
    const result = this.getResult(containerId, 'startup');
    if (result !== undefined) return result === 'success';
    return !this.hasWorker(podUid, containerName, 'startup');
  }

  /**
   * Readiness of a container by name, for a status generator that works by name (the agent's
   * ProbeView): undefined when the container has no readiness probe or no result yet (then the
   * worker is triggered to probe at once, as kubelet UpdatePodStatus does). Pass the container's
   * current ID when known: right after a restart the worker may still hold the old one.
   */
  ready(podUid: string, containerName: string, containerId?: string): boolean | undefined {
    const result = this.currentResult(podUid, containerName, 'readiness', containerId);
    return result === undefined ? undefined : result === 'success';
  }

  /** Startup probe state by name: undefined when there is no startup probe or no result yet. */
  started(podUid: string, containerName: string, containerId?: string): boolean | undefined {
    const result = this.currentResult(podUid, containerName, 'startup', containerId);
    return result === undefined || result === 'unknown' ? undefined : result === 'success';
  }

  private currentResult(podUid: string, containerName: string, type: ProbeType, containerId?: string): ProbeResult | undefined {
    const worker = this.workers.get(key(podUid, containerName, type));
    if (!worker) return undefined;
    const id = containerId || worker.containerId;
    const result = id ? this.getResult(id, type) : undefined;
    if (result === undefined && type === 'readiness') worker.trigger();
    return result;
  }

  /**
   * Fills `started` and `ready` of each container status (kubelet UpdatePodStatus): a
   * container is started when running and its startup probe succeeded (or it has none), ready
   * when started and its readiness probe succeeded, or it has no readiness probe. A readiness
   * worker without a result yet is triggered to probe at once. Returns a new status object.
   */
  updatePodStatus(podUid: string, status: V1PodStatus): V1PodStatus {
    const containerStatuses = (status.containerStatuses ?? []).map((container) => {
      const running = Boolean(container.state?.running);
      const id = container.containerID ?? '';
      const started = running && id !== '' && this.isStarted(podUid, container.name, id);
      let ready = false;
      if (started) {
        const result = this.getResult(id, 'readiness');
        const worker = this.workers.get(key(podUid, container.name, 'readiness'));
        ready = result === 'success' || (result === undefined && worker === undefined);
        if (!ready && result === undefined) worker?.trigger();
      }
      return { ...container, started, ready };
    });
    return { ...status, containerStatuses };
  }

  private setResult(target: ProbeTarget, containerId: string, type: ProbeType, result: ProbeResult): void {
    const id = `${containerId}\u0000${type}`;
    if (this.results.get(id) === result) return;
    this.results.set(id, result);
    try {
      this.options.listener.resultChanged({ ...target, containerId, probeType: type, result });
    } catch (error) {
      this.host.logger.error({ err: error, ...target, probeType: type }, 'probe listener threw');
    }
  }
}
