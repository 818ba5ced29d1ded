/**
 * Node allocatable enforcement on the kubepods cgroup (pkg/kubelet/cm/node_container_manager_linux.go
 * enforceNodeAllocatableCgroups, docs "Reserve Compute Resources for System Daemons"): the
 * kubepods cgroup gets cpu shares and a memory limit of node allocatable = capacity −
 * kubeReserved − systemReserved when enforceNodeAllocatable has "pods", of the whole capacity
 * otherwise. (Hard eviction thresholds count in the reported allocatable, not in this limit.)
 */
import { parseMilliCPU, parseQuantity } from '../../lib/quantity.js';
import { milliCpuToShares, type PodResourceConfig } from './pod-resources.js';

interface NodeAllocatableInput {
  kubeReserved: Record<string, string>;
  systemReserved: Record<string, string>;
  enforceNodeAllocatable: readonly string[];
}

function reserved(lists: Record<string, string>[], name: 'cpu' | 'memory'): number {
  let sum = 0;
  for (const list of lists) {
    const value = list[name];
    if (value !== undefined) sum += name === 'cpu' ? parseMilliCPU(value) : parseQuantity(value);
  }
  return sum;
}

/** The kubepods cgroup's resources; undefined until the node's capacity is known. */
export function kubepodsResourceConfig(capacity: Record<string, string> | undefined, input: NodeAllocatableInput): PodResourceConfig | undefined {
  if (!capacity?.cpu || !capacity.memory) return undefined;
  const enforce = input.enforceNodeAllocatable.includes('pods');
  const lists = enforce ? [input.kubeReserved, input.systemReserved] : [];
  const cpuMilli = Math.max(0, parseMilliCPU(capacity.cpu) - reserved(lists, 'cpu'));
  const memoryBytes = Math.max(0, parseQuantity(capacity.memory) - reserved(lists, 'memory'));
  return { cpuShares: milliCpuToShares(cpuMilli), ...(memoryBytes > 0 ? { memoryLimitBytes: memoryBytes } : {}) };
}
