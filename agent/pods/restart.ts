/**
 * Restart decisions (pkg/kubelet/container/helpers.go ShouldContainerBeRestarted, and the
 * sidecar rules of KEP-753): a running container is never restarted; a container that never ran
 * is started; an exited one is restarted by the pod's restartPolicy — Always: yes; OnFailure: on a
 * non-zero exit; Never: no. An init container with restartPolicy Always (a sidecar) is always
 * restarted, whatever the pod's policy; a regular init container that failed is retried unless
 * the pod's policy is Never.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type { ContainerStatus } from '../../cri/runtime.js';

type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

export function podRestartPolicy(pod: V1Pod): RestartPolicy {
  return (pod.spec?.restartPolicy as RestartPolicy | undefined) ?? 'Always';
}

export function isSidecar(container: V1Container): boolean {
  return container.restartPolicy === 'Always';
}

/** Whether an exited container (exit code given) should run again under a policy. */
function policyRestarts(policy: RestartPolicy, exitCode: number): boolean {
  if (policy === 'Always') return true;
  if (policy === 'OnFailure') return exitCode !== 0;
  return false;
}

/**
 * Whether the agent should (re)start this container now, given its latest runtime status
 * (undefined: never created). `isInit` marks an entry of spec.initContainers.
 */
export function shouldStartContainer(pod: V1Pod, container: V1Container, latest: ContainerStatus | undefined, isInit: boolean): boolean {
  if (!latest) return true;
  if (latest.state === 'CONTAINER_RUNNING') return false;
  if (latest.state === 'CONTAINER_CREATED') return false; // created but not started: the worker starts it
  const exitCode = latest.state === 'CONTAINER_UNKNOWN' ? 1 : latest.exitCode;
  if (isInit && isSidecar(container)) return true;
  if (isInit) return exitCode !== 0 && podRestartPolicy(pod) !== 'Never';
  return policyRestarts(podRestartPolicy(pod), exitCode);
}

/** Newest status per container name (highest attempt, then newest creation). */
export function latestByName(statuses: readonly ContainerStatus[]): Map<string, ContainerStatus> {
  const latest = new Map<string, ContainerStatus>();
  for (const status of statuses) {
    const current = latest.get(status.metadata.name);
    if (!current || status.metadata.attempt > current.metadata.attempt || (status.metadata.attempt === current.metadata.attempt && status.createdAt > current.createdAt)) {
      latest.set(status.metadata.name, status);
    }
  }
  return latest;
}

/** The status before the newest one, per container name (for lastState and `logs --previous`). */
export function previousByName(statuses: readonly ContainerStatus[]): Map<string, ContainerStatus> {
  const latest = latestByName(statuses);
  const rest = statuses.filter((status) => latest.get(status.metadata.name) !== status);
  return latestByName(rest);
}
