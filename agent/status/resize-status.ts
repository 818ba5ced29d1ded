/**
 * The resize and generation parts of a pod's API status (kubelet_pods.go
 * convertToAPIContainerStatuses / generateAPIPodStatus, status manager
 * SetPodResizePendingCondition / SetPodResizeInProgressCondition; KEP-1287, KEP-5067):
 * - `containerStatuses[].allocatedResources`: the allocated requests;
 * - `containerStatuses[].resources`: what a running container actually has (cpu request from
 *   its shares, cpu limit from quota/period, memory limit from the runtime; the rest allocated),
 *   the allocation for a container that does not run;
 * - condition `PodResizePending` (reason Deferred / Infeasible) while the spec asks for more than
 *   was allocated, `PodResizeInProgress` while a running container's settings differ from its
 *   allocation (reason Error with the message when actuating failed);
 * - `status.observedGeneration` and every condition's `observedGeneration`: the pod's
 *   metadata.generation this status was computed for.
 * Pure.
 */
import type { V1Container, V1ContainerStatus, V1Pod, V1PodCondition, V1PodStatus, V1ResourceRequirements } from '@kubernetes/client-node';
import type { ContainerStatus, LinuxContainerResources } from '../../cri/runtime.js';
import { milliCpuToShares } from '../cgroups/pod-resources.js';
import { formatBytes, parseMilliCPU, parseQuantity } from '../../lib/quantity.js';
import type { ResizePending } from '../pods/allocation.js';
import { changedResources, desiredResources } from '../pods/resize.js';
import { isSidecar, latestByName } from '../pods/restart.js';
import type { RuntimeConfigOptions } from '../pods/runtime-config.js';

export interface ResizeStatusInput {
  /** The pod as allocated (containers' resources = what was admitted). */
  allocated: V1Pod;
  containers: readonly ContainerStatus[];
  pending?: ResizePending;
  /** Why actuating the allocated resize failed (it is retried). */
  error?: string;
  options: Pick<RuntimeConfigOptions, 'cpuCFSQuota' | 'cpuCFSQuotaPeriodMs' | 'podPidsLimit' | 'minOomScoreAdj'>;
  previous?: V1PodStatus;
  now: number;
}

type Quantities = Record<string, string>;

/** MilliCPU back from shares (the kernel keeps shares, not millicores). */
function cpuRequest(allocated: string | undefined, shares: number | undefined): string | undefined {
  if (allocated === undefined || shares === undefined) return allocated;
  if (milliCpuToShares(parseMilliCPU(allocated)) === shares) return allocated;
  return `${Math.round((shares * 1000) / 1024)}m`;
}

function cpuLimit(allocated: string | undefined, actual: LinuxContainerResources): string | undefined {
  if (!actual.cpuQuota || !actual.cpuPeriod) return allocated;
  const milli = Math.round((actual.cpuQuota * 1000) / actual.cpuPeriod);
  if (allocated !== undefined && Math.abs(parseMilliCPU(allocated) - milli) <= 1) return allocated;
  return `${milli}m`;
}

function memoryLimit(allocated: string | undefined, actual: LinuxContainerResources): string | undefined {
  if (!actual.memoryLimitInBytes) return allocated;
  if (allocated !== undefined && Math.floor(parseQuantity(allocated)) === actual.memoryLimitInBytes) return allocated;
  // resource.NewQuantity(bytes, BinarySI), as the kubelet reports it ("134217728" → "128Mi")
  return formatBytes(actual.memoryLimitInBytes);
}

/** The running container's actual resources (allocated where the runtime does not say). */
export function actualResources(allocated: V1ResourceRequirements, actual: LinuxContainerResources): V1ResourceRequirements {
  const requests: Quantities = { ...(allocated.requests as Quantities | undefined) };
  const limits: Quantities = { ...(allocated.limits as Quantities | undefined) };
  const cpu = cpuRequest(requests.cpu, actual.cpuShares);
  if (cpu !== undefined) requests.cpu = cpu;
  const cpuMax = cpuLimit(limits.cpu, actual);
  if (cpuMax !== undefined) limits.cpu = cpuMax;
  const memMax = memoryLimit(limits.memory, actual);
  if (memMax !== undefined) limits.memory = memMax;
  return { ...(Object.keys(requests).length ? { requests } : {}), ...(Object.keys(limits).length ? { limits } : {}) };
}

function decorate(status: V1ContainerStatus, container: V1Container | undefined, runtime: ContainerStatus | undefined): V1ContainerStatus {
  if (!container) return status;
  const allocated = container.resources ?? {};
  const out: V1ContainerStatus = { ...status };
  if (allocated.requests && Object.keys(allocated.requests).length > 0) out.allocatedResources = { ...allocated.requests };
  const running = runtime?.state === 'CONTAINER_RUNNING' && runtime.resources;
  out.resources = running ? actualResources(allocated, runtime.resources!) : structuredClone(allocated);
  return out;
}

/** A running container's settings differ from its allocation (allocated != actual). */
function resizeInProgress(input: ResizeStatusInput): boolean {
  const latest = latestByName(input.containers);
  const containers = [...(input.allocated.spec?.initContainers ?? []).filter(isSidecar), ...(input.allocated.spec?.containers ?? [])];
  return containers.some((c) => {
    const status = latest.get(c.name);
    if (status?.state !== 'CONTAINER_RUNNING' || !status.resources) return false;
    const changed = changedResources(desiredResources(c, input.options), status.resources);
    return changed.cpu || changed.memory;
  });
}

function resizeCondition(type: string, reason: string | undefined, message: string | undefined, input: ResizeStatusInput): V1PodCondition {
  const before = input.previous?.conditions?.find((c) => c.type === type);
  const same = before?.status === 'True' && before.reason === reason && before.lastTransitionTime !== undefined;
  return { type, status: 'True', lastTransitionTime: same ? before.lastTransitionTime : new Date(input.now), ...(reason ? { reason } : {}), ...(message ? { message } : {}) };
}

/** The status with the resize fields and conditions, and the observed generation. */
export function withResizeStatus(status: V1PodStatus, input: ResizeStatusInput): V1PodStatus {
  const latest = latestByName(input.containers);
  const byName = new Map([...(input.allocated.spec?.initContainers ?? []), ...(input.allocated.spec?.containers ?? [])].map((c) => [c.name, c]));
  const out: V1PodStatus = { ...status };
  if (status.containerStatuses) out.containerStatuses = status.containerStatuses.map((s) => decorate(s, byName.get(s.name), latest.get(s.name)));
  if (status.initContainerStatuses) {
    const sidecars = new Set((input.allocated.spec?.initContainers ?? []).filter(isSidecar).map((c) => c.name));
    out.initContainerStatuses = status.initContainerStatuses.map((s) => (sidecars.has(s.name) ? decorate(s, byName.get(s.name), latest.get(s.name)) : s));
  }
  const conditions = [...(status.conditions ?? [])];
  const terminal = status.phase === 'Succeeded' || status.phase === 'Failed';
  if (!terminal && input.pending) conditions.push(resizeCondition('PodResizePending', input.pending.reason, input.pending.message, input));
  if (!terminal && (input.error !== undefined || resizeInProgress(input))) conditions.push(resizeCondition('PodResizeInProgress', input.error !== undefined ? 'Error' : undefined, input.error, input));
  out.conditions = conditions;
  return withObservedGeneration(out, input.allocated.metadata?.generation);
}

/** KEP-5067: the generation the agent acted on, on the status and on each condition. */
export function withObservedGeneration(status: V1PodStatus, generation: number | undefined): V1PodStatus {
  if (generation === undefined) return status;
  return { ...status, observedGeneration: generation, conditions: (status.conditions ?? []).map((c) => ({ ...c, observedGeneration: generation })) };
}
