/**
 * Node-pressure eviction and image GC inside the agent (pkg/kubelet/kubelet.go wiring of the
 * eviction manager and the image GC manager): start()/stop() with the agent, pressure() for the
 * node status setters, admission of new pods, and the pressure taints.
 *
 * Taints: in a cluster the kubelet only reports the conditions; the node lifecycle controller
 * (TaintNodesByCondition, pkg/controller/nodelifecycle) turns MemoryPressure/DiskPressure/
 * PIDPressure into NoSchedule taints node.kubernetes.io/{memory,disk,pid}-pressure. knode's
 * control plane has no such controller, so the agent does that one job for its own Node (option
 * `manageTaints`, on by default): it adds/removes only those three taint keys, keeps every other
 * taint, and uses resourceVersion so a concurrent writer is never overwritten (retried next sync).
 *
 * Admission (kubelet HandlePodAdditions → canAdmitPod → rejectPod): a new pod the eviction
 * manager rejects is never started; its status becomes phase Failed, reason Evicted, message
 * "Pod was rejected: <message>", with a Warning event, and it stays rejected. A pod that is
 * already Failed/Succeeded in the API when first seen (e.g. evicted before an agent restart) is
 * not started either.
 */
import type { CoreV1Api, V1Pod, V1PodStatus, V1Taint } from '@kubernetes/client-node';
import { PatchStrategy, setHeaderOptions } from '../../lib/kube-client.js';
import type { ContainerRuntime } from '../../cri/runtime.js';
import { pauseImage } from '../../cri/local-images.js';
import type { KubeletConfiguration } from '../../lib/config/kubelet.js';
import { describeError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { ImageGCManager, imageGCPolicyFromKubelet } from '../../eviction/image-gc.js';
import { EvictionManager, evictionConfigFromKubelet } from '../../eviction/manager.js';
import { NodeSignals } from '../../eviction/signals.js';
import { conditionToTaintKey, taintsFor } from '../../eviction/thresholds.js';
import { podQosClass } from '../../lib/k8s/qos.js';
import type { NodeConditionSink, PressureCondition } from '../../eviction/types.js';
import { AgentActivePods, AgentContainerReclaimer, AgentPodKiller, AgentPodStats, CriImageStore, type AgentPods } from './adapters.js';
import type { PressureInput } from '../node/status.js';
import { podCgroupPath } from '../../lib/k8s/cgroups.js';
import { isStaticPod } from '../../lib/k8s/pod-source.js';
import { podReference, type EventSink } from '../../lib/events.js';

interface AgentEvictionOptions {
  config: KubeletConfiguration;
  runtime: ContainerRuntime;
  core: CoreV1Api;
  /** Evicted and admission-rejection events (lib/events.ts). */
  events: EventSink;
  nodeName: string;
  rootDir: string;
  podLogsDir: string;
  pods: AgentPods;
  sourcesReady: () => boolean;
  /** Records a rejected pod's status (the status manager). */
  setStatus: (pod: V1Pod, status: V1PodStatus) => void;
  log: Logger;
  /** Eviction housekeeping period (kubelet: 10 s) and fast memory poll (0 disables); ms. */
  housekeepingMs?: number;
  memoryPollMs?: number;
  /** Image GC schedule (node-cron, six fields); default every 5 minutes. */
  imageGCSchedule?: string;
  /** Patch the pressure taints on the Node (see the header); default true. */
  manageTaints?: boolean;
  /**
   * Images never collected besides the runtime's pinned ones, by their tags; default: the
   * sandbox image (the kubelet pins it: CRI Image.pinned). Tests on a shared engine pin the rest.
   */
  pinnedImages?: (repoTags: readonly string[]) => boolean;
}

const pressureKeys = new Set(Object.values(conditionToTaintKey));

export class AgentEviction implements NodeConditionSink {
  manager?: EvictionManager;
  imageGC?: ImageGCManager;
  private current: ReadonlySet<PressureCondition> = new Set();
  /** Pressure taint keys last applied; none at start (registration sets registerWithTaints). */
  private appliedTaints = '';
  private tainting?: Promise<void>;
  private readonly admitted = new Set<string>();
  private readonly rejected = new Set<string>();

  constructor(private readonly options: AgentEvictionOptions) {}

  private starting?: Promise<void>;
  private stopped = false;

  /** Starts the eviction manager and image GC (asks the runtime for the image filesystem first). */
  start(): Promise<void> {
    this.stopped = false;
    this.starting = this.startParts();
    return this.starting;
  }

  private async startParts(): Promise<void> {
    const { config, runtime, rootDir, log, pods } = this.options;
    const [imageFs] = await runtime.imageFsInfo();
    if (this.stopped) return;
    this.imageGC = new ImageGCManager(
      new CriImageStore(runtime, this.options.pinnedImages ?? ((tags) => tags.includes(pauseImage))),
      imageGCPolicyFromKubelet(config),
      { logger: log.child({ part: 'image-gc' }), ...(this.options.imageGCSchedule ? { schedule: this.options.imageGCSchedule } : {}) },
    );

    this.manager = new EvictionManager(evictionConfigFromKubelet(config, this.options.housekeepingMs ?? 10_000, this.options.memoryPollMs ?? 1_000), {
      observations: new NodeSignals({ rootDir, imageFsPath: imageFs?.fsId.mountpoint ?? rootDir }),
      podStats: new AgentPodStats({
        runtime,
        rootDir,
        podLogsDir: this.options.podLogsDir,
        ...(config.cgroupsPerQOS ? { podCgroup: (pod: V1Pod) => podCgroupPath(podQosClass(pod), pod.metadata?.uid ?? '', config.cgroupDriver, config.cgroupRoot) } : {}),
      }),
      activePods: new AgentActivePods(pods),
      killer: new AgentPodKiller({ pods, events: this.options.events, log }),
      conditions: this,
      imageReclaimer: this.imageGC,
      containerReclaimer: new AgentContainerReclaimer(runtime, pods, this.options.sourcesReady, log),
      logger: log,
    });
    this.imageGC.start();
    this.manager.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // A failed start was reported to start()'s caller (agent.ts logs it); stopping goes on.
    await this.starting?.catch(() => undefined);
    await this.manager?.stop();
    await this.imageGC?.stop();
    await this.tainting;
  }

  /** For the node status setters (MemoryPressure/DiskPressure/PIDPressure). */
  pressure(): PressureInput {
    return { memory: this.current.has('MemoryPressure'), disk: this.current.has('DiskPressure'), pid: this.current.has('PIDPressure') };
  }

  setPressureConditions(conditions: ReadonlySet<PressureCondition>, at: number): void {
    this.current = new Set(conditions);
    if (this.options.manageTaints === false) return;
    const wanted = taintsFor(conditions, at);
    const key = wanted.map((t) => t.key).join(',');
    if (key === this.appliedTaints || this.tainting) return;
    this.tainting = this.applyTaints(wanted)
      .then(() => void (this.appliedTaints = key))
      .catch((error: unknown) => this.options.log.warn({ err: error }, 'cannot update the node pressure taints; retrying on the next sync'))
      .finally(() => (this.tainting = undefined));
  }

  private async applyTaints(wanted: V1Taint[]): Promise<void> {
    const { core, nodeName } = this.options;
    const node = await core.readNode({ name: nodeName });
    const current = node.spec?.taints ?? [];
    const others = current.filter((t) => !pressureKeys.has(t.key));
    const existing = current.filter((t) => pressureKeys.has(t.key));
    const matches = (a: V1Taint, b: V1Taint) => a.key === b.key && a.effect === b.effect;
    if (existing.length === wanted.length && wanted.every((w) => existing.some((t) => matches(t, w)))) return;
    const taints = [...others, ...wanted.map((w) => existing.find((t) => matches(t, w)) ?? w)];
    await core.patchNode(
      { name: nodeName, body: { metadata: { resourceVersion: node.metadata?.resourceVersion }, spec: { taints } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /**
   * Pods the workers may run: new pods pass admission once; rejected ones stay out (and Failed).
   * `known(uid)`: the pod already has a worker (admitted before).
   */
  admit(desired: ReadonlyMap<string, V1Pod>, known: (uid: string) => boolean): Map<string, V1Pod> {
    const result = new Map<string, V1Pod>();
    for (const [uid, pod] of desired) {
      if (this.rejected.has(uid)) continue;
      // A pod already terminal in the API (evicted or rejected before an agent restart, or
      // completed) is not started again (kubelet pod_workers.go UpdatePod: terminal phase → terminated).
      if (!known(uid) && !this.admitted.has(uid) && !isStaticPod(pod) && (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded')) {
        this.rejected.add(uid);
        continue;
      }
      if (known(uid) || this.admitted.has(uid) || !this.manager) {
        this.admitted.add(uid);
        result.set(uid, pod);
        continue;
      }
      const decision = this.manager.admit(pod);
      if (decision.admit) {
        this.admitted.add(uid);
        result.set(uid, pod);
      } else {
        this.rejected.add(uid);
        this.reject(pod, decision.reason, decision.message);
      }
    }
    for (const uid of [...this.admitted, ...this.rejected]) {
      if (!desired.has(uid)) {
        this.admitted.delete(uid);
        this.rejected.delete(uid);
      }
    }
    return result;
  }

  private reject(pod: V1Pod, reason: 'Evicted', message: string): void {
    const name = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    this.options.log.warn({ pod: name, reason, message }, 'pod rejected by admission');
    this.options.setStatus(pod, { phase: 'Failed', reason, message: `Pod was rejected: ${message}`, qosClass: podQosClass(pod) });
    this.options.events.record({ involvedObject: podReference(pod), type: 'Warning', reason, message });
  }
}
