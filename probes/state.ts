/**
 * The probe worker's decisions as pure functions (kubelet pkg/kubelet/prober/worker.go doProbe),
 * so that thresholds, initial delay, startup gating and restarts are table-tested without time:
 * https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/
 *
 * Before a probe (beforeProbe):
 * - no status or no container ID yet: wait; pod Succeeded/Failed: stop the worker;
 * - a new container ID (the container was (re)created): fresh state, the cached result becomes
 *   the probe type's initial value (readiness Failure, liveness Success, startup Unknown);
 * - on hold after a liveness/startup kill: wait for the new container;
 * - container not running: cache Failure; stop when it terminated and restartPolicy is Never;
 * - pod deletion requested: liveness/startup cache Success and stop (no kill during shutdown);
 * - within initialDelaySeconds of the container's start: wait;
 * - startup gating: liveness/readiness wait until the container is started; startup stops
 *   probing once it is.
 * After a probe (afterProbe): count runs of equal results; the cache changes only when a run
 * reaches failureThreshold/successThreshold; a liveness/startup failure puts the worker on hold
 * until a new container ID and asks for a kill.
 */
import type { ProbeSpec } from './spec.js';
import type { ProbeResult, ProbeType } from './types.js';

export interface WorkerState {
  containerId: string;
  lastResult: ProbeResult;
  resultRun: number;
  onHold: boolean;
}

export const initialWorkerState: WorkerState = { containerId: '', lastResult: 'unknown', resultRun: 0, onHold: false };

/** The initial cached value for a new container (kubelet newWorker). */
function initialResult(type: ProbeType): ProbeResult {
  return type === 'readiness' ? 'failure' : type === 'liveness' ? 'success' : 'unknown';
}

export interface ContainerObservation {
  /** Pod phase; Succeeded/Failed stop the worker. */
  phase?: string;
  containerId?: string;
  running?: { startedAtMs: number };
  terminated: boolean;
  restartPolicy: string;
  terminationRequested: boolean;
  /** The container's startup probe succeeded (or it has none). */
  started: boolean;
  nowMs: number;
}

interface BeforeProbe {
  state: WorkerState;
  /** 'probe' runs the prober now; 'wait' keeps the worker for the next tick; 'stop' ends it. */
  action: 'probe' | 'wait' | 'stop';
  /** Cache entry to drop (the previous container). */
  remove?: string;
  /** New cached value for state.containerId. */
  set?: ProbeResult;
}

export function beforeProbe(state: WorkerState, type: ProbeType, spec: ProbeSpec, seen: ContainerObservation | undefined): BeforeProbe {
  if (seen === undefined) return { state, action: 'wait' };
  if (seen.phase === 'Succeeded' || seen.phase === 'Failed') return { state, action: 'stop' };
  if (!seen.containerId) return { state, action: 'wait' };
  let next = state;
  let remove: string | undefined;
  let set: ProbeResult | undefined;
  if (seen.containerId !== state.containerId) {
    remove = state.containerId || undefined;
    next = { containerId: seen.containerId, lastResult: 'unknown', resultRun: 0, onHold: false };
    set = initialResult(type);
  }
  const out = (action: BeforeProbe['action'], value = set): BeforeProbe => ({ state: next, action, ...(remove ? { remove } : {}), ...(value ? { set: value } : {}) });
  if (next.onHold) return out('wait');
  if (!seen.running) return out(seen.terminated && seen.restartPolicy === 'Never' ? 'stop' : 'wait', 'failure');
  if (seen.terminationRequested && type !== 'readiness') return out('stop', 'success');
  if (seen.nowMs - seen.running.startedAtMs < spec.initialDelaySeconds * 1000) return out('wait');
  if (seen.started) {
    if (type === 'startup') return out('wait');
  } else if (type !== 'startup') {
    return out('wait');
  }
  return out('probe');
}

interface AfterProbe {
  state: WorkerState;
  set?: ProbeResult;
  kill: boolean;
}

/** Folds one probe result ('success' or 'failure'; warnings count as success) into the run. */
export function afterProbe(state: WorkerState, type: ProbeType, spec: ProbeSpec, result: 'success' | 'failure'): AfterProbe {
  const resultRun = state.lastResult === result ? state.resultRun + 1 : 1;
  const next: WorkerState = { ...state, lastResult: result, resultRun };
  const threshold = result === 'failure' ? spec.failureThreshold : spec.successThreshold;
  if (resultRun < threshold) return { state: next, kill: false };
  if (type !== 'readiness' && result === 'failure') {
    // Stop probing until a new container ID shows up (kubelet #21751).
    return { state: { ...next, onHold: true, resultRun: 0 }, set: 'failure', kill: true };
  }
  return { state: next, set: result, kill: false };
}
