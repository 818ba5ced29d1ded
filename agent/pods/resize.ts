/**
 * Actuating an allocated resize (KEP-1287 "Actuating Resizes", kuberuntime_manager.go
 * computePodResizeAction / doPodResizeAction): the running containers' cgroup settings are
 * compared with what their allocated resources map to (the same mapping as at create,
 * linuxResources of pods/runtime-config.ts, read back through the runtime's container status):
 * - a container whose changed resource has `resizePolicy` RestartContainer is restarted (the
 *   pod's actions kill it and start it again with the allocated resources; restart count + 1);
 * - the others are updated in place through the runtime's UpdateContainerResources (Docker's
 *   container update: same container ID, same restart count);
 * - the pod cgroup follows: raised before the containers, lowered after them ("Container resource
 *   limit update ordering");
 * - a memory limit below the container's current usage is not applied: the resize stays
 *   InProgress with reason Error and is retried on the next sync ("Memory Limit Decreases": the
 *   kubelet checks usage first so that a decrease does not OOM-kill the container).
 * planResize is pure; actuateResize carries the plan out.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type { ContainerStatus, LinuxContainerResources } from '../../cri/runtime.js';
import { describeError } from '../../lib/errors.js';
import { linuxResources, type RuntimeConfigOptions } from './runtime-config.js';
import { isSidecar } from './restart.js';
import type { PodSyncContext } from './worker-deps.js';

interface ContainerResize {
  container: V1Container;
  status: ContainerStatus;
  /** The cgroup settings the allocation maps to (cpu and memory only). */
  desired: LinuxContainerResources;
  /** Its resizePolicy asks for a restart for a resource that changes. */
  restart: boolean;
}

type ResourceOptions = Pick<RuntimeConfigOptions, 'cpuCFSQuota' | 'cpuCFSQuotaPeriodMs' | 'podPidsLimit' | 'minOomScoreAdj'>;

/** cpu and memory cgroup settings of a container's (allocated) resources. */
export function desiredResources(container: V1Container, options: ResourceOptions): LinuxContainerResources {
  const all = linuxResources(container, options, 0);
  const out: LinuxContainerResources = {};
  if (all.cpuShares !== undefined) out.cpuShares = all.cpuShares;
  if (all.cpuQuota !== undefined) out.cpuQuota = all.cpuQuota;
  if (all.cpuPeriod !== undefined) out.cpuPeriod = all.cpuPeriod;
  if (all.memoryLimitInBytes !== undefined) out.memoryLimitInBytes = all.memoryLimitInBytes;
  return out;
}

/** Which of cpu / memory differ between what runs and what is allocated. */
export function changedResources(desired: LinuxContainerResources, actual: LinuxContainerResources): { cpu: boolean; memory: boolean } {
  const cpu =
    (desired.cpuShares ?? 0) !== (actual.cpuShares ?? 0) ||
    (desired.cpuQuota ?? 0) !== (actual.cpuQuota ?? 0) ||
    (desired.cpuQuota !== undefined && (desired.cpuPeriod ?? 0) !== (actual.cpuPeriod ?? 0));
  const memory = (desired.memoryLimitInBytes ?? 0) !== (actual.memoryLimitInBytes ?? 0);
  return { cpu, memory };
}

function restartPolicyFor(container: V1Container, resource: 'cpu' | 'memory'): string {
  return container.resizePolicy?.find((p) => p.resourceName === resource)?.restartPolicy ?? 'NotRequired';
}

/**
 * The running containers (app containers and sidecars) of the current sandbox whose cgroup
 * settings differ from their allocation. A runtime that reports no resources is left alone.
 */
export function planResize(allocated: V1Pod, running: ReadonlyMap<string, ContainerStatus>, options: ResourceOptions): ContainerResize[] {
  const plan: ContainerResize[] = [];
  const containers = [...(allocated.spec?.initContainers ?? []).filter(isSidecar), ...(allocated.spec?.containers ?? [])];
  for (const container of containers) {
    const status = running.get(container.name);
    if (!status || status.state !== 'CONTAINER_RUNNING' || !status.resources) continue;
    const desired = desiredResources(container, options);
    const changed = changedResources(desired, status.resources);
    if (!changed.cpu && !changed.memory) continue;
    const restart = (changed.cpu && restartPolicyFor(container, 'cpu') === 'RestartContainer') || (changed.memory && restartPolicyFor(container, 'memory') === 'RestartContainer');
    plan.push({ container, status, desired, restart });
  }
  return plan;
}

const mib = (bytes: number) => `${Math.round(bytes / 1024 / 1024)}Mi`;

/**
 * Applies the in-place part of a plan; answers the error that keeps the resize InProgress, if
 * any (the next sync retries).
 */
export async function actuateResize(ctx: PodSyncContext, allocated: V1Pod, plan: readonly ContainerResize[]): Promise<string | undefined> {
  const inPlace = plan.filter((entry) => !entry.restart);
  if (inPlace.length === 0) return undefined;
  const { podCgroups, log } = ctx.deps;
  const lowersMemory = inPlace.some((e) => e.desired.memoryLimitInBytes !== undefined && e.desired.memoryLimitInBytes < (e.status.resources?.memoryLimitInBytes || Infinity));
  const errors: string[] = [];
  try {
    if (!lowersMemory) await podCgroups?.ensure(allocated);
    // Decreases first, then increases (the pod cgroup never holds less than its containers).
    const ordered = [...inPlace].sort((a, b) => Number(isIncrease(a)) - Number(isIncrease(b)));
    for (const entry of ordered) {
      const error = await resizeContainer(ctx, entry);
      if (error) errors.push(error);
    }
    if (errors.length === 0) await podCgroups?.ensure(allocated);
  } catch (error) {
    log.warn({ pod: ctx.name, err: error }, 'pod resize failed');
    errors.push(describeError(error));
  }
  return errors.length > 0 ? errors.join('; ') : undefined;
}

function isIncrease(entry: ContainerResize): boolean {
  const actual = entry.status.resources ?? {};
  return (entry.desired.memoryLimitInBytes ?? Infinity) >= (actual.memoryLimitInBytes || Infinity) && (entry.desired.cpuQuota ?? Infinity) >= (actual.cpuQuota || Infinity);
}

async function resizeContainer(ctx: PodSyncContext, entry: ContainerResize): Promise<string | undefined> {
  const { runtime, log } = ctx.deps;
  const limit = entry.desired.memoryLimitInBytes;
  const current = entry.status.resources?.memoryLimitInBytes;
  if (limit !== undefined && (current === undefined || current === 0 || limit < current)) {
    const stats = await runtime.containerStats(entry.status.id);
    const usage = stats.memory.workingSetBytes;
    if (usage > limit) {
      const message = `attempting to set container "${entry.container.name}" memory limit (${mib(limit)}) below its current usage (${mib(usage)})`;
      log.warn({ pod: ctx.name, container: entry.container.name, limit, usage }, 'memory limit decrease deferred: below current usage');
      return message;
    }
  }
  await runtime.updateContainerResources(entry.status.id, entry.desired);
  log.info({ pod: ctx.name, container: entry.container.name, resources: entry.desired }, 'container resized in place');
  return undefined;
}
