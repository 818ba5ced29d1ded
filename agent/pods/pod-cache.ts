/**
 * The runtime pod cache (pkg/kubelet/container/cache.go, kept by the generic PLEG's relist,
 * pkg/kubelet/pleg/generic.go): pod workers read a pod's runtime state from the last relist
 * instead of listing and inspecting its sandboxes and containers themselves, and only the
 * sandboxes and containers whose state changed since they were last inspected are inspected
 * again. A steady-state periodic sync then makes no runtime request at all; a container that
 * exits shows in the next relist (about a second), which both inspects it again here and wakes
 * the pod's worker (PLEG event).
 *
 * Why it stays correct:
 * - An inspect result is reused only while the relist shows the same id in the same state
 *   (a container's status only changes with its state: Docker never restarts a pod's
 *   container, a restart is a new container; a running sandbox keeps its network).
 * - A relist that began before the agent itself last changed a pod (started, killed or removed
 *   something) may not show that change: `markChanged` makes such relists unusable for that pod
 *   (read answers undefined; the worker then reads the runtime directly), as the kubelet's
 *   workers wait for a cache newer than their last sync (cache.GetNewerThan).
 * - Nothing survives the process: a restarted agent has no relist until it relisted the runtime.
 */
import { kubeLabels, type Container, type ContainerStatus, type PodSandbox, type PodSandboxStatus, type RuntimeService } from '../../cri/runtime.js';
import { ignoreNotFound, type PodRuntimeState } from './runtime-view.js';

/** One pod's sandboxes and containers as a relist saw them. */
interface RelistedPod {
  sandboxes: PodSandbox[];
  containers: Container[];
}

/** The relist's sandboxes and containers by pod UID (the pod UID label). */
export function groupByPod(sandboxes: readonly PodSandbox[], containers: readonly Container[]): Map<string, RelistedPod> {
  const pods = new Map<string, RelistedPod>();
  const entry = (uid: string): RelistedPod => {
    let pod = pods.get(uid);
    if (!pod) pods.set(uid, (pod = { sandboxes: [], containers: [] }));
    return pod;
  };
  for (const s of sandboxes) {
    const uid = s.labels[kubeLabels.podUid] ?? s.metadata.uid;
    if (uid) entry(uid).sandboxes.push(s);
  }
  for (const c of containers) {
    const uid = c.labels[kubeLabels.podUid];
    if (uid) entry(uid).containers.push(c);
  }
  return pods;
}

interface Kept<T> {
  status: T;
  /** The sequence number when it was read: entries read before a relist that no longer lists them go. */
  seq: number;
}

const noPod: RelistedPod = { sandboxes: [], containers: [] };

export class RuntimePodCache {
  /** One counter orders relist starts, changes and reads. */
  private seq = 0;
  private relist?: { seq: number; pods: Map<string, RelistedPod> };
  /** Pod UID → the sequence number of the agent's last change to it. */
  private readonly changed = new Map<string, number>();
  private readonly sandboxes = new Map<string, Kept<PodSandboxStatus>>();
  private readonly containers = new Map<string, Kept<ContainerStatus>>();

  /** A relist begins (its lists are taken after this): the token to give to `update`. */
  beginRelist(): number {
    return ++this.seq;
  }

  /**
   * The relist that began with `token` listed these pods. Statuses of sandboxes and containers
   * it no longer lists are forgotten, as are change marks older than it (it shows them).
   */
  update(token: number, pods: Map<string, RelistedPod>): void {
    if (this.relist && this.relist.seq > token) return;
    this.relist = { seq: token, pods };
    const listed = new Set<string>();
    for (const pod of pods.values()) {
      for (const s of pod.sandboxes) listed.add(s.id);
      for (const c of pod.containers) listed.add(c.id);
    }
    for (const kept of [this.sandboxes, this.containers]) {
      for (const [id, entry] of kept) if (entry.seq < token && !listed.has(id)) kept.delete(id);
    }
    for (const [uid, seq] of this.changed) if (seq < token) this.changed.delete(uid);
  }

  /** The agent changed the pod in the runtime: relists that began before now do not show it. */
  markChanged(uid: string): void {
    this.changed.set(uid, ++this.seq);
  }

  /** Statuses just read from the runtime (a direct read): reused while their state holds. */
  remember(state: PodRuntimeState): void {
    const seq = ++this.seq;
    for (const status of state.sandboxes) this.sandboxes.set(status.id, { status, seq });
    for (const status of state.containers) this.containers.set(status.id, { status, seq });
  }

  /**
   * The pod's state from the last relist, inspecting only what is not known in the state the
   * relist shows; undefined when there is no relist yet or it began before the agent's last
   * change to the pod (the caller reads the runtime itself).
   */
  async read(runtime: Pick<RuntimeService, 'podSandboxStatus' | 'containerStatus'>, uid: string): Promise<PodRuntimeState | undefined> {
    const relist = this.relist;
    if (!relist || relist.seq <= (this.changed.get(uid) ?? 0)) return undefined;
    const pod = relist.pods.get(uid) ?? noPod;
    const [sandboxes, containers] = await Promise.all([
      Promise.all(pod.sandboxes.map((s) => this.status(this.sandboxes, s, () => runtime.podSandboxStatus(s.id)))),
      Promise.all(pod.containers.map((c) => this.status(this.containers, c, () => runtime.containerStatus(c.id)))),
    ]);
    return { sandboxes: sandboxes.filter((s) => s !== undefined), containers: containers.filter((c) => c !== undefined) };
  }

  private async status<T extends { state: string }>(kept: Map<string, Kept<T>>, listed: { id: string; state: string }, inspect: () => Promise<T>): Promise<T | undefined> {
    const known = kept.get(listed.id);
    if (known && known.status.state === listed.state) return known.status;
    const seq = ++this.seq;
    const status = await ignoreNotFound(inspect());
    if (status) kept.set(listed.id, { status, seq });
    return status;
  }

  /** How many statuses are kept (tests, metrics). */
  get size(): number {
    return this.sandboxes.size + this.containers.size;
  }
}

/** The runtime calls that change sandboxes or containers. */
const changingCalls = new Set(['runPodSandbox', 'stopPodSandbox', 'removePodSandbox', 'createContainer', 'startContainer', 'stopContainer', 'removeContainer', 'updateContainerResources']);

/**
 * The runtime as one pod's worker uses it: once a call that changes a sandbox or container
 * settles (done or failed: a failed call may have changed something too), `onChange` runs, so
 * that no relist that began before it serves the pod (RuntimePodCache.markChanged).
 */
export function markingChanges<T extends object>(runtime: T, onChange: () => void): T {
  const marking = new Proxy(runtime, {
    get: (target, property, receiver) => {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function' || typeof property !== 'string' || !changingCalls.has(property)) return value;
      return async (...args: unknown[]) => {
        try {
          return (await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)) as unknown;
        } finally {
          onChange();
        }
      };
    },
  });
  wrapped.set(marking, runtime);
  return marking;
}

const wrapped = new WeakMap<object, object>();

/** The runtime under a markingChanges wrapper (one per pod worker): what runtime-wide memos are kept by. */
export function unmarked<T extends object>(runtime: T): T {
  return (wrapped.get(runtime) as T | undefined) ?? runtime;
}
