/**
 * Reading a pod's state back from the runtime by its UID label: every sandbox and container
 * status, whatever this process remembers. This is what makes the agent restartable: nothing
 * about a pod's containers lives only in memory (kubelet: GetPodStatus from the runtime).
 * Periodic and PLEG-driven syncs read the same state from the runtime pod cache instead
 * (pods/pod-cache.ts); after a change of its own, a worker inspects the ids it knows of and
 * those it created (inspectPodState), without listing again.
 */
import { isCriError, kubeLabels, type ContainerStatus, type PodSandboxStatus, type RuntimeService } from '../../cri/runtime.js';

export interface PodRuntimeState {
  sandboxes: PodSandboxStatus[];
  containers: ContainerStatus[];
}

/** The result, or undefined when the runtime says NotFound (a container removed meanwhile). */
export async function ignoreNotFound<T>(promise: Promise<T>): Promise<T | undefined> {
  try {
    return await promise;
  } catch (error) {
    if (isCriError(error, 'NotFound')) return undefined;
    throw error;
  }
}

export async function readPodState(runtime: RuntimeService, uid: string): Promise<PodRuntimeState> {
  const selector = { [kubeLabels.podUid]: uid };
  const [sandboxList, containerList] = await Promise.all([runtime.listPodSandbox({ labelSelector: selector }), runtime.listContainers({ labelSelector: selector })]);
  return inspectPodState(runtime, { sandboxes: sandboxList.map((s) => s.id), containers: containerList.map((c) => c.id) });
}

/** What inspectPodState is asked for: ids, and statuses already read that stand. */
interface PodStateIds {
  sandboxes: readonly string[];
  containers: readonly string[];
  /** Statuses read since the last change: kept as they are, not inspected again. */
  known?: { sandboxes?: readonly PodSandboxStatus[] };
}

/**
 * The statuses of the given sandboxes and containers, inspected in parallel (one round trip);
 * those gone meanwhile (NotFound) are left out.
 */
export async function inspectPodState(runtime: Pick<RuntimeService, 'podSandboxStatus' | 'containerStatus'>, ids: PodStateIds): Promise<PodRuntimeState> {
  const known = new Map((ids.known?.sandboxes ?? []).map((s) => [s.id, s]));
  const [sandboxes, containers] = await Promise.all([
    Promise.all([...new Set(ids.sandboxes)].map((id) => known.get(id) ?? ignoreNotFound(runtime.podSandboxStatus(id)))),
    Promise.all([...new Set(ids.containers)].map((id) => ignoreNotFound(runtime.containerStatus(id)))),
  ]);
  return { sandboxes: sandboxes.filter((s): s is PodSandboxStatus => s !== undefined), containers: containers.filter((c): c is ContainerStatus => c !== undefined) };
}

/** The newest sandbox (by creation). */
export function newestSandbox(state: PodRuntimeState): PodSandboxStatus | undefined {
  return [...state.sandboxes].sort((a, b) => b.createdAt - a.createdAt)[0];
}
