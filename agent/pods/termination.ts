/**
 * Stopping a pod's containers (kuberuntime_container.go killContainer, killPodWithSyncResult):
 * the preStop hook bounded by the grace period, then SIGTERM with what is left of it and SIGKILL
 * after it (the runtime's stop); app containers first, then init/sidecar containers, then the
 * sandboxes (the runtime does CNI DEL). For a pod that left its source, what is left of it is
 * removed: sandboxes, containers, its directory and its cgroup.
 */
import type { ContainerStatus } from '../../cri/runtime.js';
import { describeError } from '../../lib/errors.js';
import { runHook } from './lifecycle.js';
import type { PodSyncContext } from './worker-deps.js';
import type { PodRuntimeState } from './runtime-view.js';
import { removePodDir } from '../volumes/volumes.js';

/**
 * preStop (bounded by the grace period), then stop with what is left of it. Records the
 * kubelet's Killing event first: `message`, or "Stopping container NAME".
 */
export async function killContainer(ctx: PodSyncContext, status: ContainerStatus, graceSeconds: number, state: PodRuntimeState, message?: string): Promise<void> {
  if (status.state !== 'CONTAINER_RUNNING' && status.state !== 'CONTAINER_CREATED') return;
  const { deps, pod } = ctx;
  const name = status.metadata.name;
  const spec = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === name);
  ctx.event('Normal', 'Killing', message ?? `Stopping container ${name}`, spec ? name : undefined);
  const started = deps.clock.now();
  const hook = spec?.lifecycle?.preStop;
  if (hook && status.state === 'CONTAINER_RUNNING' && graceSeconds > 0) {
    const sandbox = state.sandboxes.find((s) => s.id === status.podSandboxId);
    const podIP = sandbox?.network.ip || deps.node().hostIP || '127.0.0.1';
    try {
      await runHook(hook, { runtime: deps.runtime, pod, container: spec!, containerId: status.id, podIP, timeoutMs: graceSeconds * 1000, allowNetwork: deps.podNetworkReachable !== false }, 'PreStop');
    } catch (error) {
      deps.log.warn({ pod: ctx.name, container: status.metadata.name, err: error }, 'FailedPreStopHook');
      // Without the hook's output, so that secrets do not leak (as the kubelet).
      ctx.event('Warning', 'FailedPreStopHook', 'PreStopHook failed', name);
    }
  }
  const left = Math.max(0, graceSeconds - Math.floor((deps.clock.now() - started) / 1000));
  await deps.runtime.stopContainer(status.id, left);
}

/**
 * Stops every container (app containers first, then init/sidecars) and every sandbox, the
 * NotReady ones too: a sandbox that died with a runtime restart still holds its network (IP,
 * veth) until it is stopped (kubelet killPodWithSyncResult stops every sandbox of the pod,
 * ConvertPodStatusToRunningPod; issue 25 item 8). Stopping an already stopped sandbox is cheap.
 */
export async function stopAll(ctx: PodSyncContext, state: PodRuntimeState, graceSeconds: number): Promise<void> {
  const inits = new Set((ctx.pod.spec?.initContainers ?? []).map((c) => c.name));
  const live = state.containers.filter((c) => c.state === 'CONTAINER_RUNNING' || c.state === 'CONTAINER_CREATED');
  await Promise.all(live.filter((c) => !inits.has(c.metadata.name)).map((c) => killContainer(ctx, c, graceSeconds, state)));
  await Promise.all(live.filter((c) => inits.has(c.metadata.name)).map((c) => killContainer(ctx, c, Math.min(graceSeconds, 2), state)));
  for (const sandbox of state.sandboxes) await ctx.deps.runtime.stopPodSandbox(sandbox.id);
}

/** A removed pod's sandboxes, containers, directory and cgroup (kubelet: pod cleanup). */
export async function removePodLeftovers(ctx: PodSyncContext, final: PodRuntimeState): Promise<void> {
  const { deps } = ctx;
  for (const sandbox of final.sandboxes) await deps.runtime.removePodSandbox(sandbox.id);
  for (const container of final.containers) await deps.runtime.removeContainer(container.id);
  await removePodDir(deps.rootDir, ctx.uid);
  await deps.podCgroups?.remove(ctx.uid);
}
