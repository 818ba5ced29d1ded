/**
 * Allocated resources (KEP-1287, pkg/kubelet/allocation): the requests and limits the agent
 * admitted for each pod's containers, which are what containers are started and resized with,
 * whatever the spec says later. A new pod is allocated from its spec at its first sync; a spec
 * that differs from the allocation afterwards is a resize request, admitted against node
 * allocatable as a whole (the pod's requests plus the allocated requests of the node's other
 * active pods):
 * - more than allocatable even on an empty node → PodResizePending/Infeasible ("Node didn't have
 *   enough capacity: cpu, requested: 2000, capacity: 1000"), not retried until the spec changes;
 * - more than what is free now → PodResizePending/Deferred ("Node didn't have enough resource:
 *   ..."), retried on every sync and when a pod leaves;
 * - else the allocation becomes the spec's.
 * The allocations are checkpointed in `<rootDir>/allocated_pods_state` (the kubelet's file name),
 * so an agent restart keeps running pods at what was admitted and re-admits pending resizes.
 * The decisions are pure functions; AllocationManager holds the state and the file.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { V1Container, V1Pod, V1ResourceRequirements } from '@kubernetes/client-node';
import { writeFileAtomic } from '../../lib/fs.js';
import { podResources } from '../../lib/k8s/resources.js';
import type { Logger } from '../../lib/log.js';
import { parseMilliCPU, parseQuantity } from '../../lib/quantity.js';

/** Container name → allocated requests and limits. */
type PodAllocation = Record<string, V1ResourceRequirements>;

export interface ResizePending {
  reason: 'Deferred' | 'Infeasible';
  message: string;
}

export interface AllocationResult {
  /** The pod with its containers' resources as allocated. */
  pod: V1Pod;
  /** Set while the spec asks for more than can be allocated. */
  pending?: ResizePending;
}

const checkpointFile = 'allocated_pods_state';
/** Bound on the checkpoint read back (a node runs at most a few hundred pods). */
const maxCheckpointBytes = 16 * 1024 * 1024;

function allContainers(pod: V1Pod): V1Container[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
}

/** The spec's resources of every container. */
export function allocationOf(pod: V1Pod): PodAllocation {
  const out: PodAllocation = {};
  for (const c of allContainers(pod)) out[c.name] = structuredClone(c.resources ?? {});
  return out;
}

/** The pod with each container's resources replaced by its allocation (UpdatePodFromAllocation). */
function withAllocation(pod: V1Pod, allocation: PodAllocation | undefined): V1Pod {
  if (!allocation) return pod;
  const copy = structuredClone(pod);
  for (const c of allContainers(copy)) {
    const allocated = allocation[c.name];
    if (allocated) c.resources = structuredClone(allocated);
  }
  return copy;
}

function amounts(list: Record<string, string> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(list ?? {})) out[name] = name === 'cpu' ? parseMilliCPU(String(value)) : parseQuantity(String(value));
  return out;
}

function sameRequirements(a: V1ResourceRequirements | undefined, b: V1ResourceRequirements | undefined): boolean {
  const equal = (x: Record<string, number>, y: Record<string, number>) => Object.keys({ ...x, ...y }).every((k) => x[k] === y[k]);
  return equal(amounts(a?.requests), amounts(b?.requests)) && equal(amounts(a?.limits), amounts(b?.limits));
}

/** The spec asks for other resources than allocated. */
export function resizeRequested(pod: V1Pod, allocation: PodAllocation): boolean {
  return allContainers(pod).some((c) => allocation[c.name] !== undefined && !sameRequirements(c.resources, allocation[c.name]));
}

/** Node allocatable cpu (millicores) and memory (bytes) as the node reports them. */
export interface Allocatable {
  cpu?: string;
  memory?: string;
}

/**
 * canResizePod: Infeasible when the pod alone exceeds allocatable, Deferred when it does not fit
 * beside the other pods' allocations, undefined when it fits.
 */
export function admitResize(pod: V1Pod, others: readonly V1Pod[], allocatable: Allocatable): ResizePending | undefined {
  const wanted = podResources(pod).requests;
  for (const name of ['cpu', 'memory'] as const) {
    const text = allocatable[name];
    if (text === undefined) continue;
    const capacity = name === 'cpu' ? parseMilliCPU(text) : Math.floor(parseQuantity(text));
    const requested = Math.ceil(wanted[name] ?? 0);
    if (requested > capacity) return { reason: 'Infeasible', message: `Node didn't have enough capacity: ${name}, requested: ${requested}, capacity: ${capacity}` };
  }
  for (const name of ['cpu', 'memory'] as const) {
    const text = allocatable[name];
    if (text === undefined) continue;
    const capacity = name === 'cpu' ? parseMilliCPU(text) : Math.floor(parseQuantity(text));
    const requested = Math.ceil(wanted[name] ?? 0);
    const used = Math.ceil(others.reduce((sum, other) => sum + (podResources(other).requests[name] ?? 0), 0));
    if (requested + used > capacity) return { reason: 'Deferred', message: `Node didn't have enough resource: ${name}, requested: ${requested}, used: ${used}, capacity: ${capacity}` };
  }
  return undefined;
}

interface AllocationManagerOptions {
  rootDir: string;
  log: Logger;
  /** Node allocatable (undefined before the node's first status: every resize waits, Deferred). */
  allocatable: () => Allocatable | undefined;
  /** The node's active pods (admitted and not terminated), this one included or not. */
  activePods: () => Iterable<V1Pod>;
}

export class AllocationManager {
  private readonly state = new Map<string, PodAllocation>();
  private readonly file: string;

  constructor(private readonly options: AllocationManagerOptions) {
    this.file = join(options.rootDir, checkpointFile);
  }

  /** Reads the checkpoint back; a missing or unreadable one starts empty (logged). */
  async load(): Promise<void> {
    let text: string;
    try {
      const data = await readFile(this.file);
      if (data.length > maxCheckpointBytes) throw new Error(`checkpoint is ${data.length} bytes, over the ${maxCheckpointBytes} bound`);
      text = data.toString('utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.options.log.warn({ err: error, file: this.file }, 'allocation checkpoint not read; pods are allocated from their specs');
      return;
    }
    try {
      const parsed = JSON.parse(text) as { version?: unknown; pods?: unknown };
      if (parsed.version !== 1 || typeof parsed.pods !== 'object' || parsed.pods === null) throw new Error('not a version 1 allocation checkpoint');
      for (const [uid, allocation] of Object.entries(parsed.pods as Record<string, PodAllocation>)) this.state.set(uid, allocation);
    } catch (error) {
      this.options.log.warn({ err: error, file: this.file }, 'allocation checkpoint is corrupt; pods are allocated from their specs');
    }
  }

  get(uid: string): PodAllocation | undefined {
    return this.state.get(uid);
  }

  /**
   * The pod as allocated: a new pod is allocated from its spec; a resize is admitted (and then
   * allocated) or reported pending. Synchronous decision, then the checkpoint write.
   */
  allocate(pod: V1Pod): AllocationResult {
    const uid = pod.metadata?.uid ?? '';
    const current = this.state.get(uid);
    if (!current) {
      this.save(uid, allocationOf(pod));
      return { pod };
    }
    if (!resizeRequested(pod, current)) return { pod: withAllocation(pod, current) };
    const allocatable = this.options.allocatable();
    const others = [...this.options.activePods()].filter((p) => p.metadata?.uid !== uid).map((p) => withAllocation(p, this.state.get(p.metadata?.uid ?? '')));
    const pending = allocatable ? admitResize(pod, others, allocatable) : { reason: 'Deferred' as const, message: 'node allocatable is not known yet' };
    if (pending) return { pod: withAllocation(pod, current), pending };
    this.save(uid, allocationOf(pod));
    return { pod };
  }

  /** The pod left the node: its allocation is freed. */
  release(uid: string): void {
    if (this.state.delete(uid)) this.write();
  }

  private save(uid: string, allocation: PodAllocation): void {
    this.state.set(uid, allocation);
    this.write();
  }

  private write(): void {
    try {
      writeFileAtomic(this.file, JSON.stringify({ version: 1, pods: Object.fromEntries(this.state) }));
    } catch (error) {
      this.options.log.warn({ err: error, file: this.file }, 'allocation checkpoint not written');
    }
  }
}
