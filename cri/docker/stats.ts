/**
 * Container stats from Docker's one-shot stats and inspect(size):
 * - CPU: cumulative usage in ns; usageNanoCores is computed between two samples of this
 *   runtime, as the kubelet's CRI stats provider does (cri_stats_provider.go getAndUpdateContainerUsageNanoCores);
 * - memory working set = usage − inactive_file (cgroup v2 "inactive_file", v1
 *   "total_inactive_file"), floored at 0, like cAdvisor/kubelet
 *   (https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/#eviction-signals);
 * - writable layer: SizeRw from inspect with size=true.
 */
import type Docker from 'dockerode';
import { nowNs, type ContainerStats, type FilesystemUsage } from '../runtime.js';
import type { RuntimeContext } from './context.js';
import { criError } from './errors.js';
import { fromDockerLabels, parseName } from './naming.js';

interface DockerStats {
  read?: string;
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
}

/** The pure part: Docker's stats JSON → CRI cpu/memory (without usageNanoCores). */
export function usageFromDockerStats(stats: DockerStats, memoryLimit: number, timestamp: number): Pick<ContainerStats, 'cpu' | 'memory'> {
  const memory = stats.memory_stats ?? {};
  const inner = memory.stats ?? {};
  const usage = memory.usage ?? 0;
  const inactive = inner.inactive_file ?? inner.total_inactive_file ?? 0;
  const workingSet = Math.max(0, usage - inactive);
  return {
    cpu: { timestamp, usageCoreNanoSeconds: stats.cpu_stats?.cpu_usage?.total_usage ?? 0 },
    memory: {
      timestamp,
      workingSetBytes: workingSet,
      usageBytes: usage,
      rssBytes: inner.anon ?? inner.total_rss ?? inner.rss,
      pageFaults: inner.pgfault ?? inner.total_pgfault,
      majorPageFaults: inner.pgmajfault ?? inner.total_pgmajfault,
      ...(memoryLimit > 0 ? { availableBytes: Math.max(0, memoryLimit - workingSet) } : {}),
    },
  };
}

export class StatsCollector {
  private readonly previous = new Map<string, { timestamp: number; usage: number }>();

  constructor(private readonly context: RuntimeContext) {}

  async stats(id: string, rootMount: string): Promise<ContainerStats> {
    const container = this.context.docker.getContainer(id);
    let info: Docker.ContainerInspectInfo & { SizeRw?: number };
    let raw: DockerStats;
    try {
      info = await container.inspect({ size: true } as Docker.ContainerInspectOptions);
      raw = info.State.Running ? ((await container.stats({ stream: false, 'one-shot': true } as { stream: false })) as DockerStats) : {};
    } catch (error) {
      throw criError(`failed to get stats of container ${id.slice(0, 12)}`, error, { containerId: id });
    }
    const timestamp = nowNs();
    const { cpu, memory } = usageFromDockerStats(raw, info.HostConfig.Memory ?? 0, timestamp);
    const before = this.previous.get(id);
    if (before && timestamp > before.timestamp && cpu.usageCoreNanoSeconds >= before.usage) {
      cpu.usageNanoCores = Math.round(((cpu.usageCoreNanoSeconds - before.usage) / (timestamp - before.timestamp)) * 1e9);
    }
    this.previous.set(id, { timestamp, usage: cpu.usageCoreNanoSeconds });
    const parsed = parseName(info.Name);
    const writableLayer: FilesystemUsage = { timestamp, fsId: { mountpoint: rootMount }, usedBytes: info.SizeRw ?? 0 };
    return {
      attributes: {
        id: info.Id,
        metadata: parsed?.container ?? { name: info.Name.replace(/^\//, ''), attempt: 0 },
        ...fromDockerLabels(info.Config.Labels, this.context.scopeLabels),
      },
      cpu,
      memory,
      writableLayer,
    };
  }

  forget(id: string): void {
    this.previous.delete(id);
  }
}
