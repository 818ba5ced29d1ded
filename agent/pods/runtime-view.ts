/**
 * Reading a pod's state back from the runtime by its UID label: every sandbox and container
 * status, whatever this process remembers. This is what makes the agent restartable: nothing
 * about a pod's containers lives only in memory (kubelet: GetPodStatus from the runtime).
 */
import { isCriError, kubeLabels, type ContainerStatus, type PodSandboxStatus, type RuntimeService } from '../../cri/runtime.js';

export interface PodRuntimeState {
  sandboxes: PodSandboxStatus[];
  containers: ContainerStatus[];
}

async function ignoreNotFound<T>(promise: Promise<T>): Promise<T | undefined> {
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
  const sandboxes = (await Promise.all(sandboxList.map((s) => ignoreNotFound(runtime.podSandboxStatus(s.id))))).filter((s): s is PodSandboxStatus => s !== undefined);
  const containers = (await Promise.all(containerList.map((c) => ignoreNotFound(runtime.containerStatus(c.id))))).filter((c): c is ContainerStatus => c !== undefined);
  return { sandboxes, containers };
}

/** The newest sandbox (by creation). */
export function newestSandbox(state: PodRuntimeState): PodSandboxStatus | undefined {
  return [...state.sandboxes].sort((a, b) => b.createdAt - a.createdAt)[0];
}
