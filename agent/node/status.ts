/**
 * The Node object (pkg/kubelet/kubelet_node_status.go, pkg/kubelet/nodestatus/setters.go), pure:
 * - labels kubernetes.io/hostname, kubernetes.io/os, kubernetes.io/arch (+ beta aliases) and
 *   nodeLabels from config; taints from registerWithTaints;
 * - addresses InternalIP and Hostname;
 * - capacity cpu/memory/ephemeral-storage/pods(maxPods); allocatable = capacity − kubeReserved −
 *   systemReserved − hard eviction threshold (docs "Reserve Compute Resources for System Daemons");
 * - conditions MemoryPressure/DiskPressure/PIDPressure (from the eviction manager when there is
 *   one) and Ready, NotReady with the runtime/network reason as the kubelet words it
 *   ("container runtime network not ready: NetworkReady=false reason:... message:...");
 *   lastTransitionTime changes only with the status; lastHeartbeatTime is now.
 */
import type { V1Node, V1NodeCondition, V1NodeStatus, V1Taint } from '@kubernetes/client-node';
import { formatBytes, parseMilliCPU, parseQuantity, parseThresholdValue } from '../../lib/quantity.js';
import type { RuntimeCondition } from '../../cri/runtime.js';

export interface NodeFactsInput {
  nodeName: string;
  hostname: string;
  internalIP?: string;
  os: string;
  arch: string;
  cpuCores: number;
  memoryBytes: number;
  /** Filesystem of the agent's root dir. */
  ephemeralStorageBytes: number;
  maxPods: number;
  kernelVersion: string;
  osImage: string;
  containerRuntimeVersion: string;
  kubeletVersion: string;
  machineID: string;
  systemUUID: string;
  bootID: string;
  kubeletPort: number;
}

export interface NodeConfigInput {
  nodeLabels: Record<string, string>;
  registerWithTaints: V1Taint[];
  kubeReserved: Record<string, string>;
  systemReserved: Record<string, string>;
  evictionHard: Record<string, string>;
  /** spec.providerID (KubeletConfiguration providerID); '' = none. */
  providerID?: string;
  /** false: never create the Node, only report on one that exists (KubeletConfiguration registerNode). */
  registerNode?: boolean;
}

export interface PressureInput {
  memory?: boolean;
  disk?: boolean;
  pid?: boolean;
}

/** Node arch names are Go's GOARCH. */
export function goArch(arch: string): string {
  return ({ x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[arch] ?? arch;
}

export function nodeLabels(facts: Pick<NodeFactsInput, 'nodeName' | 'os' | 'arch'>, extra: Record<string, string>): Record<string, string> {
  return {
    'beta.kubernetes.io/arch': facts.arch,
    'beta.kubernetes.io/os': facts.os,
    'kubernetes.io/arch': facts.arch,
    'kubernetes.io/hostname': facts.nodeName,
    'kubernetes.io/os': facts.os,
    ...extra,
  };
}

function reserved(list: Record<string, string>, name: string): number {
  const value = list[name];
  if (value === undefined) return 0;
  return name === 'cpu' ? parseMilliCPU(value) : parseQuantity(value);
}

function evictionReserve(evictionHard: Record<string, string>, signal: string, capacity: number): number {
  const text = evictionHard[signal];
  if (!text) return 0;
  const value = parseThresholdValue(text);
  return 'quantity' in value ? value.quantity : value.percentage * capacity;
}

export function capacityAndAllocatable(facts: NodeFactsInput, config: NodeConfigInput): { capacity: Record<string, string>; allocatable: Record<string, string> } {
  const cpuMilli = facts.cpuCores * 1000;
  const capacity = {
    cpu: String(facts.cpuCores),
    memory: `${Math.floor(facts.memoryBytes / 1024)}Ki`,
    'ephemeral-storage': `${Math.floor(facts.ephemeralStorageBytes / 1024)}Ki`,
    pods: String(facts.maxPods),
  };
  const both = (name: string) => reserved(config.kubeReserved, name) + reserved(config.systemReserved, name);
  const allocCpu = Math.max(0, cpuMilli - both('cpu'));
  const allocMem = Math.max(0, facts.memoryBytes - both('memory') - evictionReserve(config.evictionHard, 'memory.available', facts.memoryBytes));
  const allocDisk = Math.max(0, facts.ephemeralStorageBytes - both('ephemeral-storage') - evictionReserve(config.evictionHard, 'nodefs.available', facts.ephemeralStorageBytes));
  return {
    capacity,
    allocatable: {
      cpu: allocCpu % 1000 === 0 ? String(allocCpu / 1000) : `${allocCpu}m`,
      memory: `${Math.floor(allocMem / 1024)}Ki`,
      'ephemeral-storage': String(Math.floor(allocDisk)),
      pods: String(facts.maxPods),
    },
  };
}

/** The Ready condition's status and reason from the runtime conditions (kubelet runtimeState). */
export function readiness(conditions: RuntimeCondition[] | undefined, runtimeError?: string): { ready: boolean; message: string } {
  if (!conditions) return { ready: false, message: `container runtime is down: ${runtimeError ?? 'no status'}` };
  const problems: string[] = [];
  for (const type of ['RuntimeReady', 'NetworkReady']) {
    const condition = conditions.find((c) => c.type === type);
    if (!condition || !condition.status) {
      const what = type === 'RuntimeReady' ? 'container runtime not ready' : 'container runtime network not ready';
      problems.push(`${what}: ${type}=false reason:${condition?.reason ?? 'Unknown'} message:${condition?.message ?? 'condition missing'}`);
    }
  }
  return problems.length ? { ready: false, message: problems.join(', ') } : { ready: true, message: 'kubelet is posting ready status' };
}

function condition(type: string, isTrue: boolean, reason: string, message: string, previous: V1NodeCondition[] | undefined, now: Date): V1NodeCondition {
  const status = isTrue ? 'True' : 'False';
  const before = previous?.find((c) => c.type === type);
  return {
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: now,
    lastTransitionTime: before && before.status === status && before.lastTransitionTime ? before.lastTransitionTime : now,
  };
}

export function buildNodeStatus(facts: NodeFactsInput, config: NodeConfigInput, ready: { ready: boolean; message: string }, pressure: PressureInput, previous: V1NodeStatus | undefined, now: number): V1NodeStatus {
  const at = new Date(now);
  const prev = previous?.conditions;
  const { capacity, allocatable } = capacityAndAllocatable(facts, config);
  return {
    capacity,
    allocatable,
    addresses: [...(facts.internalIP ? [{ type: 'InternalIP', address: facts.internalIP }] : []), { type: 'Hostname', address: facts.hostname }],
    conditions: [
      pressure.memory
        ? condition('MemoryPressure', true, 'KubeletHasInsufficientMemory', 'kubelet has insufficient memory available', prev, at)
        : condition('MemoryPressure', false, 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available', prev, at),
      pressure.disk
        ? condition('DiskPressure', true, 'KubeletHasDiskPressure', 'kubelet has disk pressure', prev, at)
        : condition('DiskPressure', false, 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure', prev, at),
      pressure.pid
        ? condition('PIDPressure', true, 'KubeletHasInsufficientPID', 'kubelet has insufficient PID available', prev, at)
        : condition('PIDPressure', false, 'KubeletHasSufficientPID', 'kubelet has sufficient PID available', prev, at),
      condition('Ready', ready.ready, ready.ready ? 'KubeletReady' : 'KubeletNotReady', ready.message, prev, at),
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: facts.kubeletPort } },
    nodeInfo: {
      architecture: facts.arch,
      operatingSystem: facts.os,
      kernelVersion: facts.kernelVersion,
      osImage: facts.osImage,
      containerRuntimeVersion: facts.containerRuntimeVersion,
      kubeletVersion: facts.kubeletVersion,
      kubeProxyVersion: '',
      machineID: facts.machineID,
      systemUUID: facts.systemUUID,
      bootID: facts.bootID,
    },
  };
}

/** The kubelet's node status event per condition type and status (pkg/kubelet/nodestatus/setters.go). */
const conditionEventReasons: Record<string, { True: string; False: string }> = {
  MemoryPressure: { True: 'NodeHasInsufficientMemory', False: 'NodeHasSufficientMemory' },
  DiskPressure: { True: 'NodeHasDiskPressure', False: 'NodeHasNoDiskPressure' },
  PIDPressure: { True: 'NodeHasInsufficientPID', False: 'NodeHasSufficientPID' },
  Ready: { True: 'NodeReady', False: 'NodeNotReady' },
};

/**
 * The node status events of one status update: one per condition whose status differs from the
 * server's Node (`before`; undefined at registration, when every condition is new), as the
 * kubelet's condition setters call recordEventFunc. Each is recorded as "Node NAME status is
 * now: REASON" (kubelet recordNodeStatusEvent).
 */
export function conditionEvents(before: readonly V1NodeCondition[] | undefined, after: readonly V1NodeCondition[] | undefined): string[] {
  const reasons: string[] = [];
  for (const condition of after ?? []) {
    const names = conditionEventReasons[condition.type];
    if (!names || (condition.status !== 'True' && condition.status !== 'False')) continue;
    if (before?.find((c) => c.type === condition.type)?.status === condition.status) continue;
    reasons.push(names[condition.status]);
  }
  return reasons;
}

export function buildNode(facts: NodeFactsInput, config: NodeConfigInput, status: V1NodeStatus): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: facts.nodeName, labels: nodeLabels(facts, config.nodeLabels), annotations: { 'node.alpha.kubernetes.io/ttl': '0' } },
    spec: { ...(config.registerWithTaints.length ? { taints: config.registerWithTaints } : {}), ...(config.providerID ? { providerID: config.providerID } : {}) },
    status,
  };
}

export { formatBytes };
