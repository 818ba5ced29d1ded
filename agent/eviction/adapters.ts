/**
 * The eviction manager's boundaries (eviction/types.ts, eviction/image-gc.ts) implemented over
 * the agent and the CRI, as the kubelet wires pkg/kubelet/eviction into itself:
 * - PodStatsSource: per container the CRI working set and writable layer; per pod the log
 *   directory, the local (disk) emptyDir volumes under <rootDir>/pods/<uid>/volumes and the
 *   process count of the pod's cgroup (kubelet summary API PodStats, reduced);
 * - ActivePodsSource: admitted pods whose worker has not terminated them (kubelet GetActivePods);
 * - PodKiller: killPodNow through the pod worker with the eviction grace period; the status
 *   becomes Failed/Evicted with the DisruptionTarget condition and goes to the API through the
 *   status manager (the pod object is NOT deleted: kubelet eviction leaves it Failed); a Warning
 *   event "Evicted" with the kubelet's annotations is recorded;
 * - ContainerReclaimer: removes the exited containers of pods that are terminated or unknown
 *   (kubelet containerGC.DeleteAllUnusedContainers with evictNonDeletedPods);
 * - ImageStore: the CRI ImageService; images in use come from ListContainers (running or exited).
 * Docs: https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/
 */
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CoreV1Api, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { kubeLabels, type ContainerRuntime } from '../../cri/runtime.js';
import { describeError, errnoCode, onErrno } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { readFsStats } from '../../eviction/signals.js';
import type { ImageInfo, ImageStore } from '../../eviction/image-gc.js';
import type {
  ActivePodsSource,
  ContainerReclaimer,
  ContainerUsage,
  EvictedPodStatus,
  EvictionEvent,
  PodKiller,
  PodStatsSource,
  PodUsage,
  PodUsageMap,
} from '../../eviction/types.js';
import { podLogDirectory } from '../pods/runtime-config.js';
import { podReference, type EventSink } from '../../lib/events.js';

/** Bytes and inodes used under a directory (du, without following links). Missing → zero. */
async function diskUsage(path: string): Promise<{ bytes: number; inodes: number }> {
  let bytes = 0;
  let inodes = 0;
  const walk = async (dir: string): Promise<void> => {
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch (error) {
      // Removed while walked (a pod directory being cleaned up): nothing to count.
      if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return;
      throw new Error(`cannot measure disk usage of ${dir}`, { cause: error });
    }
    for (const name of entries) {
      const path = join(dir, name);
      // Removed while walked: nothing to count.
      const info = await lstat(path).catch(onErrno(['ENOENT'], undefined));
      if (!info) continue;
      inodes++;
      bytes += info.blocks * 512;
      if (info.isDirectory()) await walk(path);
    }
  };
  await walk(path);
  return { bytes, inodes };
}

/** Process count of a cgroup subtree (cgroup v2 pids.current, v1 pids controller). */
async function pidsOf(cgroupRoot: string, parent: string): Promise<number | undefined> {
  for (const file of [join(cgroupRoot, parent, 'pids.current'), join(cgroupRoot, 'pids', parent, 'pids.current')]) {
    // Only one of the two layouts exists (v2 or v1): the other path is absent.
    const text = await readFile(file, 'utf8').catch(onErrno(['ENOENT'], undefined));
    if (text !== undefined && Number.isFinite(Number(text.trim()))) return Number(text.trim());
  }
  return undefined;
}

interface PodStatsOptions {
  runtime: Pick<ContainerRuntime, 'listContainerStats'>;
  rootDir: string;
  podLogsDir: string;
  /** The pod's cgroup parent (relative to the cgroup mount), when pod cgroups exist. */
  podCgroup?: (pod: V1Pod) => string | undefined;
  cgroupRoot?: string;
}

export class AgentPodStats implements PodStatsSource {
  constructor(private readonly options: PodStatsOptions) {}

  async podUsage(pods: readonly V1Pod[]): Promise<PodUsageMap> {
    const stats = await this.options.runtime.listContainerStats();
    const byPod = new Map<string, ContainerUsage[]>();
    for (const s of stats) {
      const uid = s.attributes.labels[kubeLabels.podUid];
      if (!uid) continue;
      byPod.set(uid, [
        ...(byPod.get(uid) ?? []),
        {
          name: s.attributes.metadata.name,
          memoryWorkingSetBytes: s.memory.workingSetBytes,
          ...(s.writableLayer ? { rootfsUsedBytes: s.writableLayer.usedBytes, ...(s.writableLayer.inodesUsed !== undefined ? { rootfsInodesUsed: s.writableLayer.inodesUsed } : {}) } : {}),
        },
      ]);
    }
    const result = new Map<string, PodUsage>();
    for (const pod of pods) {
      const uid = pod.metadata?.uid;
      if (!uid) continue;
      const containers = byPod.get(uid) ?? [];
      const logs = await diskUsage(podLogDirectory(pod, this.options.podLogsDir));
      // Logs are per pod directory here: charged to the first container (rank sums per pod).
      if (containers[0]) containers[0] = { ...containers[0], logsUsedBytes: logs.bytes, logsInodesUsed: logs.inodes };
      const emptyDirs = await diskUsage(join(this.options.rootDir, 'pods', uid, 'volumes', 'kubernetes.io~empty-dir'));
      const cgroup = this.options.podCgroup?.(pod);
      const processCount = cgroup ? await pidsOf(this.options.cgroupRoot ?? '/sys/fs/cgroup', cgroup) : undefined;
      result.set(uid, { containers, localVolumesUsedBytes: emptyDirs.bytes, localVolumesInodesUsed: emptyDirs.inodes, ...(processCount !== undefined ? { processCount } : {}) });
    }
    return result;
  }
}

/** What the killer and the active pod list need from the agent. */
export interface AgentPods {
  /** The desired pods (all sources, admitted). */
  desired(): Iterable<V1Pod>;
  /** Undefined when no worker handles the pod; true once its worker terminated it. */
  terminated(uid: string): boolean | undefined;
  /** Kills in place through the pod worker (PodWorker.kill); undefined when no worker has it. */
  kill(uid: string, graceSeconds: number, amend: (status: V1PodStatus) => V1PodStatus): Promise<void> | undefined;
}

export class AgentActivePods implements ActivePodsSource {
  constructor(private readonly pods: AgentPods) {}

  async activePods(): Promise<V1Pod[]> {
    return [...this.pods.desired()].filter((pod) => this.pods.terminated(pod.metadata?.uid ?? '') === false);
  }
}

/** The status amendment of an evicted pod (kubelet killPodNow's PodStatusFunc in eviction). */
export function evictedStatus(status: V1PodStatus, evicted: EvictedPodStatus): V1PodStatus {
  const types = new Set(evicted.conditions.map((c) => c.type));
  return { ...status, phase: evicted.phase, reason: evicted.reason, message: evicted.message, conditions: [...(status.conditions ?? []).filter((c) => !types.has(c.type)), ...evicted.conditions] };
}

interface PodKillerOptions {
  pods: AgentPods;
  events: EventSink;
  log: Logger;
  /** Extra wait beyond the grace period before giving up on the kill (agent stopping); ms. */
  slackMs?: number;
}

export class AgentPodKiller implements PodKiller {
  constructor(private readonly options: PodKillerOptions) {}

  async evictPod(pod: V1Pod, gracePeriodSeconds: number, status: EvictedPodStatus, event: EvictionEvent): Promise<void> {
    const { pods, events, log } = this.options;
    const uid = pod.metadata?.uid ?? '';
    const name = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    const killed = pods.kill(uid, gracePeriodSeconds, (current) => evictedStatus(current, status));
    if (!killed) throw new Error(`cannot evict pod ${name}: no pod worker has it`);
    events.record({ involvedObject: podReference(pod), type: event.type, reason: event.reason, message: event.message, annotations: event.annotations });
    // The kubelet waits for the pod's cleanup before the next eviction; bounded so stop() cannot hang.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), gracePeriodSeconds * 1000 + (this.options.slackMs ?? 30_000))));
    const outcome = await Promise.race([killed.then(() => 'done' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') log.warn({ pod: name, gracePeriodSeconds }, 'evicted pod did not finish terminating in time');
  }
}

export class AgentContainerReclaimer implements ContainerReclaimer {
  constructor(
    private readonly runtime: Pick<ContainerRuntime, 'listContainers' | 'removeContainer'>,
    private readonly pods: Pick<AgentPods, 'terminated'>,
    private readonly sourcesReady: () => boolean,
    private readonly log: Logger,
  ) {}

  async deleteAllUnusedContainers(): Promise<void> {
    if (!this.sourcesReady()) return;
    for (const container of await this.runtime.listContainers()) {
      if (container.state !== 'CONTAINER_EXITED') continue;
      const uid = container.labels[kubeLabels.podUid];
      // A live pod keeps its dead containers (restart history, logs --previous).
      if (!uid || this.pods.terminated(uid) === false) continue;
      try {
        await this.runtime.removeContainer(container.id);
      } catch (error) {
        this.log.warn({ container: container.id, err: error }, 'cannot remove dead container');
      }
    }
  }
}

/** ImageStore over the CRI. `pinned` images (the sandbox image) are never collected. */
export class CriImageStore implements ImageStore {
  constructor(
    private readonly runtime: Pick<ContainerRuntime, 'listImages' | 'removeImage' | 'imageFsInfo' | 'listContainers'>,
    private readonly pinned: (repoTags: readonly string[]) => boolean = () => false,
  ) {}

  async listImages(): Promise<ImageInfo[]> {
    return (await this.runtime.listImages()).map((image) => ({ id: image.id, sizeBytes: image.size, repoTags: image.repoTags, pinned: image.pinned || this.pinned(image.repoTags) }));
  }

  async imagesInUse(): Promise<Set<string>> {
    return new Set((await this.runtime.listContainers()).map((c) => c.imageRef).filter(Boolean));
  }

  removeImage(id: string): Promise<void> {
    return this.runtime.removeImage({ image: id });
  }

  async imageFsInfo(): Promise<{ capacityBytes: number; availableBytes: number }> {
    const [fs] = await this.runtime.imageFsInfo();
    if (!fs) throw new Error('the runtime reported no image filesystem');
    const reading = await readFsStats(fs.fsId.mountpoint);
    return { capacityBytes: reading.capacityBytes, availableBytes: reading.availableBytes };
  }
}
