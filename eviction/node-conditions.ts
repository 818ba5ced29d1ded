/**
 * Node status conditions for the pressure signals, as the kubelet's node status setters
 * (pkg/kubelet/nodestatus/setters.go MemoryPressureCondition, DiskPressureCondition,
 * PIDPressureCondition): always reported, True while the eviction manager says so, with the
 * kubelet's reasons and messages; lastTransitionTime moves only when the status flips.
 * The matching NoSchedule taints are `taintsFor()` in thresholds.ts (in Kubernetes the node
 * lifecycle controller adds them from these conditions: TaintNodesByCondition).
 */
import type { V1NodeCondition } from '@kubernetes/client-node';
import type { PressureCondition } from './types.js';

const texts: Record<PressureCondition, { true: [string, string]; false: [string, string] }> = {
  MemoryPressure: {
    true: ['KubeletHasInsufficientMemory', 'kubelet has insufficient memory available'],
    false: ['KubeletHasSufficientMemory', 'kubelet has sufficient memory available'],
  },
  DiskPressure: {
    true: ['KubeletHasDiskPressure', 'kubelet has disk pressure'],
    false: ['KubeletHasNoDiskPressure', 'kubelet has no disk pressure'],
  },
  PIDPressure: {
    true: ['KubeletHasInsufficientPID', 'kubelet has insufficient PID available'],
    false: ['KubeletHasSufficientPID', 'kubelet has sufficient PID available'],
  },
};

const pressureConditionTypes: readonly PressureCondition[] = ['MemoryPressure', 'DiskPressure', 'PIDPressure'];

/** The three pressure conditions for node status, carrying transition times over from `previous`. */
export function pressureNodeConditions(active: ReadonlySet<PressureCondition>, previous: readonly V1NodeCondition[], now: Date): V1NodeCondition[] {
  return pressureConditionTypes.map((type) => {
    const status = active.has(type) ? 'True' : 'False';
    const [reason, message] = texts[type][active.has(type) ? 'true' : 'false'];
    const before = previous.find((condition) => condition.type === type);
    const lastTransitionTime = before && before.status === status && before.lastTransitionTime ? before.lastTransitionTime : now;
    return { type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime };
  });
}
