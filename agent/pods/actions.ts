/**
 * What one sync of a pod must do, from its spec and the runtime's view: the kubelet's
 * computePodActions (pkg/kubelet/kuberuntime/kuberuntime_manager.go), pure.
 * - A missing, not-ready or changed sandbox (sandbox hash annotation), or more than one ready
 *   sandbox, means: kill the pod and create a new sandbox, then start from the first init
 *   container. Exception: restartPolicy Never and containers already ran → no new sandbox.
 * - Init containers run one at a time in order; a regular init container must exit 0 before the
 *   next starts; a sidecar (restartPolicy Always) must be running before the next starts and is
 *   restarted whenever it exits. A failed init container under Never fails the pod.
 * - Once initialised, app containers are (re)started per restartPolicy; a running container
 *   whose spec hash changed is killed and started again; containers of unknown names are killed.
 * Back-off is applied by the caller (it needs the clock); `lastExit` carries what it needs.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { kubeAnnotations, type ContainerStatus, type PodSandboxStatus } from '../../cri/runtime.js';
import { containerHash, sandboxHash } from './container-hash.js';
import { isSidecar, podRestartPolicy, shouldStartContainer } from './restart.js';

export const sandboxHashAnnotation = 'io.knode.pod.sandbox-hash';

export interface ContainerToStart {
  container: V1Container;
  isInit: boolean;
  /** CRI attempt (restart count) for the new container. */
  attempt: number;
  /** The exited container this one replaces (for back-off), if any. */
  lastExit?: ContainerStatus;
}

interface ContainerToKill {
  id: string;
  name: string;
  reason: string;
  /** The Killing event's message when it is not "Stopping container NAME" (kubelet computePodActions). */
  message?: string;
}

interface PodActions {
  killPod: boolean;
  createSandbox: boolean;
  /** Sandbox to use for new containers (when not creating one). */
  sandboxId?: string;
  sandboxAttempt: number;
  containersToKill: ContainerToKill[];
  containersToStart: ContainerToStart[];
  /** A regular init container failed under restartPolicy Never: the pod is Failed. */
  initFailed: boolean;
}

function newest<T extends { createdAt: number }>(items: readonly T[]): T | undefined {
  return [...items].sort((a, b) => b.createdAt - a.createdAt)[0];
}

function latestIn(containers: readonly ContainerStatus[], name: string): ContainerStatus | undefined {
  return newest(containers.filter((c) => c.metadata.name === name));
}

function nextAttempt(all: readonly ContainerStatus[], name: string): number {
  const attempts = all.filter((c) => c.metadata.name === name).map((c) => c.metadata.attempt);
  return attempts.length ? Math.max(...attempts) + 1 : 0;
}

function isRunning(status: ContainerStatus | undefined): boolean {
  return status?.state === 'CONTAINER_RUNNING';
}

/**
 * A container created but never started (e.g. the agent died in between) is removed and
 * replaced; returns the replacement to start.
 */
function replaceCreated(container: V1Container, latest: ContainerStatus, isInit: boolean, all: readonly ContainerStatus[], actions: PodActions): void {
  actions.containersToKill.push({ id: latest.id, name: container.name, reason: 'Container was created but not started' });
  actions.containersToStart.push({ container, isInit, attempt: nextAttempt(all, container.name) });
}

function hashChanged(container: V1Container, status: ContainerStatus): boolean {
  const hash = status.annotations[kubeAnnotations.containerHash];
  return hash !== undefined && hash !== containerHash(container);
}

/** Actions when the sandbox must be (re)created. */
function recreate(pod: V1Pod, sandboxes: readonly PodSandboxStatus[], containers: readonly ContainerStatus[]): PodActions {
  const attempt = sandboxes.length ? Math.max(...sandboxes.map((s) => s.metadata.attempt)) + 1 : 0;
  const actions: PodActions = { killPod: sandboxes.length > 0, createSandbox: true, sandboxAttempt: attempt, containersToKill: [], containersToStart: [], initFailed: false };
  // kubelet: restartPolicy Never and the pod's containers already ran → do not start it again.
  if (podRestartPolicy(pod) === 'Never' && sandboxes.length > 0 && containers.some((c) => c.state === 'CONTAINER_EXITED')) {
    actions.createSandbox = false;
    return actions;
  }
  const first = pod.spec?.initContainers?.[0];
  if (first) actions.containersToStart.push({ container: first, isInit: true, attempt: nextAttempt(containers, first.name) });
  else for (const c of pod.spec?.containers ?? []) actions.containersToStart.push({ container: c, isInit: false, attempt: nextAttempt(containers, c.name) });
  return actions;
}

/** Walks the init containers; returns false while initialisation is not complete. */
function planInit(pod: V1Pod, current: readonly ContainerStatus[], all: readonly ContainerStatus[], actions: PodActions, resizeRestarts: ReadonlySet<string>): boolean {
  for (const container of pod.spec?.initContainers ?? []) {
    const latest = latestIn(current, container.name);
    if (isSidecar(container)) {
      if (latest && isRunning(latest) && (hashChanged(container, latest) || resizeRestarts.has(container.name))) {
        const resize = !hashChanged(container, latest);
        actions.containersToKill.push({ id: latest.id, name: container.name, reason: resize ? 'Container resize requires restart' : 'Init container spec hash changed', message: resize ? `Container ${container.name} resize requires restart` : `Init container ${container.name} definition changed, will be restarted` });
        actions.containersToStart.push({ container, isInit: true, attempt: nextAttempt(all, container.name), lastExit: latest });
        return false;
      }
      if (latest?.state === 'CONTAINER_RUNNING') continue;
      if (latest?.state === 'CONTAINER_CREATED') {
        replaceCreated(container, latest, true, all, actions);
        return false;
      }
      actions.containersToStart.push({ container, isInit: true, attempt: nextAttempt(all, container.name), ...(latest ? { lastExit: latest } : {}) });
      return false;
    }
    if (latest?.state === 'CONTAINER_EXITED' && latest.exitCode === 0) continue;
    if (isRunning(latest)) return false;
    if (latest?.state === 'CONTAINER_CREATED') {
      replaceCreated(container, latest, true, all, actions);
      return false;
    }
    if (latest && !shouldStartContainer(pod, container, latest, true)) {
      actions.initFailed = true;
      return false;
    }
    actions.containersToStart.push({ container, isInit: true, attempt: nextAttempt(all, container.name), ...(latest ? { lastExit: latest } : {}) });
    return false;
  }
  return true;
}

/**
 * `resizeRestarts`: running containers whose allocated resize asks for a restart (resizePolicy
 * RestartContainer, pods/resize.ts): killed and started again like a changed spec.
 */
export function computePodActions(pod: V1Pod, sandboxes: readonly PodSandboxStatus[], containers: readonly ContainerStatus[], resizeRestarts: ReadonlySet<string> = new Set()): PodActions {
  const ready = sandboxes.filter((s) => s.state === 'SANDBOX_READY');
  const sandbox = newest(sandboxes);
  const changed = sandbox !== undefined && sandbox.annotations[sandboxHashAnnotation] !== undefined && sandbox.annotations[sandboxHashAnnotation] !== sandboxHash(pod);
  if (!sandbox || sandbox.state !== 'SANDBOX_READY' || ready.length > 1 || changed) return recreate(pod, sandboxes, containers);

  const actions: PodActions = { killPod: false, createSandbox: false, sandboxId: sandbox.id, sandboxAttempt: sandbox.metadata.attempt, containersToKill: [], containersToStart: [], initFailed: false };
  const current = containers.filter((c) => c.podSandboxId === sandbox.id);
  const known = new Set([...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name));
  for (const status of current) {
    if (!known.has(status.metadata.name) && status.state !== 'CONTAINER_EXITED') actions.containersToKill.push({ id: status.id, name: status.metadata.name, reason: 'Container is not in the pod spec' });
  }
  const initialised = planInit(pod, current, containers, actions, resizeRestarts);
  if (!initialised) {
    if (actions.initFailed) actions.killPod = true;
    return actions;
  }
  for (const container of pod.spec?.containers ?? []) {
    const latest = latestIn(current, container.name);
    if (latest?.state === 'CONTAINER_CREATED') {
      replaceCreated(container, latest, false, containers, actions);
      continue;
    }
    if (latest && isRunning(latest)) {
      if (hashChanged(container, latest)) {
        actions.containersToKill.push({ id: latest.id, name: container.name, reason: 'Container spec hash changed', message: `Container ${container.name} definition changed, will be restarted` });
        actions.containersToStart.push({ container, isInit: false, attempt: nextAttempt(containers, container.name) });
      } else if (resizeRestarts.has(container.name)) {
        // computePodResizeAction: a resize whose resizePolicy is RestartContainer
        actions.containersToKill.push({ id: latest.id, name: container.name, reason: 'Container resize requires restart', message: `Container ${container.name} resize requires restart` });
        actions.containersToStart.push({ container, isInit: false, attempt: nextAttempt(containers, container.name) });
      }
      continue;
    }
    if (shouldStartContainer(pod, container, latest, false)) {
      actions.containersToStart.push({ container, isInit: false, attempt: nextAttempt(containers, container.name), ...(latest ? { lastExit: latest } : {}) });
    }
  }
  return actions;
}
