/**
 * One worker per pod (pkg/kubelet/pod_workers.go): syncs are serialized per pod and run in
 * parallel across pods. A sync reads the pod's state back from the runtime, computes the
 * actions (pods/actions.ts), carries them out (pod cgroup and sandbox: pods/sandbox-step.ts;
 * init containers one at a time, app containers, restarts and image pulls with back-off:
 * pods/container-start.ts), and reports the status.
 * Termination (deletionTimestamp, or the pod left its source): preStop hooks and SIGTERM within
 * the grace period, SIGKILL after it, sandbox stop (the runtime does CNI DEL), a final status;
 * a removed pod's sandboxes, containers, directory and cgroup are then removed
 * (pods/termination.ts).
 * stop() (agent shutdown) only stops the worker: containers keep running, to be adopted.
 */
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import type { PodSandboxStatus } from '../../cri/runtime.js';
import { describeError } from '../../lib/errors.js';
import { podReference } from '../../lib/events.js';
import { resyncDelayMs } from './backoff.js';
import type { EnvContext } from './env.js';
import { computePodActions } from './actions.js';
import { podsDifferSemantically } from '../sources/pod-config.js';
import { startContainer } from './container-start.js';
import { collectGarbage, createSandbox } from './sandbox-step.js';
import { generatePodStatus, type WaitingReason } from '../status/pod-status.js';
import { killContainer, removePodLeftovers, stopAll } from './termination.js';
import type { PodSyncContext, PodWorkerDeps } from './worker-deps.js';
import { buildSandboxConfig } from './runtime-config.js';
import { inspectPodState, newestSandbox, readPodState, type PodRuntimeState } from './runtime-view.js';
import { markingChanges } from './pod-cache.js';
import { setUpVolumes } from '../volumes/volumes.js';
import type { ResizePending } from './allocation.js';
import { actuateResize, planResize } from './resize.js';
import { latestByName } from './restart.js';
import { withObservedGeneration, withResizeStatus } from '../status/resize-status.js';

export type { NodeFacts, PodWorkerDeps } from './worker-deps.js';

/**
 * The FailedMount event's message as the kubelet's volume manager words it
 * ("MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found").
 */
function mountFailure(message: string): string {
  const match = /^volume "([^"]*)": (.*)$/s.exec(message);
  return match ? `MountVolume.SetUp failed for volume "${match[1]}" : ${match[2]}` : `Unable to attach or mount volumes: ${message}`;
}

/** What a sync's actions did: whether they changed the runtime, and the sandboxes and containers they made. */
interface SyncResult {
  acted: boolean;
  /** Statuses of the sandbox the containers were started in, read after the sync's last kill. */
  sandboxes: PodSandboxStatus[];
  /** Ids of the containers created (started or not). */
  containers: string[];
}

export class PodWorker {
  private pod: V1Pod;
  /** The pod with its containers' resources as allocated (pods/allocation.ts); the spec without allocation. */
  private allocated?: V1Pod;
  /** Why the spec's resize waits (PodResizePending), why actuating it failed (PodResizeInProgress/Error). */
  private resize: { pending?: ResizePending; error?: string } = {};
  private removed = false;
  private terminated = false;
  private stopped = false;
  private running = false;
  private dirty = false;
  private timer?: NodeJS.Timeout;
  private readonly waiting = new Map<string, WaitingReason>();
  private lastStatus?: V1PodStatus;
  private startReported = false;
  private idle: Promise<void> = Promise.resolve();
  /** Kills asked by probes: container id → grace period and the Killing event's message. */
  private readonly pendingKills = new Map<string, { grace: number; message?: string }>();
  private finish?: () => void;
  /** An in-place kill (eviction): grace period, status amendment, waiters. */
  private killRequest?: { graceSeconds: number; amend: (status: V1PodStatus) => V1PodStatus; waiters: (() => void)[] };
  /** What the sync steps see of this worker. */
  private readonly ctx: PodSyncContext;
  /** The deps, with a runtime that marks this pod changed in the runtime pod cache. */
  private readonly deps: PodWorkerDeps;
  readonly done: Promise<void>;

  constructor(
    readonly uid: string,
    pod: V1Pod,
    deps: PodWorkerDeps,
  ) {
    const cache = deps.podCache;
    if (cache) deps = { ...deps, runtime: markingChanges(deps.runtime, () => cache.markChanged(uid)) };
    this.deps = deps;
    this.pod = pod;
    this.done = new Promise((resolve) => (this.finish = resolve));
    const worker = this;
    this.ctx = {
      uid,
      deps,
      get pod() {
        return worker.allocated ?? worker.pod;
      },
      get name() {
        return worker.name;
      },
      setWaiting: (name, waiting) => this.setWaiting(name, waiting),
      clearWaiting: (name) => this.waiting.delete(name),
      schedule: (delayMs) => this.schedule(delayMs),
      graceSeconds: () => this.graceSeconds(),
      event: (type, reason, message, container) => deps.recordEvent?.({ involvedObject: podReference(this.pod, container), type, reason, message }),
    };
  }

  get currentPod(): V1Pod {
    return this.pod;
  }

  get status(): V1PodStatus | undefined {
    return this.lastStatus;
  }

  get isTerminated(): boolean {
    return this.terminated;
  }

  /** A resize of this pod waits for room on the node (retried when a pod leaves). */
  get resizeDeferred(): boolean {
    return this.resize.pending?.reason === 'Deferred';
  }

  /** A new version from the sources: kept, and synced only when it differs semantically. */
  update(pod: V1Pod): void {
    const differs = podsDifferSemantically(this.pod, pod);
    this.pod = pod;
    if (differs) this.requestSync();
  }

  /**
   * A liveness/startup probe failed: kill the container (it restarts per restartPolicy); `message`
   * is the Killing event's ("Container NAME failed liveness probe, will be restarted").
   */
  killForProbe(containerId: string, graceSeconds: number, message?: string): void {
    this.pendingKills.set(containerId.replace(/^[a-z]+:\/\//, ''), { grace: graceSeconds, ...(message ? { message } : {}) });
    this.requestSync();
  }

  /**
   * Kills the pod in place (kubelet killPodNow, used by node-pressure eviction): it terminates
   * with `graceSeconds` and stays terminal (not removed); `amend` adjusts every status reported
   * from then on (phase Failed, reason Evicted). Resolves once its containers are stopped.
   */
  kill(graceSeconds: number, amend: (status: V1PodStatus) => V1PodStatus): Promise<void> {
    return new Promise((resolve) => {
      const waiters = [...(this.killRequest?.waiters ?? []), resolve];
      this.killRequest = { graceSeconds: Math.min(graceSeconds, this.killRequest?.graceSeconds ?? graceSeconds), amend, waiters };
      this.requestSync();
    });
  }

  /** The pod left the desired set: terminate and clean up. */
  remove(): void {
    this.removed = true;
    this.requestSync();
  }

  requestSync(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (!this.running) this.idle = this.loop();
  }

  /** Stops the worker without touching the pod's containers. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.idle;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.requestSync(), Math.max(10, delayMs));
    this.timer.unref();
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        try {
          await this.syncOnce();
        } catch (error) {
          this.deps.log.error({ pod: this.name, err: error }, 'pod sync failed');
          this.schedule(Math.min(this.deps.resyncMs, 2000));
        }
      }
    } finally {
      this.running = false;
    }
  }

  private get name(): string {
    return `${this.pod.metadata?.namespace}/${this.pod.metadata?.name}`;
  }

  private async syncOnce(): Promise<void> {
    this.deps.log.debug({ pod: this.name, uid: this.uid }, 'syncing pod');
    if (this.removed || this.pod.metadata?.deletionTimestamp || this.killRequest) {
      await this.terminate();
      return;
    }
    this.allocate();
    let state = await this.readState();
    if (this.terminated) {
      this.report(state, true);
      return;
    }
    if (this.pendingKills.size > 0) {
      for (const [id, kill] of this.pendingKills) {
        const status = state.containers.find((c) => c.id === id);
        if (status) await killContainer(this.ctx, status, kill.grace, state, kill.message);
      }
      this.pendingKills.clear();
      state = await this.readAfterChange(state);
    }
    // Read the runtime again only after something changed it: a steady-state resync of a
    // running pod reads the cache alone.
    const result = await this.syncPod(state);
    if (result.acted) state = await this.readAfterChange(state, result);
    const after = (await collectGarbage(this.deps.runtime, state)) ? await this.readAfterChange(state) : state;
    const status = this.report(after, false);
    if (status.phase === 'Succeeded' || status.phase === 'Failed') {
      // A pod that reached a terminal phase is stopped (kubelet: terminal pods are torn down).
      await stopAll(this.ctx, after, 0);
      this.terminated = true;
      this.report(await this.readAfterChange(after), true);
    }
    this.schedule(resyncDelayMs(this.deps.resyncMs));
  }

  /**
   * The pod's runtime state: from the runtime pod cache (the PLEG's last relist; only what
   * changed since it was last inspected is inspected) when it can answer, else read from the
   * runtime (kubelet pod workers: podCache.GetNewerThan, filled by the PLEG).
   */
  private async readState(): Promise<PodRuntimeState> {
    const cache = this.deps.podCache;
    const cached = await cache?.read(this.deps.runtime, this.uid);
    if (cached) return cached;
    const state = await readPodState(this.deps.runtime, this.uid);
    cache?.remember(state);
    return state;
  }

  /**
   * The state after this worker changed the pod: the sandboxes and containers of `before` and
   * those it created, inspected again in parallel, without listing them (only the pod's worker
   * creates them, and `before` had every other; removed ones drop out). Sandbox statuses the
   * sync read after its last change stand as they are.
   */
  private async readAfterChange(before: PodRuntimeState, made: SyncResult = { acted: true, sandboxes: [], containers: [] }): Promise<PodRuntimeState> {
    const state = await inspectPodState(this.deps.runtime, {
      sandboxes: [...before.sandboxes.map((s) => s.id), ...made.sandboxes.map((s) => s.id)],
      containers: [...before.containers.map((c) => c.id), ...made.containers],
      known: { sandboxes: made.sandboxes },
    });
    this.deps.podCache?.remember(state);
    return state;
  }

  /** Admission of the spec's resources (a new pod, or a resize): sets what the sync runs with. */
  private allocate(): void {
    const allocation = this.deps.allocation;
    if (!allocation) return;
    const before = this.resize.pending;
    const result = allocation.allocate(this.pod);
    this.allocated = result.pod;
    this.resize = { ...(result.pending ? { pending: result.pending } : {}), ...(this.resize.error !== undefined && !result.pending ? { error: this.resize.error } : {}) };
    const now = result.pending;
    if (now && (now.reason !== before?.reason || now.message !== before.message)) {
      this.deps.log.info({ pod: this.name, reason: now.reason, message: now.message }, 'pod resize pending');
    }
  }

  private report(state: PodRuntimeState, terminal: boolean): V1PodStatus {
    const node = this.deps.node();
    const probes = this.deps.probes;
    let status = generatePodStatus({
      pod: this.pod,
      sandbox: newestSandbox(state),
      containers: state.containers,
      waiting: this.waiting,
      ...(probes ? { probeReady: (name: string, id: string) => probes.ready(this.uid, name, id), probeStarted: (name: string, id: string) => probes.started(this.uid, name, id) } : {}),
      ...(this.lastStatus ? { previous: this.lastStatus } : {}),
      ...(node.hostIP ? { hostIP: node.hostIP } : {}),
      terminal,
      now: this.deps.clock.now(),
    });
    status = this.allocated
      ? withResizeStatus(status, { allocated: this.allocated, containers: state.containers, ...this.resize, options: this.deps.runtimeConfig, ...(this.lastStatus ? { previous: this.lastStatus } : {}), now: this.deps.clock.now() })
      : withObservedGeneration(status, this.pod.metadata?.generation);
    if (this.killRequest) status = this.killRequest.amend(status);
    this.lastStatus = status;
    if (!this.startReported && status.phase === 'Running' && status.containerStatuses?.every((c) => c.state?.running)) {
      this.startReported = true;
      const seen = Date.parse(this.pod.metadata?.annotations?.['kubernetes.io/config.seen'] ?? '');
      if (!Number.isNaN(seen)) this.deps.onPodStarted?.(this.pod, this.deps.clock.now() - seen);
    }
    this.deps.onStatus(this.pod, status);
    return status;
  }

  /** Records why a container waits; logged when the reason changes (kubelet events). */
  private setWaiting(name: string, waiting: WaitingReason): void {
    const before = this.waiting.get(name);
    this.waiting.set(name, waiting);
    if (before?.reason !== waiting.reason || before.message !== waiting.message) {
      this.deps.log.warn({ pod: this.name, container: name, reason: waiting.reason, message: waiting.message }, 'container waiting');
    }
  }

  private graceSeconds(): number {
    const fromDelete = this.pod.metadata?.deletionGracePeriodSeconds;
    const grace = Math.max(0, fromDelete ?? this.pod.spec?.terminationGracePeriodSeconds ?? 30);
    return this.killRequest ? Math.min(grace, this.killRequest.graceSeconds) : grace;
  }

  /** Carries out the pod's actions: whether it changed anything in the runtime, and what it made. */
  private async syncPod(state: PodRuntimeState): Promise<SyncResult> {
    const pod = this.ctx.pod;
    const running = new Map([...latestByName(state.containers)].filter(([, c]) => c.state === 'CONTAINER_RUNNING'));
    const resizes = this.allocated ? planResize(pod, running, this.deps.runtimeConfig) : [];
    const actions = computePodActions(pod, state.sandboxes, state.containers, new Set(resizes.filter((r) => r.restart).map((r) => r.container.name)));
    let acts = actions.killPod || actions.containersToKill.length > 0 || actions.createSandbox || actions.containersToStart.length > 0;
    // kuberuntime_manager.go SyncPod step 1: an existing sandbox that must be replaced.
    if (actions.killPod && actions.createSandbox) this.ctx.event('Normal', 'SandboxChanged', 'Pod sandbox changed, it will be killed and re-created.');
    if (actions.killPod) await stopAll(this.ctx, state, this.graceSeconds());
    for (const kill of actions.containersToKill) {
      const status = state.containers.find((c) => c.id === kill.id);
      this.deps.log.info({ pod: this.name, container: kill.name, reason: kill.reason }, 'killing container');
      if (status) await killContainer(this.ctx, status, this.graceSeconds(), state, kill.message);
      await this.deps.runtime.removeContainer(kill.id);
    }
    if (!actions.killPod && resizes.some((r) => !r.restart)) {
      this.resize.error = await actuateResize(this.ctx, pod, resizes);
      acts = true;
    } else if (resizes.length === 0) delete this.resize.error;
    const made: SyncResult = { acted: acts, sandboxes: [], containers: [] };
    if (!actions.createSandbox && !actions.sandboxId) return made;
    const objects = await this.deps.objects(this.pod);
    const node = this.deps.node();
    const baseContext: EnvContext = { nodeName: this.deps.runtimeConfig.nodeName, ...(node.hostIP ? { hostIP: node.hostIP } : {}), ...(node.allocatable ? { allocatable: node.allocatable } : {}) };
    let volumes: Map<string, string>;
    try {
      volumes = await setUpVolumes(this.pod, this.deps.rootDir, objects, baseContext);
    } catch (error) {
      const message = describeError(error);
      this.ctx.event('Warning', 'FailedMount', mountFailure(message));
      for (const c of actions.containersToStart) this.setWaiting(c.container.name, { reason: 'ContainerCreating', message });
      this.deps.log.warn({ pod: this.name, err: error }, 'volume setup failed');
      this.schedule(2000);
      return made;
    }
    // Volumes are refreshed on every sync (configMap/secret updates reach running pods, as
    // the kubelet's atomic writer); with nothing to start, that is all.
    if (!actions.createSandbox && actions.containersToStart.length === 0) return made;
    let sandboxId = actions.sandboxId;
    const sandboxConfig = buildSandboxConfig(this.pod, actions.sandboxAttempt, this.deps.runtimeConfig);
    if (actions.createSandbox) {
      sandboxId = await createSandbox(this.ctx, sandboxConfig, actions.containersToStart);
      if (!sandboxId) return made;
    }
    // Read after every kill of this sync: it stands for the state after it (starting containers does not change it).
    const sandbox = await this.deps.runtime.podSandboxStatus(sandboxId!);
    made.sandboxes.push(sandbox);
    const podIP = sandbox.network.ip || (this.pod.spec?.hostNetwork ? node.hostIP ?? '' : '');
    const context: EnvContext = { ...baseContext, podIP, podIPs: [sandbox.network.ip, ...sandbox.network.additionalIps.map((a) => a.ip)].filter(Boolean) };
    for (const start of actions.containersToStart) {
      const created = await startContainer(this.ctx, start, { sandboxId: sandboxId!, sandboxConfig, objects, context, volumes });
      if (created) made.containers.push(created);
      // A started sidecar unblocks the next init container (or the app containers): go on.
      if (start.isInit && start.container.restartPolicy === 'Always' && !this.waiting.has(start.container.name)) this.dirty = true;
    }
    return made;
  }

  private async terminate(): Promise<void> {
    // Termination lists the runtime itself: whatever the pod has, it must go.
    const state = await readPodState(this.deps.runtime, this.uid);
    if (!this.terminated) {
      this.deps.log.info({ pod: this.name, graceSeconds: this.graceSeconds() }, 'terminating pod');
      await stopAll(this.ctx, state, this.graceSeconds());
      this.terminated = true;
    }
    const final = await this.readAfterChange(state);
    this.report(final, true);
    if (this.removed) {
      await removePodLeftovers(this.ctx, final);
      this.stopped = true;
      clearTimeout(this.timer);
    }
    this.deps.onTerminated(this.pod, this.removed);
    for (const resolve of this.killRequest?.waiters.splice(0) ?? []) resolve();
    if (this.removed) this.finish?.();
  }
}
