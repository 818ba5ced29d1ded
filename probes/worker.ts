/**
 * One probe worker per (pod UID, container, probe type), the mechanism around the pure
 * decisions in state.ts (kubelet pkg/kubelet/prober/worker.go):
 * - ticks every periodSeconds on a fixed schedule (a Go ticker: a probe that overruns skips
 *   the ticks it missed, it never queues them); the first tick waits a random part of the
 *   period when the manager started less than a period ago, so a restarted agent does not
 *   probe every container at once;
 * - never runs two probes of itself at once; each probe ends within its own timeout, so a
 *   target that hangs only delays its own worker;
 * - stop() is idempotent; a probe in flight when it stops is discarded.
 */
import type { V1Container, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import type { Logger } from '../lib/log.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import type { ProbeMetrics } from './metrics.js';
import { ProbeError, type Prober } from './prober.js';
import type { ProbeSpec } from './spec.js';
import { afterProbe, beforeProbe, initialWorkerState, type ContainerObservation, type WorkerState } from './state.js';
import type { ProbeListener, ProbeOutcome, ProbeResult, ProbeTarget, ProbeType } from './types.js';
import { probeTypeLabel } from './types.js';

/** What a worker needs from its manager. */
export interface WorkerHost {
  clock: Clock;
  prober: Prober;
  listener: ProbeListener;
  metrics: ProbeMetrics;
  logger: Logger;
  random: () => number;
  managerStartMs: number;
  getPodStatus(podUid: string): V1PodStatus | undefined;
  isPodTerminationRequested(podUid: string): boolean;
  isStarted(podUid: string, containerName: string, containerId: string): boolean;
  setResult(target: ProbeTarget, containerId: string, type: ProbeType, result: ProbeResult): void;
  removeResult(containerId: string, type: ProbeType): void;
  /** The worker ended on its own; the manager drops it. */
  workerDone(worker: ProbeWorker): void;
  /** Called at the start of every scheduled probe tick (for drift measurements). */
  onTick?: (type: ProbeType, scheduledMs: number, actualMs: number) => void;
}

/** Kubelet minimumGracePeriodInSeconds; the pod default is 30 s. */
const minimumGracePeriodSeconds = 2;

export class ProbeWorker {
  private state: WorkerState = initialWorkerState;
  private timer: TimerHandle | undefined;
  private nextDue = 0;
  private running = false;
  private stopped = false;
  private started = false;
  private runningSeen = new Map<string, number>();
  readonly target: ProbeTarget;

  constructor(
    private readonly host: WorkerHost,
    private readonly pod: V1Pod,
    private readonly container: V1Container,
    readonly type: ProbeType,
    readonly spec: ProbeSpec,
  ) {
    this.target = {
      podUid: pod.metadata?.uid ?? '',
      namespace: pod.metadata?.namespace ?? 'default',
      podName: pod.metadata?.name ?? '',
      containerName: container.name,
    };
  }

  get containerId(): string {
    return this.state.containerId;
  }

  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    const { clock, managerStartMs, random } = this.host;
    const period = this.spec.periodSeconds * 1000;
    const now = clock.now();
    const delay = now - managerStartMs < period ? Math.floor(random() * period) : 0;
    this.nextDue = now + delay;
    this.timer = clock.setTimer(() => this.tick(), delay);
  }

  /** Ends the worker; its cached result and metric series are dropped. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) this.host.clock.clearTimer(this.timer);
    this.timer = undefined;
    if (this.state.containerId) this.host.removeResult(this.state.containerId, this.type);
    this.host.metrics.forget(this.target, this.type);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Probes now, outside the schedule, unless a probe is running (kubelet manualTriggerCh). */
  trigger(): void {
    if (!this.started || this.stopped || this.running) return;
    void this.runOnce();
  }

  private tick(): void {
    if (this.stopped) return;
    const { clock } = this.host;
    const due = this.nextDue;
    this.host.onTick?.(this.type, due, clock.now());
    const period = this.spec.periodSeconds * 1000;
    const after = (): void => {
      if (this.stopped) return;
      this.nextDue = due + period;
      const now = clock.now();
      while (this.nextDue <= now) this.nextDue += period;
      this.timer = clock.setTimer(() => this.tick(), this.nextDue - now);
    };
    if (this.running) {
      after();
      return;
    }
    this.runOnce().then(after, after);
  }

  private async runOnce(): Promise<void> {
    this.running = true;
    try {
      const keepGoing = await this.doProbe();
      if (!keepGoing) this.finish();
    } catch (error) {
      this.host.logger.error({ err: error, ...this.target, probeType: this.type }, 'probe worker failed');
    } finally {
      this.running = false;
    }
  }

  /**
   * The worker ends on its own (pod done, container terminated for good, deletion requested):
   * like the kubelet's deferred cleanup in worker.run, its result and metric series go and the
   * manager forgets it.
   */
  private finish(): void {
    this.stop();
    this.host.workerDone(this);
  }

  private observe(): ContainerObservation | undefined {
    const status = this.host.getPodStatus(this.target.podUid);
    if (!status) return undefined;
    const now = this.host.clock.now();
    const container = (status.containerStatuses ?? []).find((candidate) => candidate.name === this.container.name);
    const containerId = container?.containerID ?? '';
    const runningState = container?.state?.running;
    let running: ContainerObservation['running'];
    if (runningState && containerId) {
      const parsed = runningState.startedAt === undefined ? Number.NaN : new Date(runningState.startedAt).getTime();
      if (!this.runningSeen.has(containerId)) this.runningSeen = new Map([[containerId, now]]);
      running = { startedAtMs: Number.isFinite(parsed) ? parsed : this.runningSeen.get(containerId)! };
    }
    return {
      phase: status.phase,
      containerId,
      running,
      terminated: container?.state?.terminated !== undefined && container.state.terminated !== null,
      restartPolicy: this.pod.spec?.restartPolicy ?? 'Always',
      terminationRequested: this.host.isPodTerminationRequested(this.target.podUid) || Boolean(this.pod.metadata?.deletionTimestamp),
      started: containerId ? this.host.isStarted(this.target.podUid, this.container.name, containerId) : false,
      nowMs: now,
    };
  }

  /** One pass of kubelet doProbe; false ends the worker. */
  private async doProbe(): Promise<boolean> {
    const before = beforeProbe(this.state, this.type, this.spec, this.observe());
    this.state = before.state;
    if (before.remove) this.host.removeResult(before.remove, this.type);
    if (before.set) this.host.setResult(this.target, this.state.containerId, this.type, before.set);
    if (before.action !== 'probe') return before.action === 'wait';

    const containerId = this.state.containerId;
    const startedAt = performance.now();
    let outcome: ProbeOutcome;
    try {
      outcome = await this.host.prober.probe(this.spec, { podIP: this.host.getPodStatus(this.target.podUid)?.podIP, container: this.container, containerId });
    } catch (error) {
      if (this.stopped) return false;
      // Probe errors are reported and thrown away, not counted (worker.go: "if err != nil").
      const message = error instanceof ProbeError ? error.message : error instanceof Error ? error.message : String(error);
      this.host.metrics.observe(this.target, this.type, 'unknown', (performance.now() - startedAt) / 1000);
      this.emit(containerId, 'Unhealthy', `${probeTypeLabel(this.type)} probe errored: ${message}`);
      return true;
    }
    if (this.stopped || containerId !== this.state.containerId) return !this.stopped;
    const result = outcome.result === 'success' || outcome.result === 'warning' ? 'success' : 'failure';
    this.host.metrics.observe(this.target, this.type, result === 'success' ? 'successful' : 'failed', (performance.now() - startedAt) / 1000);
    if (result === 'failure') this.emit(containerId, 'Unhealthy', `${probeTypeLabel(this.type)} probe failed: ${outcome.output}`);
    else if (outcome.result === 'warning') this.emit(containerId, 'ProbeWarning', `${probeTypeLabel(this.type)} probe warning: ${outcome.output}`);

    const after = afterProbe(this.state, this.type, this.spec, result);
    this.state = after.state;
    if (after.set) this.host.setResult(this.target, containerId, this.type, after.set);
    if (after.kill && this.type !== 'readiness') this.requestKill(containerId, this.type, outcome.output);
    return true;
  }

  private emit(containerId: string, reason: 'Unhealthy' | 'ProbeWarning', message: string): void {
    this.host.listener.event({ ...this.target, containerId, type: 'Warning', reason, message });
  }

  private requestKill(containerId: string, type: 'liveness' | 'startup', probeOutput: string): void {
    const podGrace = this.pod.spec?.terminationGracePeriodSeconds ?? 30;
    const grace = Math.max(minimumGracePeriodSeconds, this.spec.terminationGracePeriodSeconds ?? podGrace);
    this.host.listener.killContainer({
      ...this.target,
      containerId,
      probeType: type,
      reason: type === 'liveness' ? 'LivenessProbe' : 'StartupProbe',
      message: `Container ${this.container.name} failed ${type} probe, will be restarted`,
      gracePeriodSeconds: grace,
      probeOutput,
    });
  }
}
