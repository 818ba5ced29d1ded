/**
 * The agent (kubelet) assembled: pod sources → PodConfig → PodWorkers over the runtime; PLEG
 * turns runtime changes into pod syncs; the status manager and mirror pod manager report to the
 * API; the node manager registers the node and keeps its status and lease; the HTTP server
 * serves the kubelet API. Static pods depend on nothing but the runtime: the API being down
 * only delays reporting. start()/stop(); stop() leaves the pods running (they are adopted on the
 * next start, from the runtime's labels).
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, KubeConfig, type V1ConfigMap, type V1Pod, type V1Secret } from '@kubernetes/client-node';
import type { ContainerRuntime } from '../cri/runtime.js';
import type { KubeletConfiguration } from '../lib/config/kubelet.js';
import type { Logger } from '../lib/log.js';
import { describeError } from '../lib/errors.js';
import { EventRecorder, podReference } from '../lib/events.js';
import { parseQuantity } from '../lib/quantity.js';
import { ApiPodSource, apiSourceName } from './sources/api.js';
import { Backoff } from './pods/backoff.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { referencedObjects, type EnvObjects } from './pods/env.js';
import type { ManifestError } from './sources/manifest.js';
import { MirrorPodManager, ClientMirrorPodApi } from './status/mirror-pods.js';
import { NodeManager, gatherNodeFacts } from './node/manager.js';
import { PodConfig } from './sources/pod-config.js';
import { PodWorkers } from './pods/workers.js';
import { CgroupfsPodCgroups } from './cgroups/pod-cgroups.js';
import { Pleg } from './pods/pleg.js';
import { parseResolvConf, type RuntimeConfigOptions } from './pods/runtime-config.js';
import { fileSourceName, StaticPodDirSource } from './sources/file.js';
import { httpSourceName, StaticPodUrlSource } from './sources/url.js';
import { ClientPodStatusApi, StatusManager, apiErrorCode } from './status/manager.js';
import { isStaticPod } from '../lib/k8s/pod-source.js';
import { removePodDir } from './volumes/volumes.js';
import { AgentMetrics } from './server/metrics.js';
import { ProbeManager, HandlerProber, executorFromRuntime, probeUserAgent, type Prober, type ProbeListener } from '../probes/index.js';
import { kubeletVersion } from './node/manager.js';
import { KubeletServer } from './server/server.js';
import { AgentEviction } from './eviction/node.js';
import { createShutdownManager, type ShutdownManager } from './node/shutdown.js';

/**
 * The kubelet gives itself oomScoreAdj (default -999). Where lowering a score is not allowed,
 * that fails; then the agent's current score is the floor for its containers too.
 */
export async function applyOwnOomScoreAdj(wanted: number, log: Logger): Promise<number> {
  const file = '/proc/self/oom_score_adj';
  try {
    await writeFile(file, String(wanted));
    return -1000;
  } catch (error) {
    const current = Number((await readFile(file, 'utf8').catch(() => '0')).trim()) || 0;
    log.warn({ wanted, current, err: error }, 'cannot lower oom_score_adj here; container OOM scores are clamped to the current one');
    return current;
  }
}

export interface AgentOptions {
  nodeName: string;
  config: KubeletConfiguration;
  kubeConfig: KubeConfig;
  runtime: ContainerRuntime;
  rootDir: string;
  /** Where pod log directories go (the kubelet's /var/log/pods); default <rootDir>/pod-logs. */
  podLogsDir?: string;
  nodeIP?: string;
  log: Logger;
  clock?: Clock;
  /** PLEG relist period (ms); default 1000. */
  plegPeriodMs?: number;
  /**
   * False when pods live in another network namespace than the agent (CNI in a node netns):
   * network probes and httpGet hooks then fail clearly instead of sending packets from here.
   */
  podNetworkReachable?: boolean;
  /** Housekeeping period (orphaned pod directories), ms; default 30 000. */
  housekeepingMs?: number;
  /** Eviction manager timing (agent/eviction/node.ts); false: no eviction manager nor image GC. */
  /** The system D-Bus address for graceful node shutdown (default: the system bus). */
  busAddress?: string;
  eviction?: { housekeepingMs?: number; memoryPollMs?: number; imageGCSchedule?: string; manageTaints?: boolean; pinnedImages?: (repoTags: readonly string[]) => boolean } | false;
}

/** Probes know containers by their status containerID ("docker://<id>"); the runtime by the bare id. */
function runtimeIdsOnly(runtime: ContainerRuntime): Pick<ContainerRuntime, 'execSync'> {
  return { execSync: (id, cmd, timeoutSeconds) => runtime.execSync(id.replace(/^[a-z]+:\/\//, ''), cmd, timeoutSeconds) };
}

/** Refuses network probes when the pod network is not reachable from the agent's namespace. */
function guardedProber(inner: Prober, reachable: boolean): Prober {
  if (reachable) return inner;
  return {
    probe: async (spec, context) =>
      spec.handler.kind === 'exec' ? inner.probe(spec, context) : { result: 'failure', output: `${spec.handler.kind} probes are disabled: the pod network is not reachable from the agent's network namespace` },
  };
}

export class Agent {
  readonly podConfig: PodConfig;
  readonly workers: PodWorkers;
  readonly statusManager: StatusManager;
  readonly metrics = new AgentMetrics();
  readonly probes: ProbeManager;
  node?: NodeManager;
  server?: KubeletServer;
  private readonly core: CoreV1Api;
  private readonly mirrors: MirrorPodManager;
  private readonly pleg: Pleg;
  private readonly sources: { stop(): Promise<void> }[] = [];
  private readonly expectedSources = new Set<string>();
  private readonly reportedSources = new Set<string>();
  private mirrorTimer?: NodeJS.Timeout;
  private readonly clock: Clock;
  private nodeFacts: { hostIP?: string; memoryCapacityBytes: number } = { memoryCapacityBytes: 0 };
  private readonly rtConfig: RuntimeConfigOptions;
  readonly eviction?: AgentEviction;
  /** The agent's one event recorder (pods' probe and eviction events, the Node's). */
  readonly events: EventRecorder;
  /** Graceful node shutdown (shutdownGracePeriod > 0): agent/node/shutdown.ts. */
  readonly shutdown?: ShutdownManager;

  constructor(private readonly options: AgentOptions) {
    this.clock = options.clock ?? systemClock;
    this.rtConfig = this.runtimeConfig();
    const { kubeConfig, log, runtime } = options;
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.events = new EventRecorder({ api: this.core, component: 'kubelet', host: () => this.node?.identity?.name ?? options.nodeName, log: log.child({ part: 'events' }), clock: this.clock });
    this.statusManager = new StatusManager(new ClientPodStatusApi(this.core), log.child({ part: 'status' }), this.clock);
    this.mirrors = new MirrorPodManager(new ClientMirrorPodApi(this.core), log.child({ part: 'mirror' }), (pod) => this.statusManager.resendFor(pod.metadata!.namespace ?? 'default', pod.metadata!.name!));
    this.podConfig = new PodConfig(
      {
        onPodsChanged: (all) => {
          // Admission (eviction manager): rejected pods never reach a worker.
          const admitted = this.eviction ? this.eviction.admit(all, (uid) => this.workers.get(uid) !== undefined) : all;
          const desired = this.shutdown ? this.shutdown.admit(admitted, (uid) => this.workers.get(uid) !== undefined) : admitted;
          this.workers.sync(desired);
          this.syncProbes(desired);
          this.metrics.desiredPods.set(desired.size);
          void this.reconcileMirrors();
        },
        onDuplicate: (pod, existing) => log.warn({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, uid: pod.metadata?.uid, kept: existing.metadata?.uid }, 'duplicate pod name from another source ignored'),
      },
      this.clock,
    );
    this.workers = new PodWorkers({
      runtime: this.metrics.instrument(runtime),
      clock: this.clock,
      restartBackoff: new Backoff(this.clock),
      imageBackoff: new Backoff(this.clock),
      runtimeConfig: this.rtConfig,
      rootDir: options.rootDir,
      log: log.child({ part: 'pods' }),
      objects: (pod) => this.objects(pod),
      node: () => ({ ...(this.nodeFacts.hostIP ? { hostIP: this.nodeFacts.hostIP } : {}), memoryCapacityBytes: this.nodeFacts.memoryCapacityBytes, ...(this.allocatable() ? { allocatable: this.allocatable()! } : {}) }),
      onStatus: (pod, status) => this.statusManager.set(pod, status),
      onTerminated: (pod, removed) => this.statusManager.terminated(pod, removed),
      resyncMs: options.config.syncFrequency,
      onPodStarted: (_pod, latencyMs) => this.metrics.podStartLatency.observe(latencyMs / 1000),
      podNetworkReachable: options.podNetworkReachable !== false,
      ...(this.rtConfig.cgroupsPerQOS ? { podCgroups: this.podCgroups(log) } : {}),
      probes: {
        ready: (uid, name, id) => this.probes.ready(uid, name, id),
        started: (uid, name, id) => this.probes.started(uid, name, id),
      },
    });
    const listener: ProbeListener = {
      resultChanged: (update) => this.workers.podEvent(update.podUid),
      killContainer: (request) => {
        log.info({ pod: `${request.namespace}/${request.podName}`, container: request.containerName, reason: request.reason }, request.message);
        this.workers.get(request.podUid)?.killForProbe(request.containerId, request.gracePeriodSeconds);
      },
      event: (event) => {
        log.info({ pod: `${event.namespace}/${event.podName}`, container: event.containerName, reason: event.reason }, event.message);
        this.events.record({
          involvedObject: podReference({ metadata: { name: event.podName, namespace: event.namespace, uid: event.podUid } }, event.containerName),
          type: event.type,
          reason: event.reason,
          message: event.message,
        });
      },
    };
    this.probes = new ProbeManager({
      prober: guardedProber(new HandlerProber(executorFromRuntime(runtimeIdsOnly(runtime)), probeUserAgent(kubeletVersion)), options.podNetworkReachable !== false),
      listener,
      statusProvider: {
        getPodStatus: (uid) => this.workers.get(uid)?.status,
        isPodTerminationRequested: (uid) => Boolean(this.workers.get(uid)?.currentPod.metadata?.deletionTimestamp),
      },
      registry: this.metrics.registry,
      logger: log.child({ part: 'probes' }),
    });
    this.pleg = new Pleg(
      runtime,
      {
        onPodChanged: (uid) => this.workers.podEvent(uid),
        onRelist: (uids, ms) => {
          this.metrics.plegRelist.observe(ms / 1000);
          if (this.sourcesReady()) {
            this.workers.cleanOrphans(uids);
            void this.housekeeping(uids);
          }
          this.metrics.updateRunning(this.workers.statuses());
        },
      },
      log.child({ part: 'pleg' }),
      options.plegPeriodMs ?? 1000,
    );
    if (options.eviction !== false) {
      this.eviction = new AgentEviction({
        ...(options.eviction ?? {}),
        config: options.config,
        runtime,
        core: this.core,
        nodeName: options.nodeName,
        rootDir: options.rootDir,
        podLogsDir: this.rtConfig.podLogsDir,
        pods: {
          desired: () => this.podConfig.desiredPods().values(),
          terminated: (uid) => this.workers.get(uid)?.isTerminated,
          kill: (uid, grace, amend) => this.workers.get(uid)?.kill(grace, amend),
        },
        sourcesReady: () => this.sourcesReady(),
        events: this.events,
        setStatus: (pod, status) => this.statusManager.set(pod, status),
        log: log.child({ part: 'eviction' }),
      });
    }
    this.shutdown = createShutdownManager(this, options.config, options.nodeName, options.busAddress, log);
  }

  private syncProbes(desired: ReadonlyMap<string, V1Pod>): void {
    for (const pod of desired.values()) {
      try {
        this.probes.addPod(pod);
      } catch (error) {
        this.options.log.warn({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, err: error }, 'invalid probes: the pod runs without them');
      }
    }
    this.probes.cleanupPods(new Set(desired.keys()));
  }

  private allocatable(): { cpu?: string; memory?: string; 'ephemeral-storage'?: string } | undefined {
    const alloc = this.node?.status?.allocatable;
    return alloc ? { cpu: alloc.cpu, memory: alloc.memory, 'ephemeral-storage': alloc['ephemeral-storage'] } : undefined;
  }

  private runtimeConfig(): RuntimeConfigOptions {
    const { config, rootDir, nodeName } = this.options;
    return {
      nodeName,
      podLogsDir: this.options.podLogsDir ?? join(rootDir, 'pod-logs'),
      clusterDomain: config.clusterDomain,
      clusterDNS: config.clusterDNS,
      hostDNS: { servers: [], searches: [], options: [] },
      cgroupDriver: config.cgroupDriver,
      cgroupRoot: config.cgroupRoot,
      // Pod cgroups under /kubepods/<tier>/pod<uid> with the cgroupfs driver (Docker creates them);
      // with the systemd driver the slices would need systemd, which knode does not drive.
      cgroupsPerQOS: config.cgroupsPerQOS && config.cgroupDriver === 'cgroupfs',
      cpuCFSQuota: config.cpuCFSQuota,
      cpuCFSQuotaPeriodMs: config.cpuCFSQuotaPeriod,
      podPidsLimit: config.podPidsLimit,
    };
  }

  /** Pod-level cgroups with the pod's limits (cgroupsPerQOS, cgroupfs driver): cgroups/pod-cgroups.ts. */
  private podCgroups(log: Logger): CgroupfsPodCgroups {
    const { config } = this.options;
    return new CgroupfsPodCgroups({
      cgroupRoot: config.cgroupRoot,
      cpuCFSQuota: config.cpuCFSQuota,
      cpuCFSQuotaPeriodMs: config.cpuCFSQuotaPeriod,
      podPidsLimit: config.podPidsLimit,
      activePods: () => this.podConfig.desiredPods().values(),
      log: log.child({ part: 'cgroups' }),
    });
  }

  private lastHousekeeping = 0;

  /**
   * Orphaned pod directories (kubelet cleanupOrphanedPodDirs): <rootDir>/pods/<uid> of a pod that
   * no source wants, no worker handles and the runtime no longer has, e.g. after the agent was
   * killed in the middle of a termination. Throttled to housekeepingMs.
   */
  private async housekeeping(runtimeUids: ReadonlySet<string>): Promise<void> {
    const now = Date.now();
    if (now - this.lastHousekeeping < (this.options.housekeepingMs ?? 30_000)) return;
    this.lastHousekeeping = now;
    // The network of sandboxes that are no longer ready (e.g. died with a runtime restart) is
    // released (libcni GCNetworkList; issue 25 item 8).
    await this.options.runtime.garbageCollectNetwork?.().catch((error: unknown) => this.options.log.warn({ err: error }, 'pod network garbage collection failed'));
    const dir = join(this.options.rootDir, 'pods');
    const entries = await readdir(dir).catch(() => [] as string[]);
    for (const uid of entries) {
      if (runtimeUids.has(uid) || this.podConfig.desiredPods().has(uid) || this.workers.get(uid)) continue;
      try {
        await removePodDir(this.options.rootDir, uid);
        this.options.log.info({ uid }, 'removed orphaned pod directory');
      } catch (error) {
        this.options.log.warn({ uid, err: error }, 'cannot remove orphaned pod directory');
      }
    }
  }

  /** Whether every configured source delivered its first set (orphan cleanup waits for this). */
  sourcesReady(): boolean {
    return [...this.expectedSources].every((s) => this.reportedSources.has(s));
  }

  private onSourcePods(source: string, pods: V1Pod[]): void {
    this.options.log.debug({ source, pods: pods.length }, 'pod source update');
    this.reportedSources.add(source);
    this.podConfig.set(source, pods);
  }

  private onManifestError(error: ManifestError): void {
    this.metrics.manifestErrors.inc();
    this.options.log.error({ err: error, source: error.source }, 'static pod manifest rejected');
    const identity = this.node?.identity;
    this.events.record({
      involvedObject: { apiVersion: 'v1', kind: 'Node', name: this.options.nodeName, ...(identity ? { uid: identity.uid } : {}) },
      type: 'Warning',
      reason: 'FailedStaticPodManifest',
      message: error.message,
    });
  }

  /** configMaps and secrets an API pod refers to (static pods may not refer to API objects). */
  private async objects(pod: V1Pod): Promise<EnvObjects> {
    const configMaps = new Map<string, V1ConfigMap>();
    const secrets = new Map<string, V1Secret>();
    if (!isStaticPod(pod)) {
      const namespace = pod.metadata?.namespace ?? 'default';
      const refs = referencedObjects(pod);
      const read = async <T>(fetch: () => Promise<T>): Promise<T | undefined> => {
        try {
          return await fetch();
        } catch (error) {
          if (apiErrorCode(error) === 404) return undefined;
          throw new Error(`cannot read objects of pod ${namespace}/${pod.metadata?.name}: ${describeError(error)}`, { cause: error });
        }
      };
      for (const name of refs.configMaps) {
        const cm = await read(() => this.core.readNamespacedConfigMap({ name, namespace }));
        if (cm) configMaps.set(name, cm);
      }
      for (const name of refs.secrets) {
        const secret = await read(() => this.core.readNamespacedSecret({ name, namespace }));
        if (secret) secrets.set(name, secret);
      }
    }
    return { configMap: (name) => configMaps.get(name), secret: (name) => secrets.get(name) };
  }

  private staticPods(): V1Pod[] {
    return [...this.podConfig.desiredPods().values()].filter((pod) => isStaticPod(pod));
  }

  private reconcileMirrors(): Promise<void> {
    return this.mirrors
      .reconcile(
        () => this.staticPods(),
        () => this.podConfig.mirrorPods(),
        () => this.node?.identity,
      )
      .catch((error: unknown) => this.options.log.warn({ err: error }, 'mirror pod reconcile failed'));
  }

  async start(): Promise<void> {
    const { config, rootDir, log, runtime, nodeName } = this.options;
    await mkdir(rootDir, { recursive: true });
    const hostDNS = parseResolvConf(await readFile(config.resolvConf, 'utf8').catch(() => ''));
    this.rtConfig.hostDNS = hostDNS;
    this.rtConfig.minOomScoreAdj = await applyOwnOomScoreAdj(config.oomScoreAdj, log);
    if (config.enableServer) {
      this.server = new KubeletServer({ agent: this, runtime, config, nodeName, rootDir, log: log.child({ part: 'server' }), kubeConfig: this.options.kubeConfig });
      await this.server.start();
    }
    // The Node's daemonEndpoints carry the port actually served (port 0 picks one).
    const kubeletPort = this.server?.port ?? config.port;
    const facts = await gatherNodeFacts({ nodeName, ...(this.options.nodeIP ? { nodeIP: this.options.nodeIP } : {}), rootDir, maxPods: config.maxPods, kubeletPort, runtime });
    this.nodeFacts = { ...(facts.internalIP ? { hostIP: facts.internalIP } : {}), memoryCapacityBytes: facts.memoryBytes };
    this.node = new NodeManager({
      core: this.core,
      coordination: this.options.kubeConfig.makeApiClient(CoordinationV1Api),
      runtime,
      facts,
      config: { nodeLabels: config.nodeLabels, registerWithTaints: config.registerWithTaints, kubeReserved: config.kubeReserved, systemReserved: config.systemReserved, evictionHard: config.evictionHard },
      statusUpdateMs: config.nodeStatusUpdateFrequency,
      statusReportMs: config.nodeStatusReportFrequency,
      leaseDurationSeconds: config.nodeLeaseDurationSeconds,
      log: log.child({ part: 'node' }),
      clock: this.clock,
      ...(this.eviction ? { pressure: () => this.eviction!.pressure() } : {}),
      ...(this.shutdown ? { notReady: () => this.shutdown?.notReadyMessage() } : {}),
    });
    // Static pods first: they need nothing but the runtime.
    const listener = { onPods: (source: string, pods: V1Pod[]) => this.onSourcePods(source, pods), onManifestError: (_source: string, error: ManifestError) => this.onManifestError(error) };
    if (config.staticPodPath) {
      this.expectedSources.add(fileSourceName);
      const source = new StaticPodDirSource({ dir: config.staticPodPath, nodeName, checkFrequencyMs: config.fileCheckFrequency, listener, log: log.child({ part: 'file-source' }) });
      this.sources.push(source);
      await source.start();
    }
    if (config.staticPodURL) {
      this.expectedSources.add(httpSourceName);
      const headers = config.staticPodURLHeader;
      const source = new StaticPodUrlSource({ url: config.staticPodURL, headers, nodeName, checkFrequencyMs: config.httpCheckFrequency, listener, log: log.child({ part: 'http-source' }) });
      this.sources.push(source);
      await source.start();
    }
    this.statusManager.start();
    this.probes.start();
    this.pleg.start();
    // Not awaited: the runtime's image filesystem query (docker df) can be slow; pods need not wait.
    void this.eviction?.start().catch((error: unknown) => log.error({ err: error }, 'eviction manager and image GC not started'));
    // Not critical, as the kubelet: a failure is logged and the agent runs on.
    void this.shutdown?.start().catch((error: unknown) => log.error({ err: error }, 'Failed to start node shutdown manager'));
    // The API side: registration and the pod watch must not hold up the static pods.
    void this.node.start().then(() => this.reconcileMirrors());
    this.expectedSources.add(apiSourceName);
    const api = new ApiPodSource({ kubeConfig: this.options.kubeConfig, nodeName, onPods: (source, pods) => this.onSourcePods(source, pods), log: log.child({ part: 'api-source' }) });
    this.sources.push(api);
    void api.start();
    this.mirrorTimer = setInterval(() => void this.reconcileMirrors(), 10_000);
    this.mirrorTimer.unref();
    log.info({ node: nodeName, staticPodPath: config.staticPodPath || undefined, port: this.server?.port }, 'agent started');
  }

  async stop(): Promise<void> {
    await this.shutdown?.stop();
    await this.eviction?.stop();
    clearInterval(this.mirrorTimer);
    for (const source of this.sources) await source.stop();
    await this.pleg.stop();
    this.probes.stop();
    this.node?.stop();
    await this.workers.stop();
    // The status manager logs what it could not send; stopping goes on regardless.
    await this.statusManager.flush().catch(() => undefined);
    await this.statusManager.stop();
    await this.server?.stop();
  }

  /** Memory capacity in bytes (for the stats summary). */
  memoryCapacity(): number {
    return this.nodeFacts.memoryCapacityBytes || parseQuantity(this.node?.status?.capacity?.memory ?? '0');
  }
}
