/**
 * The agent (kubelet) wired together, as the kubelet's NewMainKubelet: pod sources → PodConfig
 * → PodDispatcher (admission, pod workers, probes, mirror pods); PLEG → Housekeeping (pod syncs,
 * orphans); the status manager and mirror pods report to the API; the node manager registers the
 * node and keeps its status and lease; the HTTP server serves the kubelet API. Each part owns its
 * behaviour; this file only builds the parts, connects them through narrow interfaces and starts
 * and stops them in order. Static pods depend on nothing but the runtime: the API being down only
 * delays reporting. stop() leaves the pods running (they are adopted on the next start, from the
 * runtime's labels).
 */
import { mkdir } from 'node:fs/promises';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '../lib/kube-client.js';
import type { ContainerRuntime } from '../cri/runtime.js';
import type { KubeletConfiguration } from '../lib/config/kubelet.js';
import type { Logger } from '../lib/log.js';
import { EventRecorder } from '../lib/events.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { podCgroupsFor } from './cgroups/pod-cgroups.js';
import { SystemdSlices } from './cgroups/systemd-slices.js';
import { kubepodsResourceConfig } from './cgroups/node-allocatable.js';
import { AgentEviction } from './eviction/node.js';
import { createNodeManager, type NodeManager } from './node/manager.js';
import { createShutdownManager, type ShutdownManager } from './node/shutdown.js';
import { Backoff } from './pods/backoff.js';
import { PodDispatcher } from './pods/dispatcher.js';
import { Housekeeping } from './pods/housekeeping.js';
import { Pleg } from './pods/pleg.js';
import { RuntimePodCache } from './pods/pod-cache.js';
import { apiPodObjects } from './pods/pod-objects.js';
import { createPodProbes } from './pods/probing.js';
import { defaultPodLogsDir, prepareRuntimeHost, runtimeConfigFor, type RuntimeConfigOptions } from './pods/runtime-config.js';
import { PodWorkers } from './pods/workers.js';
import { AllocationManager } from './pods/allocation.js';
import { AgentMetrics } from './server/metrics.js';
import { KubeletServer } from './server/server.js';
import { PodConfig } from './sources/pod-config.js';
import { PodSources } from './sources/sources.js';
import { ClientPodStatusApi, StatusManager } from './status/manager.js';
import { ClientMirrorPodApi, MirrorPodManager, MirrorPodSync } from './status/mirror-pods.js';
import type { ProbeManager } from '../probes/index.js';
import type { ServingTlsSource } from './certificates/node-certificates.js';

interface AgentOptions {
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
  /** Housekeeping period (network GC, orphaned pod directories), ms; default 30 000. */
  housekeepingMs?: number;
  /** A serving certificate that rotates (serverTLSBootstrap): agent/certificates/node-certificates.ts. */
  servingTls?: ServingTlsSource;
  /** The system D-Bus address for graceful node shutdown (default: the system bus). */
  busAddress?: string;
  /** Eviction manager timing (agent/eviction/node.ts); false: no eviction manager nor image GC. */
  eviction?: { housekeepingMs?: number; memoryPollMs?: number; imageGCSchedule?: string; manageTaints?: boolean; pinnedImages?: (repoTags: readonly string[]) => boolean } | false;
}

export class Agent {
  readonly podConfig: PodConfig;
  readonly workers: PodWorkers;
  readonly statusManager: StatusManager;
  readonly metrics = new AgentMetrics();
  readonly probes: ProbeManager;
  node?: NodeManager;
  server?: KubeletServer;
  readonly eviction?: AgentEviction;
  /** The agent's one event recorder (pods' probe and eviction events, the Node's). */
  readonly events: EventRecorder;
  /** Graceful node shutdown (shutdownGracePeriod > 0): agent/node/shutdown.ts. */
  readonly shutdown?: ShutdownManager;
  private readonly core: CoreV1Api;
  private readonly sources: PodSources;
  private readonly mirrors: MirrorPodSync;
  private readonly pleg: Pleg;
  private readonly clock: Clock;
  private readonly rtConfig: RuntimeConfigOptions;
  /** Allocated resources and in-place resize admission (KEP-1287), checkpointed under rootDir. */
  private readonly allocations: AllocationManager;
  /** The systemd cgroup driver's slices (cgroupDriver: systemd with cgroupsPerQOS). */
  private readonly slices?: SystemdSlices;

  constructor(private readonly options: AgentOptions) {
    const { config, kubeConfig, log, runtime, nodeName, rootDir } = options;
    const clock = (this.clock = options.clock ?? systemClock);
    this.rtConfig = runtimeConfigFor(config, nodeName, options.podLogsDir ?? defaultPodLogsDir(rootDir));
    if (this.rtConfig.cgroupsPerQOS && config.cgroupDriver === 'systemd') this.slices = new SystemdSlices(log.child({ part: 'cgroups' }), options.busAddress);
    const core = (this.core = kubeConfig.makeApiClient(CoreV1Api));
    const nodeIdentity = () => this.node?.identity;
    const desiredPods = () => this.podConfig.desiredPods().values();
    const reachable = options.podNetworkReachable !== false;
    this.events = new EventRecorder({ api: core, component: 'kubelet', host: () => nodeIdentity()?.name ?? nodeName, log: log.child({ part: 'events' }), clock, writeLimit: { qps: config.eventRecordQPS, burst: config.eventBurst } });
    this.statusManager = new StatusManager(new ClientPodStatusApi(core), log.child({ part: 'status' }), clock);
    const mirrorManager = new MirrorPodManager(new ClientMirrorPodApi(core), log.child({ part: 'mirror' }), (pod) => this.statusManager.resendFor(pod.metadata!.namespace ?? 'default', pod.metadata!.name!));
    this.mirrors = new MirrorPodSync({ manager: mirrorManager, pods: desiredPods, mirrors: () => this.podConfig.mirrorPods(), node: nodeIdentity, log });
    this.allocations = new AllocationManager({
      rootDir,
      log: log.child({ part: 'allocation' }),
      allocatable: () => this.node?.podFacts().allocatable,
      activePods: () => [...this.podConfig.desiredPods()].filter(([uid]) => this.workers.get(uid)?.isTerminated !== true).map(([, pod]) => pod),
    });
    const podCache = new RuntimePodCache();
    this.probes = createPodProbes({ runtime, podNetworkReachable: reachable, workers: () => this.workers, events: this.events, registry: this.metrics.registry, log: log.child({ part: 'probes' }) });
    this.workers = new PodWorkers({
      runtime: this.metrics.instrument(runtime),
      clock,
      restartBackoff: new Backoff(clock),
      imageBackoff: new Backoff(clock),
      runtimeConfig: this.rtConfig,
      rootDir,
      log: log.child({ part: 'pods' }),
      objects: apiPodObjects(core),
      node: () => this.node?.podFacts() ?? { memoryCapacityBytes: 0 },
      onStatus: (pod, status) => this.statusManager.set(pod, status),
      onTerminated: (pod, removed) => this.statusManager.terminated(pod, removed),
      resyncMs: config.syncFrequency,
      onPodStarted: (_pod, latencyMs) => this.metrics.podStartLatency.observe(latencyMs / 1000),
      podNetworkReachable: reachable,
      recordEvent: (event) => this.events.record(event),
      allocation: this.allocations,
      ...(this.rtConfig.cgroupsPerQOS ? { podCgroups: podCgroupsFor(config, desiredPods, log.child({ part: 'cgroups' }), () => kubepodsResourceConfig(this.node?.status?.capacity, config), this.slices) } : {}),
      probes: this.probes,
      podCache,
    });
    if (options.eviction !== false) {
      this.eviction = new AgentEviction({
        ...(options.eviction ?? {}),
        config,
        runtime,
        core,
        nodeName,
        rootDir,
        podLogsDir: this.rtConfig.podLogsDir,
        pods: {
          desired: desiredPods,
          terminated: (uid) => this.workers.get(uid)?.isTerminated,
          kill: (uid, grace, amend) => this.workers.get(uid)?.kill(grace, amend),
        },
        sourcesReady: () => this.sources.ready(),
        events: this.events,
        setStatus: (pod, status) => this.statusManager.set(pod, status),
        log: log.child({ part: 'eviction' }),
      });
    }
    const eviction = this.eviction;
    const shutdown = (this.shutdown = createShutdownManager(this, config, nodeName, options.busAddress, log));
    const dispatcher = new PodDispatcher({
      workers: this.workers,
      probes: this.probes,
      // Admission: the eviction manager, then the shutdown manager (NodeShutdown while shutting down).
      admit: (desired, known) => {
        const admitted = eviction ? eviction.admit(desired, known) : desired;
        return shutdown ? shutdown.admit(admitted, known) : admitted;
      },
      onDispatched: (admitted) => {
        this.metrics.desiredPods.set(admitted);
        void this.mirrors.trigger();
      },
      log,
    });
    this.podConfig = new PodConfig(dispatcher, clock);
    this.sources = new PodSources({ config, nodeName, kubeConfig, podConfig: this.podConfig, events: this.events, nodeUid: () => nodeIdentity()?.uid, manifestErrors: this.metrics.manifestErrors, log });
    const housekeeping = new Housekeeping({
      runtime,
      workers: this.workers,
      desired: (uid) => this.podConfig.desiredPods().has(uid),
      sourcesReady: () => this.sources.ready(),
      metrics: this.metrics,
      rootDir,
      ...(options.housekeepingMs !== undefined ? { periodMs: options.housekeepingMs } : {}),
      clock,
      log,
    });
    this.pleg = new Pleg(runtime, housekeeping, log.child({ part: 'pleg' }), options.plegPeriodMs ?? 1000, podCache);
  }

  async start(): Promise<void> {
    const { config, rootDir, log, runtime, nodeName, kubeConfig } = this.options;
    await mkdir(rootDir, { recursive: true });
    await prepareRuntimeHost(this.rtConfig, config, log);
    await this.allocations.load();
    if (config.enableServer) {
      this.server = new KubeletServer({ agent: this, runtime, config, nodeName, rootDir, log: log.child({ part: 'server' }), kubeConfig, ...(this.options.servingTls ? { servingTls: this.options.servingTls } : {}) });
      await this.server.start();
    }
    const eviction = this.eviction;
    this.node = await createNodeManager({
      nodeName,
      ...(this.options.nodeIP ? { nodeIP: this.options.nodeIP } : {}),
      rootDir,
      config,
      kubeletPort: this.server?.port ?? config.port,
      runtime,
      core: this.core,
      coordination: kubeConfig.makeApiClient(CoordinationV1Api),
      log: log.child({ part: 'node' }),
      clock: this.clock,
      ...(eviction ? { pressure: () => eviction.pressure() } : {}),
      // The kubelet's nodeRef: kind Node, UID the node's name (kubectl describe node looks for both).
      recordEvent: (reason, message) => this.events.record({ involvedObject: { apiVersion: 'v1', kind: 'Node', name: nodeName, uid: nodeName }, type: 'Normal', reason, message }),
      ...(this.shutdown ? { notReady: () => this.shutdown?.notReadyMessage() } : {}),
    });
    // Static pods first: they need nothing but the runtime.
    await this.sources.startStatic();
    this.statusManager.start();
    this.probes.start();
    this.pleg.start();
    // Not awaited: the runtime's image filesystem query (docker df) can be slow; pods need not wait.
    void eviction?.start().catch((error: unknown) => log.error({ err: error }, 'eviction manager and image GC not started'));
    // Not critical, as the kubelet: a failure is logged and the agent runs on.
    void this.shutdown?.start().catch((error: unknown) => log.error({ err: error }, 'Failed to start node shutdown manager'));
    // The API side: registration and the pod watch must not hold up the static pods.
    void this.node.start().then(() => this.mirrors.trigger());
    this.sources.startApi();
    this.mirrors.start();
    log.info({ node: nodeName, staticPodPath: config.staticPodPath || undefined, port: this.server?.port }, 'agent started');
  }

  async stop(): Promise<void> {
    await this.shutdown?.stop();
    await this.eviction?.stop();
    this.mirrors.stop();
    await this.sources.stop();
    await this.pleg.stop();
    this.probes.stop();
    this.node?.stop();
    await this.workers.stop();
    await this.statusManager.flush().catch((error: unknown) => this.options.log.warn({ err: error }, 'pod statuses not sent before stop'));
    await this.statusManager.stop();
    await this.server?.stop();
    this.slices?.close();
  }
}
