/**
 * One worker per pod (pkg/kubelet/pod_workers.go): syncs are serialized per pod and run in
 * parallel across pods. A sync reads the pod's state back from the runtime, computes the
 * actions (pod-actions.ts), carries them out (sandbox, init containers one at a time, app
 * containers, restarts with back-off, image pulls with back-off), and reports the status.
 * Termination (deletionTimestamp, or the pod left its source): preStop hooks and SIGTERM within
 * the grace period, SIGKILL after it, sandbox stop (the runtime does CNI DEL), a final status;
 * a removed pod's sandboxes, containers and directory are then removed.
 * stop() (agent shutdown) only stops the worker: containers keep running, to be adopted.
 */
import type { V1Container, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import type { ContainerRuntime, ContainerStatus, PodSandboxConfig } from '../cri/runtime.js';
import type { Logger } from '../lib/log.js';
import { describeError } from '../lib/errors.js';
import { backoffKey, type Backoff, type Clock } from './backoff.js';
import { containerHash } from './container-hash.js';
import { ContainerConfigError, buildEnvironment, expandCommand, type EnvContext, type EnvObjects } from './env.js';
import { pullDecision } from './image-policy.js';
import { HookError, runHook } from './lifecycle.js';
import { computePodActions, type ContainerToStart } from './pod-actions.js';
import { generatePodStatus, type WaitingReason } from './pod-status.js';
import { isCriticalPod, oomScoreAdj, podCgroupParent } from './qos.js';
import { countPodCgroups, removePodCgroup } from './cgroups.js';
import { buildContainerConfig, buildSandboxConfig, type RuntimeConfigOptions } from './runtime-config.js';
import { newestSandbox, readPodState, type PodRuntimeState } from './runtime-view.js';
import { isStaticPod } from './static-pod.js';
import { VolumeError, containerMounts, removePodDir, setUpVolumes } from './volumes.js';
import { parseQuantity } from '../lib/quantity.js';

export interface NodeFacts {
  hostIP?: string;
  allocatable?: EnvContext['allocatable'];
  memoryCapacityBytes: number;
}

export interface ProbeView {
  ready(uid: string, container: string, containerId: string): boolean | undefined;
  started(uid: string, container: string, containerId: string): boolean | undefined;
}

export interface PodWorkerDeps {
  runtime: ContainerRuntime;
  clock: Clock;
  restartBackoff: Backoff;
  imageBackoff: Backoff;
  runtimeConfig: RuntimeConfigOptions;
  rootDir: string;
  log: Logger;
  objects(pod: V1Pod): Promise<EnvObjects>;
  node(): NodeFacts;
  onStatus(pod: V1Pod, status: V1PodStatus): void;
  /** Called once the pod is fully terminated (removed: it left the desired set). */
  onTerminated(pod: V1Pod, removed: boolean): void;
  probes?: ProbeView;
  /** Periodic resync (syncFrequency). */
  resyncMs: number;
  onPodStarted?(pod: V1Pod, latencyMs: number): void;
  /**
   * False when pods live in another network namespace than the agent (a node inside a test
   * netns): then httpGet hooks are refused instead of sending packets from the wrong namespace.
   */
  podNetworkReachable?: boolean;
  /** Where cgroup hierarchies are mounted (tests point this elsewhere); default /sys/fs/cgroup. */
  cgroupRoot?: string;
}

export class PodWorker {
  private pod: V1Pod;
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
  private readonly pendingKills = new Map<string, number>();
  private finish?: () => void;
  /** An in-place kill (eviction): grace period, status amendment, waiters. */
  private killRequest?: { graceSeconds: number; amend: (status: V1PodStatus) => V1PodStatus; waiters: (() => void)[] };
  readonly done: Promise<void>;

  constructor(
    readonly uid: string,
    pod: V1Pod,
    private readonly deps: PodWorkerDeps,
  ) {
    this.pod = pod;
    this.done = new Promise((resolve) => (this.finish = resolve));
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

  update(pod: V1Pod): void {
    this.pod = pod;
    this.requestSync();
  }

  /** A liveness/startup probe failed: kill the container (it restarts per restartPolicy). */
  killForProbe(containerId: string, graceSeconds: number): void {
    this.pendingKills.set(containerId.replace(/^[a-z]+:\/\//, ''), graceSeconds);
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
          this.deps.log.error({ pod: this.name, err: describeError(error) }, 'pod sync failed');
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
    let state = await readPodState(this.deps.runtime, this.uid);
    if (this.terminated) {
      this.report(state, true);
      return;
    }
    if (this.pendingKills.size > 0) {
      for (const [id, grace] of this.pendingKills) {
        const status = state.containers.find((c) => c.id === id);
        if (status) await this.killContainer(status, grace, state);
      }
      this.pendingKills.clear();
      state = await readPodState(this.deps.runtime, this.uid);
    }
    await this.syncPod(state);
    await this.collectGarbage(await readPodState(this.deps.runtime, this.uid));
    const after = await readPodState(this.deps.runtime, this.uid);
    const status = this.report(after, false);
    if (status.phase === 'Succeeded' || status.phase === 'Failed') {
      // A pod that reached a terminal phase is stopped (kubelet: terminal pods are torn down).
      await this.stopAll(after, 0);
      this.terminated = true;
      this.report(await readPodState(this.deps.runtime, this.uid), true);
    }
    this.schedule(this.deps.resyncMs);
  }

  /**
   * Dead container GC for a live pod (pkg/kubelet/kuberuntime/kuberuntime_gc.go with
   * maxPerPodContainer=1): per container name the newest attempt stays, plus one dead one
   * before it (lastState, logs --previous); older dead containers and old stopped sandboxes go.
   */
  private async collectGarbage(state: PodRuntimeState): Promise<void> {
    const byName = new Map<string, ContainerStatus[]>();
    for (const c of state.containers) byName.set(c.metadata.name, [...(byName.get(c.metadata.name) ?? []), c]);
    for (const list of byName.values()) {
      list.sort((a, b) => b.metadata.attempt - a.metadata.attempt || b.createdAt - a.createdAt);
      for (const dead of list.slice(2)) if (dead.state === 'CONTAINER_EXITED') await this.deps.runtime.removeContainer(dead.id);
    }
    const newest = newestSandbox(state);
    for (const sandbox of state.sandboxes) {
      if (sandbox === newest || sandbox.state === 'SANDBOX_READY') continue;
      if (!state.containers.some((c) => c.podSandboxId === sandbox.id)) await this.deps.runtime.removePodSandbox(sandbox.id);
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
      this.deps.log.warn({ pod: this.name, container: name, reason: waiting.reason, err: waiting.message }, 'container waiting');
    }
  }

  private graceSeconds(container?: V1Container): number {
    void container;
    const fromDelete = this.pod.metadata?.deletionGracePeriodSeconds;
    const grace = Math.max(0, fromDelete ?? this.pod.spec?.terminationGracePeriodSeconds ?? 30);
    return this.killRequest ? Math.min(grace, this.killRequest.graceSeconds) : grace;
  }

  private async syncPod(state: PodRuntimeState): Promise<void> {
    const actions = computePodActions(this.pod, state.sandboxes, state.containers);
    if (actions.killPod) await this.stopAll(state, this.graceSeconds());
    for (const kill of actions.containersToKill) {
      const status = state.containers.find((c) => c.id === kill.id);
      this.deps.log.info({ pod: this.name, container: kill.name, reason: kill.reason }, 'killing container');
      if (status) await this.killContainer(status, this.graceSeconds(), state);
      await this.deps.runtime.removeContainer(kill.id);
    }
    if (!actions.createSandbox && !actions.sandboxId) return;
    const objects = await this.deps.objects(this.pod);
    const node = this.deps.node();
    const baseContext: EnvContext = { nodeName: this.deps.runtimeConfig.nodeName, ...(node.hostIP ? { hostIP: node.hostIP } : {}), ...(node.allocatable ? { allocatable: node.allocatable } : {}) };
    let volumes: Map<string, string>;
    try {
      volumes = await setUpVolumes(this.pod, this.deps.rootDir, objects, baseContext);
    } catch (error) {
      const message = describeError(error);
      for (const c of actions.containersToStart) this.setWaiting(c.container.name, { reason: 'ContainerCreating', message });
      this.deps.log.warn({ pod: this.name, err: message }, 'volume setup failed');
      this.schedule(2000);
      return;
    }
    let sandboxId = actions.sandboxId;
    const sandboxConfig = buildSandboxConfig(this.pod, actions.sandboxAttempt, this.deps.runtimeConfig);
    if (actions.createSandbox) {
      sandboxId = await this.createSandbox(sandboxConfig, actions.containersToStart);
      if (!sandboxId) return;
    }
    const sandbox = await this.deps.runtime.podSandboxStatus(sandboxId!);
    const podIP = sandbox.network.ip || (this.pod.spec?.hostNetwork ? node.hostIP ?? '' : '');
    const context: EnvContext = { ...baseContext, podIP, podIPs: [sandbox.network.ip, ...sandbox.network.additionalIps.map((a) => a.ip)].filter(Boolean) };
    for (const start of actions.containersToStart) {
      await this.startContainer(start, sandboxId!, sandboxConfig, objects, context, volumes);
      // A started sidecar unblocks the next init container (or the app containers): go on.
      if (start.isInit && start.container.restartPolicy === 'Always' && !this.waiting.has(start.container.name)) this.dirty = true;
    }
  }

  private async createSandbox(config: PodSandboxConfig, starts: ContainerToStart[]): Promise<string | undefined> {
    const key = `${this.uid}_sandbox`;
    const now = this.deps.clock.now();
    if (this.deps.restartBackoff.isInBackOffSinceUpdate(key)) {
      this.schedule(this.deps.restartBackoff.remainingSinceUpdate(key));
      return undefined;
    }
    try {
      const id = await this.deps.runtime.runPodSandbox(config);
      this.deps.restartBackoff.reset(key);
      return id;
    } catch (error) {
      const message = `failed to create pod sandbox: ${describeError(error)}`;
      for (const c of starts) this.setWaiting(c.container.name, { reason: 'ContainerCreating', message });
      this.deps.log.warn({ pod: this.name, err: message }, 'sandbox creation failed');
      this.schedule(this.deps.restartBackoff.next(key, now));
      return undefined;
    }
  }

  /** Image pull per imagePullPolicy with ErrImagePull / ImagePullBackOff. Returns false on failure. */
  private async ensureImage(container: V1Container, sandboxConfig: PodSandboxConfig): Promise<boolean> {
    const image = container.image!;
    const present = (await this.deps.runtime.imageStatus({ image })) !== undefined;
    const decision = pullDecision(container.imagePullPolicy, image, present);
    if ('error' in decision) {
      this.setWaiting(container.name, { reason: decision.error, message: decision.message });
      return false;
    }
    if (!decision.pull) return true;
    const key = `${this.uid}_${image}`;
    const now = this.deps.clock.now();
    if (this.deps.imageBackoff.isInBackOffSinceUpdate(key)) {
      this.setWaiting(container.name, { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` });
      this.schedule(this.deps.imageBackoff.remainingSinceUpdate(key));
      return false;
    }
    try {
      await this.deps.runtime.pullImage({ image }, undefined, sandboxConfig);
      return true;
    } catch (error) {
      this.schedule(this.deps.imageBackoff.next(key, now));
      this.setWaiting(container.name, { reason: 'ErrImagePull', message: describeError(error) });
      return false;
    }
  }

  private async startContainer(
    start: ContainerToStart,
    sandboxId: string,
    sandboxConfig: PodSandboxConfig,
    objects: EnvObjects,
    context: EnvContext,
    volumes: Map<string, string>,
  ): Promise<void> {
    const { container } = start;
    const now = this.deps.clock.now();
    if (start.lastExit) {
      const key = backoffKey(this.uid, container.name, containerHash(container));
      const exitedAt = start.lastExit.finishedAt ? Math.floor(start.lastExit.finishedAt / 1e6) : now;
      if (this.deps.restartBackoff.isInBackOffSince(key, exitedAt)) {
        const delay = this.deps.restartBackoff.delay(key);
        this.setWaiting(container.name, { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${container.name} pod=${this.pod.metadata?.name}_${this.pod.metadata?.namespace}(${this.uid})` });
        this.schedule(this.deps.restartBackoff.remaining(key, exitedAt));
        return;
      }
      this.deps.restartBackoff.next(key, now);
    }
    if (!(await this.ensureImage(container, sandboxConfig))) return;
    let config;
    try {
      const { env } = buildEnvironment(this.pod, container, objects, context);
      const node = this.deps.node();
      const memoryRequest = parseQuantity(String((container.resources?.requests as Record<string, string> | undefined)?.memory ?? (container.resources?.limits as Record<string, string> | undefined)?.memory ?? '0'));
      const oom = oomScoreAdj(this.pod, memoryRequest, node.memoryCapacityBytes, isCriticalPod(this.pod, isStaticPod(this.pod)));
      config = buildContainerConfig(this.pod, container, start.attempt, { env, command: expandCommand(container.command, env), args: expandCommand(container.args, env), mounts: containerMounts(container, volumes), oomScoreAdj: oom }, this.deps.runtimeConfig);
    } catch (error) {
      if (error instanceof ContainerConfigError || error instanceof VolumeError) {
        this.setWaiting(container.name, { reason: 'CreateContainerConfigError', message: error.message });
        this.schedule(2000);
        return;
      }
      throw error;
    }
    let id: string;
    try {
      id = await this.deps.runtime.createContainer(sandboxId, config, sandboxConfig);
    } catch (error) {
      this.setWaiting(container.name, { reason: 'CreateContainerError', message: describeError(error) });
      this.schedule(2000);
      return;
    }
    try {
      await this.deps.runtime.startContainer(id);
    } catch (error) {
      this.setWaiting(container.name, { reason: 'RunContainerError', message: describeError(error) });
      this.schedule(2000);
      return;
    }
    this.waiting.delete(container.name);
    this.deps.log.info({ pod: this.name, container: container.name, attempt: start.attempt }, 'started container');
    await this.postStart(container, id, context.podIP ?? '');
  }

  private async postStart(container: V1Container, id: string, podIP: string): Promise<void> {
    const hook = container.lifecycle?.postStart;
    if (!hook) return;
    try {
      await runHook(hook, { runtime: this.deps.runtime, pod: this.pod, container, containerId: id, podIP, timeoutMs: this.graceSeconds() * 1000 || 30_000, allowNetwork: this.deps.podNetworkReachable !== false }, 'PostStart');
    } catch (error) {
      const message = error instanceof HookError ? error.message : describeError(error);
      this.deps.log.warn({ pod: this.name, container: container.name, err: message }, 'FailedPostStartHook: killing the container');
      await this.deps.runtime.stopContainer(id, 0);
    }
  }

  /** preStop (bounded by the grace period), then stop with what is left of it. */
  private async killContainer(status: ContainerStatus, graceSeconds: number, state: PodRuntimeState): Promise<void> {
    if (status.state !== 'CONTAINER_RUNNING' && status.state !== 'CONTAINER_CREATED') return;
    const spec = [...(this.pod.spec?.initContainers ?? []), ...(this.pod.spec?.containers ?? [])].find((c) => c.name === status.metadata.name);
    const started = this.deps.clock.now();
    const hook = spec?.lifecycle?.preStop;
    if (hook && status.state === 'CONTAINER_RUNNING' && graceSeconds > 0) {
      const sandbox = state.sandboxes.find((s) => s.id === status.podSandboxId);
      const podIP = sandbox?.network.ip || this.deps.node().hostIP || '127.0.0.1';
      try {
        await runHook(hook, { runtime: this.deps.runtime, pod: this.pod, container: spec!, containerId: status.id, podIP, timeoutMs: graceSeconds * 1000, allowNetwork: this.deps.podNetworkReachable !== false }, 'PreStop');
      } catch (error) {
        this.deps.log.warn({ pod: this.name, container: status.metadata.name, err: describeError(error) }, 'FailedPreStopHook');
      }
    }
    const left = Math.max(0, graceSeconds - Math.floor((this.deps.clock.now() - started) / 1000));
    await this.deps.runtime.stopContainer(status.id, left);
  }

  /** Stops every container (app containers first, then init/sidecars) and every sandbox. */
  private async stopAll(state: PodRuntimeState, graceSeconds: number): Promise<void> {
    const inits = new Set((this.pod.spec?.initContainers ?? []).map((c) => c.name));
    const live = state.containers.filter((c) => c.state === 'CONTAINER_RUNNING' || c.state === 'CONTAINER_CREATED');
    await Promise.all(live.filter((c) => !inits.has(c.metadata.name)).map((c) => this.killContainer(c, graceSeconds, state)));
    await Promise.all(live.filter((c) => inits.has(c.metadata.name)).map((c) => this.killContainer(c, Math.min(graceSeconds, 2), state)));
    for (const sandbox of state.sandboxes) if (sandbox.state === 'SANDBOX_READY') await this.deps.runtime.stopPodSandbox(sandbox.id);
  }

  /**
   * Removes the pod's cgroup in every QoS tier (an orphan's class is not known). The runtime
   * may still be tearing down a container's own cgroup inside it: retried for a few seconds.
   */
  private async removeCgroups(): Promise<void> {
    const parents = (['Guaranteed', 'Burstable', 'BestEffort'] as const).map((qos) => podCgroupParent(qos, this.uid, 'cgroupfs', this.deps.runtimeConfig.cgroupRoot));
    for (let attempt = 0; attempt < 20; attempt++) {
      let left = 0;
      for (const parent of parents) {
        try {
          await removePodCgroup(parent, this.deps.cgroupRoot);
          left += await countPodCgroups(parent, this.deps.cgroupRoot);
        } catch (error) {
          this.deps.log.warn({ pod: this.name, err: describeError(error) }, 'pod cgroup cleanup failed');
          return;
        }
      }
      if (left === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    this.deps.log.warn({ pod: this.name }, 'pod cgroup still busy; left in place');
  }

  private async terminate(): Promise<void> {
    const state = await readPodState(this.deps.runtime, this.uid);
    if (!this.terminated) {
      this.deps.log.info({ pod: this.name, graceSeconds: this.graceSeconds() }, 'terminating pod');
      await this.stopAll(state, this.graceSeconds());
      this.terminated = true;
    }
    const final = await readPodState(this.deps.runtime, this.uid);
    this.report(final, true);
    if (this.removed) {
      for (const sandbox of final.sandboxes) await this.deps.runtime.removePodSandbox(sandbox.id);
      for (const container of final.containers) await this.deps.runtime.removeContainer(container.id);
      await removePodDir(this.deps.rootDir, this.uid);
      if (this.deps.runtimeConfig.cgroupsPerQOS && this.deps.runtimeConfig.cgroupDriver === 'cgroupfs') await this.removeCgroups();
      this.stopped = true;
      clearTimeout(this.timer);
    }
    this.deps.onTerminated(this.pod, this.removed);
    for (const resolve of this.killRequest?.waiters.splice(0) ?? []) resolve();
    if (this.removed) this.finish?.();
  }
}
