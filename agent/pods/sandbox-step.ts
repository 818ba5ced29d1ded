/**
 * The sandbox step of a pod sync (kuberuntime_manager.go SyncPod steps 4; pod_container_manager
 * EnsureExists before it, kubelet.go SyncPod): the pod cgroup with its limits, then the sandbox
 * (pause container + network), with back-off when either fails; and the dead container GC of a
 * live pod (kuberuntime_gc.go with maxPerPodContainer=1). Failures are the kubelet's events
 * FailedCreatePodContainer ("unable to ensure pod container exists: …") and FailedCreatePodSandBox
 * ("Failed to create pod sandbox: …").
 */
import type { ContainerRuntime, ContainerStatus, PodSandboxConfig, RuntimeCondition } from '../../cri/runtime.js';
import { describeError } from '../../lib/errors.js';
import type { ContainerToStart } from './actions.js';
import type { PodSyncContext } from './worker-deps.js';
import { newestSandbox, type PodRuntimeState } from './runtime-view.js';
import { unmarked } from './pod-cache.js';

/** kubelet NetworkNotReadyErrorMsg; a pod waiting for the network is synced again after this. */
const networkNotReadyMessage = 'network is not ready';
const networkRetryMs = 5_000;

/**
 * Why the pod network is not ready, from the runtime's NetworkReady condition (kubelet
 * runtimeState.networkErrors, worded as on the node's Ready condition); undefined when ready or
 * when the runtime cannot say (the sandbox call then reports the real failure).
 */
async function networkProblem(runtime: ContainerRuntime, now: number): Promise<string | undefined> {
  // A failed status query is no verdict: the sandbox call then reports the real failure.
  const conditions = await runtimeConditions(runtime, now);
  const network = conditions?.find((c) => c.type === 'NetworkReady');
  if (!network || network.status) return undefined;
  return `container runtime network not ready: NetworkReady=false reason:${network.reason || 'Unknown'} message:${network.message}`;
}

/**
 * How long a "network ready" answer is trusted. The kubelet does not ask the runtime per pod: it
 * reads runtimeState, which updateRuntimeUp refreshes every 5 s (pkg/kubelet/kubelet.go,
 * runtimeState.networkErrors in SyncPod). Asking per pod cost a Docker ping and, for a CNI 1.1
 * conflist, a STATUS exec of every plugin on each pod start. A not-ready answer is never kept,
 * so a pod starts as soon as the network comes up. A ready answer older than that (up to
 * networkReadyStaleMs) still answers while a new query runs beside the pod start, as the
 * kubelet's pods read runtimeState while its own loop refreshes it: no pod start waits on the
 * query once the network was seen ready.
 */
const networkReadyTtlMs = 5000;
const networkReadyStaleMs = 60_000;
interface KeptAnswer {
  at: number;
  pending: Promise<RuntimeCondition[] | undefined>;
  /** The answer came and said ready. */
  ready?: boolean;
  refreshing?: boolean;
}
const readyAnswers = new WeakMap<ContainerRuntime, KeptAnswer>();

const isReady = (conditions: RuntimeCondition[] | undefined): boolean => conditions?.find((c) => c.type === 'NetworkReady')?.status === true;

/** Asks the runtime; the answer is kept while it says ready (a pending query is shared by pods starting together). */
function query(runtime: ContainerRuntime, now: number): KeptAnswer {
  // A failed query is no verdict (undefined): the sandbox call then reports the real failure.
  const pending = runtime.status().then((s) => s.conditions, () => undefined);
  const entry: KeptAnswer = { at: now, pending };
  void pending.then((conditions) => {
    if (isReady(conditions)) entry.ready = true;
    else if (readyAnswers.get(runtime) === entry) readyAnswers.delete(runtime);
  });
  return entry;
}

function runtimeConditions(workerRuntime: ContainerRuntime, now: number): Promise<RuntimeCondition[] | undefined> {
  // One answer for every pod worker (each has its own wrapper of the runtime).
  const runtime = unmarked(workerRuntime);
  const kept = readyAnswers.get(runtime);
  const age = kept ? now - kept.at : -1;
  if (kept && age >= 0 && age < networkReadyTtlMs) return kept.pending;
  if (kept?.ready && age >= 0 && age < networkReadyStaleMs) {
    if (!kept.refreshing) {
      kept.refreshing = true;
      const next = query(runtime, now);
      // The new answer replaces the kept one when it comes (a not-ready one drops it).
      void next.pending.then(() => {
        if (readyAnswers.get(runtime) !== kept) return;
        if (next.ready) readyAnswers.set(runtime, next);
        else readyAnswers.delete(runtime);
      });
    }
    return kept.pending;
  }
  const entry = query(runtime, now);
  readyAnswers.set(runtime, entry);
  return entry.pending;
}

/** Creates the pod cgroup and the sandbox; undefined (a retry scheduled) when it cannot yet. */
export async function createSandbox(ctx: PodSyncContext, config: PodSandboxConfig, starts: ContainerToStart[]): Promise<string | undefined> {
  const { deps } = ctx;
  // kubelet SyncPod: a pod on the pod network is not started while the runtime's network is
  // not ready (no CNI ADD that must fail, no back-off); host-network pods start regardless.
  if (!ctx.pod.spec?.hostNetwork) {
    const problem = await networkProblem(deps.runtime, deps.clock.now());
    if (problem) {
      const message = `${networkNotReadyMessage}: ${problem}`;
      for (const c of starts) ctx.setWaiting(c.container.name, { reason: 'ContainerCreating', message });
      deps.log.debug({ pod: ctx.name }, message);
      ctx.schedule(networkRetryMs);
      return undefined;
    }
  }
  const key = `${ctx.uid}_sandbox`;
  const now = deps.clock.now();
  if (deps.restartBackoff.isInBackOffSinceUpdate(key)) {
    ctx.schedule(deps.restartBackoff.remainingSinceUpdate(key));
    return undefined;
  }
  const fail = (message: string, error: unknown, reason: string, eventMessage: string): undefined => {
    ctx.event('Warning', reason, eventMessage);
    for (const c of starts) ctx.setWaiting(c.container.name, { reason: 'ContainerCreating', message });
    deps.log.warn({ pod: ctx.name, err: error }, message);
    ctx.schedule(deps.restartBackoff.next(key, now));
    return undefined;
  };
  try {
    await deps.podCgroups?.ensure(ctx.pod);
  } catch (error) {
    const message = `failed to ensure that the pod: ${ctx.uid} cgroups exist and are correctly applied: ${describeError(error)}`;
    return fail(message, error, 'FailedCreatePodContainer', `unable to ensure pod container exists: ${message}`);
  }
  try {
    const id = await deps.runtime.runPodSandbox(config);
    deps.restartBackoff.reset(key);
    return id;
  } catch (error) {
    return fail(`failed to create pod sandbox: ${describeError(error)}`, error, 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${describeError(error)}`);
  }
}

/**
 * Dead container GC for a live pod: per container name the newest attempt stays, plus one dead
 * one before it (lastState, logs --previous); older dead containers and old stopped sandboxes go.
 * True when it removed anything.
 */
export async function collectGarbage(runtime: ContainerRuntime, state: PodRuntimeState): Promise<boolean> {
  let removed = false;
  const byName = new Map<string, ContainerStatus[]>();
  for (const c of state.containers) byName.set(c.metadata.name, [...(byName.get(c.metadata.name) ?? []), c]);
  for (const list of byName.values()) {
    list.sort((a, b) => b.metadata.attempt - a.metadata.attempt || b.createdAt - a.createdAt);
    for (const dead of list.slice(2)) {
      if (dead.state !== 'CONTAINER_EXITED') continue;
      await runtime.removeContainer(dead.id);
      removed = true;
    }
  }
  const newest = newestSandbox(state);
  for (const sandbox of state.sandboxes) {
    if (sandbox === newest || sandbox.state === 'SANDBOX_READY') continue;
    if (state.containers.some((c) => c.podSandboxId === sandbox.id)) continue;
    await runtime.removePodSandbox(sandbox.id);
    removed = true;
  }
  return removed;
}
