/**
 * The narrow interfaces of probes/ (their fakes: test/helpers/probe-fakes.ts, checked at compile
 * time there). The agent implements PodStatusProvider and ProbeListener; the runtime implements
 * ContainerExecutor (cri's ExecSync has this shape).
 */
import type { V1PodStatus } from '@kubernetes/client-node';

export type ProbeType = 'liveness' | 'readiness' | 'startup';
export const probeTypes: readonly ProbeType[] = ['liveness', 'readiness', 'startup'];

/** Capitalised the way the kubelet prints probe types in events and metric labels. */
export function probeTypeLabel(type: ProbeType): 'Liveness' | 'Readiness' | 'Startup' {
  return type === 'liveness' ? 'Liveness' : type === 'readiness' ? 'Readiness' : 'Startup';
}

/** The cached, threshold-filtered result of a probe (kubelet pkg/kubelet/prober/results). */
export type ProbeResult = 'unknown' | 'success' | 'failure';

/** What one probe attempt returned (kubelet pkg/probe: Success, Warning, Failure, Unknown). */
export type ProbeOutcomeResult = 'success' | 'warning' | 'failure' | 'unknown';

export interface ProbeOutcome {
  result: ProbeOutcomeResult;
  /** Output for the event: command output, HTTP body, or the reason of a failure. */
  output: string;
}

/** Runs a command in a running container and waits for it, at most timeoutMs (CRI ExecSync). */
export interface ContainerExecutor {
  execSync(containerId: string, cmd: string[], timeoutMs: number): Promise<ExecResult>;
}

export interface ExecResult {
  exitCode: number;
  stdout: Buffer | string;
  stderr: Buffer | string;
}

/** A runtime whose ExecSync takes its timeout in seconds, like the CRI (ExecSyncRequest.timeout). */
export interface SecondsExecRuntime {
  execSync(containerId: string, cmd: string[], timeoutSeconds: number): Promise<ExecResult>;
}

/**
 * Adapts a CRI-shaped runtime (timeout in whole seconds; a timeout rejects with code
 * "DeadlineExceeded", which the exec prober reads as a probe timeout) to ContainerExecutor.
 */
export function executorFromRuntime(runtime: SecondsExecRuntime): ContainerExecutor {
  return { execSync: (containerId, cmd, timeoutMs) => runtime.execSync(containerId, cmd, Math.max(1, Math.ceil(timeoutMs / 1000))) };
}

/** Thrown (or matched by code/name) by an executor when the command outlived its timeout. */
export class ExecTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ExecTimeoutError';
  }
}

/**
 * Where workers read the pod's current status (kubelet: statusManager.GetPodStatus): phase,
 * podIP and each container's containerID and state (running.startedAt, terminated).
 */
export interface PodStatusProvider {
  getPodStatus(podUid: string): V1PodStatus | undefined;
  /** True once the pod's deletion was requested (kubelet: DeletionTimestamp != nil). */
  isPodTerminationRequested?(podUid: string): boolean;
}

export interface ProbeTarget {
  podUid: string;
  namespace: string;
  podName: string;
  containerName: string;
}

/** A cached result changed (kubelet results.Manager updates channel). */
export interface ProbeResultUpdate extends ProbeTarget {
  containerId: string;
  probeType: ProbeType;
  result: ProbeResult;
}

/**
 * A liveness or startup probe crossed its failure threshold: the agent kills the container with
 * this grace period and restarts it per restartPolicy (kuberuntime_manager computePodActions).
 */
export interface ContainerKillRequest extends ProbeTarget {
  containerId: string;
  probeType: 'liveness' | 'startup';
  /** "LivenessProbe" or "StartupProbe", the kubelet's kill reasons. */
  reason: 'LivenessProbe' | 'StartupProbe';
  /** "Container app failed liveness probe, will be restarted". */
  message: string;
  /** Probe-level terminationGracePeriodSeconds, else the pod's (default 30), at least 2. */
  gracePeriodSeconds: number;
  /** Output of the last failed probe (for lastState.terminated.message). */
  probeOutput: string;
}

/** A Kubernetes event about a container (reason Unhealthy or ProbeWarning, type Warning). */
export interface ProbeEvent extends ProbeTarget {
  containerId: string;
  type: 'Warning';
  reason: 'Unhealthy' | 'ProbeWarning';
  message: string;
}

/** What the probe manager tells the agent. Calls are synchronous and must not throw. */
export interface ProbeListener {
  resultChanged(update: ProbeResultUpdate): void;
  killContainer(request: ContainerKillRequest): void;
  event(event: ProbeEvent): void;
}
