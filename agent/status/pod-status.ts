/**
 * The API status of a pod from what the runtime reports, as the kubelet's generateAPIPodStatus /
 * getPhase / convertToAPIContainerStatuses (pkg/kubelet/kubelet_pods.go) and the condition
 * generators of pkg/kubelet/status/generate.go:
 * - phase: Pending while initialising or a container waits; Running when something runs (or
 *   will be restarted); Succeeded when all exited 0 and none restarts; Failed when one failed
 *   and none restarts, or a regular init container failed under restartPolicy Never;
 * - conditions PodReadyToStartContainers, Initialized, ContainersReady, Ready, PodScheduled with
 *   the kubelet's reasons and "containers with ... status: [a b]" messages; a condition keeps its
 *   lastTransitionTime while its status does not change;
 * - container statuses with state/lastState/restartCount and the reasons CrashLoopBackOff,
 *   ErrImagePull, ImagePullBackOff, CreateContainerConfigError (from the last sync), Completed,
 *   Error, OOMKilled (from the runtime), ContainerCreating and PodInitializing.
 * Pure: every input, including `now`, is a parameter.
 */
import type { V1Container, V1ContainerState, V1ContainerStatus, V1Pod, V1PodCondition, V1PodStatus } from '@kubernetes/client-node';
import type { ContainerStatus, PodSandboxStatus } from '../../cri/runtime.js';
import { podQosClass } from '../../lib/k8s/qos.js';
import { isSidecar, latestByName, podRestartPolicy, previousByName, shouldStartContainer } from '../pods/restart.js';

export interface WaitingReason {
  reason: string;
  message: string;
}

export interface PodStatusInput {
  pod: V1Pod;
  /** The pod's newest sandbox, if any. */
  sandbox?: PodSandboxStatus;
  /** Every runtime container of the pod (all attempts). */
  containers: readonly ContainerStatus[];
  /** Waiting reasons recorded by the last sync, by container name. */
  waiting?: ReadonlyMap<string, WaitingReason>;
  /** Readiness probe results by container name and current container ID (undefined: no result yet). */
  probeReady?: (name: string, containerId: string) => boolean | undefined;
  /** Startup probe results by container name and current container ID (undefined: no result yet). */
  probeStarted?: (name: string, containerId: string) => boolean | undefined;
  previous?: V1PodStatus;
  hostIP?: string;
  /** True once the pod is being terminated and everything stopped (podIsTerminal). */
  terminal?: boolean;
  now: number;
}

const ms = (ns: number) => new Date(Math.floor(ns / 1e6));

function containerId(status: ContainerStatus): string {
  return `docker://${status.id}`;
}

function terminatedReason(status: ContainerStatus): string {
  if (status.reason) return status.reason;
  return status.exitCode === 0 ? 'Completed' : 'Error';
}

function stateOf(status: ContainerStatus): V1ContainerState {
  switch (status.state) {
    case 'CONTAINER_RUNNING':
      return { running: { startedAt: ms(status.startedAt) } };
    case 'CONTAINER_EXITED':
      return {
        terminated: {
          exitCode: status.exitCode,
          reason: terminatedReason(status),
          ...(status.message ? { message: status.message } : {}),
          ...(status.startedAt ? { startedAt: ms(status.startedAt) } : {}),
          finishedAt: ms(status.finishedAt),
          containerID: containerId(status),
        },
      };
    case 'CONTAINER_CREATED':
      return { waiting: { reason: 'ContainerCreating' } };
    default:
      // kubelet: an unknown state is reported as terminated with exit code 137 and reason "ContainerStatusUnknown".
      return { terminated: { exitCode: 137, reason: 'ContainerStatusUnknown', message: 'The container could not be located when the pod was terminated', containerID: containerId(status) } };
  }
}

function containerReady(container: V1Container, status: ContainerStatus | undefined, input: PodStatusInput): boolean {
  // Ready needs started: a container behind a startup probe is not ready before it passes.
  if (status?.state !== 'CONTAINER_RUNNING' || !containerStarted(container, status, input)) return false;
  if (!container.readinessProbe) return true;
  return input.probeReady?.(container.name, containerId(status)) === true;
}

function containerStarted(container: V1Container, status: ContainerStatus | undefined, input: PodStatusInput): boolean {
  if (status?.state !== 'CONTAINER_RUNNING') return false;
  if (!container.startupProbe) return true;
  return input.probeStarted?.(container.name, containerId(status)) === true;
}

function buildContainerStatus(container: V1Container, input: PodStatusInput, defaultWaiting: string, isInit: boolean): V1ContainerStatus {
  const latest = latestByName(input.containers).get(container.name);
  const previous = previousByName(input.containers).get(container.name);
  const waiting = input.waiting?.get(container.name);
  let state: V1ContainerState;
  let lastState: V1ContainerState = previous ? stateOf(previous) : {};
  if (!latest) {
    state = { waiting: { reason: waiting?.reason ?? defaultWaiting, ...(waiting?.message ? { message: waiting.message } : {}) } };
  } else if (latest.state === 'CONTAINER_EXITED' && (waiting || (!input.terminal && shouldStartContainer(input.pod, container, latest, isInit)))) {
    // An exited container that will run again is waiting (CrashLoopBackOff etc.), its exit is lastState.
    state = { waiting: { reason: waiting?.reason ?? defaultWaiting, ...(waiting?.message ? { message: waiting.message } : {}) } };
    lastState = stateOf(latest);
  } else {
    state = stateOf(latest);
  }
  const started = containerStarted(container, latest, input);
  return {
    name: container.name,
    image: container.image ?? '',
    imageID: latest?.imageRef ?? '',
    ...(latest ? { containerID: containerId(latest) } : {}),
    ready: containerReady(container, latest, input),
    restartCount: latest ? latest.metadata.attempt : 0,
    started,
    state,
    lastState,
  };
}

interface PhaseCounts {
  pendingInit: number;
  failedInit: number;
  running: number;
  waiting: number;
  stopped: number;
  succeeded: number;
  unknown: number;
}

function countInit(pod: V1Pod, statuses: V1ContainerStatus[]): Pick<PhaseCounts, 'pendingInit' | 'failedInit'> {
  let pendingInit = 0;
  let failedInit = 0;
  (pod.spec?.initContainers ?? []).forEach((container, index) => {
    const status = statuses[index];
    if (isSidecar(container)) {
      if (!status?.started) pendingInit++;
      return;
    }
    const terminated = status?.state?.terminated;
    if (terminated && terminated.exitCode === 0) return;
    if (terminated) failedInit++;
    else if (status?.state?.waiting && (status.lastState?.terminated?.exitCode ?? 0) !== 0) failedInit++;
    else pendingInit++;
  });
  return { pendingInit, failedInit };
}

/** getPhase (pkg/kubelet/kubelet_pods.go). */
function computePhase(pod: V1Pod, initStatuses: V1ContainerStatus[], statuses: V1ContainerStatus[], terminal: boolean): string {
  const { pendingInit, failedInit } = countInit(pod, initStatuses);
  const counts = { running: 0, waiting: 0, stopped: 0, succeeded: 0, unknown: 0 };
  for (const status of statuses) {
    if (status.state?.running) counts.running++;
    else if (status.state?.terminated) {
      counts.stopped++;
      if (status.state.terminated.exitCode === 0) counts.succeeded++;
    } else if (status.state?.waiting) {
      if (status.lastState?.terminated) counts.stopped++;
      else counts.waiting++;
    } else counts.unknown++;
  }
  const policy = podRestartPolicy(pod);
  if (failedInit > 0 && policy === 'Never') return 'Failed';
  if (pendingInit > 0 || failedInit > 0) return 'Pending';
  if (counts.waiting > 0) return 'Pending';
  if (counts.running > 0 && counts.unknown === 0) return 'Running';
  if (counts.running === 0 && counts.stopped > 0 && counts.unknown === 0) {
    if (policy === 'Always' && !terminal) return 'Running';
    if (counts.stopped === counts.succeeded) return 'Succeeded';
    if (policy === 'Never' || terminal) return 'Failed';
    return 'Running';
  }
  return 'Pending';
}

function condition(type: string, ok: boolean, reason: string | undefined, message: string | undefined, input: PodStatusInput): V1PodCondition {
  const status = ok ? 'True' : 'False';
  const before = input.previous?.conditions?.find((c) => c.type === type);
  const lastTransitionTime = before && before.status === status && before.lastTransitionTime ? before.lastTransitionTime : new Date(input.now);
  return { type, status, lastTransitionTime, ...(!ok && reason ? { reason } : {}), ...(!ok && message ? { message } : {}) };
}

function names(list: string[]): string {
  return `[${list.join(' ')}]`;
}

function buildConditions(pod: V1Pod, phase: string, initStatuses: V1ContainerStatus[], statuses: V1ContainerStatus[], input: PodStatusInput): V1PodCondition[] {
  const sandboxReady = input.sandbox?.state === 'SANDBOX_READY';
  const incompleteInit = (pod.spec?.initContainers ?? [])
    .filter((container, index) => {
      const status = initStatuses[index];
      return isSidecar(container) ? !status?.started : status?.state?.terminated?.exitCode !== 0;
    })
    .map((c) => c.name);
  const initialized = incompleteInit.length === 0 || phase === 'Succeeded';
  const unready = [...initStatuses.filter((s, i) => isSidecar(pod.spec!.initContainers![i]!) && !s.ready), ...statuses.filter((s) => !s.ready)].map((s) => s.name);
  const completed = phase === 'Succeeded';
  const containersReady = unready.length === 0 && !completed;
  const notReadyReason = completed ? 'PodCompleted' : 'ContainersNotReady';
  const notReadyMessage = completed ? undefined : `containers with unready status: ${names(unready)}`;
  const gates = (pod.spec?.readinessGates ?? []).filter((gate) => input.previous?.conditions?.find((c) => c.type === gate.conditionType)?.status !== 'True');
  const ready = containersReady && gates.length === 0;
  const readyMessage = containersReady && gates.length > 0 ? `corresponding condition of pod readiness gate "${gates[0]!.conditionType}" does not exist.` : notReadyMessage;
  return [
    condition('PodReadyToStartContainers', sandboxReady, undefined, undefined, input),
    condition('Initialized', initialized, completed ? 'PodCompleted' : 'ContainersNotInitialized', completed ? undefined : `containers with incomplete status: ${names(incompleteInit)}`, input),
    condition('Ready', ready, containersReady ? 'ReadinessGatesNotReady' : notReadyReason, readyMessage, input),
    condition('ContainersReady', containersReady, notReadyReason, notReadyMessage, input),
    condition('PodScheduled', true, undefined, undefined, input),
  ];
}

/** The full API status of the pod. */
export function generatePodStatus(input: PodStatusInput): V1PodStatus {
  const pod = input.pod;
  const initContainers = pod.spec?.initContainers ?? [];
  const initDone = initContainers.every((c) => {
    const latest = latestByName(input.containers).get(c.name);
    return isSidecar(c) ? latest?.state === 'CONTAINER_RUNNING' : latest?.state === 'CONTAINER_EXITED' && latest.exitCode === 0;
  });
  const initStatuses = initContainers.map((c) => buildContainerStatus(c, input, 'PodInitializing', true));
  const statuses = (pod.spec?.containers ?? []).map((c) => buildContainerStatus(c, input, initDone ? 'ContainerCreating' : 'PodInitializing', false));
  const phase = computePhase(pod, initStatuses, statuses, input.terminal === true);
  const ips = input.sandbox && input.sandbox.network.ip ? [input.sandbox.network.ip, ...input.sandbox.network.additionalIps.map((a) => a.ip)] : [];
  const hostNetwork = pod.spec?.hostNetwork === true;
  const podIPs = hostNetwork && input.hostIP ? [input.hostIP] : ips;
  const status: V1PodStatus = {
    phase,
    conditions: buildConditions(pod, phase, initStatuses, statuses, input),
    ...(input.hostIP ? { hostIP: input.hostIP, hostIPs: [{ ip: input.hostIP }] } : {}),
    ...(podIPs.length ? { podIP: podIPs[0], podIPs: podIPs.map((ip) => ({ ip })) } : {}),
    startTime: input.previous?.startTime ?? new Date(input.now),
    containerStatuses: statuses,
    qosClass: podQosClass(pod),
  };
  if (initStatuses.length) status.initContainerStatuses = initStatuses;
  return status;
}
