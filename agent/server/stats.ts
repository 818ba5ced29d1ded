/**
 * /stats/summary in the shape of the kubelet's Summary API (k8s.io/kubelet/pkg/apis/stats/v1alpha1),
 * which metrics-server reads: node cpu/memory/fs, and per pod and container cpu, memory, rootfs
 * and logs. Node CPU comes from /proc/stat (usageNanoCores from the delta since the previous
 * sample), memory from systeminformation (workingSet = total − available), fs from statfs.
 */
import { readFile, statfs } from 'node:fs/promises';
import si from 'systeminformation';
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { kubeLabels, type ContainerStats, type RuntimeService } from '../../cri/runtime.js';
import { onErrno } from '../../lib/errors.js';

const userHz = 100;

async function readNodeCpuNs(): Promise<number> {
  const text = await readFile('/proc/stat', 'utf8');
  const fields = text.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
  const busy = (fields[0] ?? 0) + (fields[1] ?? 0) + (fields[2] ?? 0) + (fields[5] ?? 0) + (fields[6] ?? 0) + (fields[7] ?? 0);
  return (busy * 1e9) / userHz;
}

interface Timed {
  time: string;
  [field: string]: unknown;
}

/** The parts of the Summary API that /metrics/resource (resource-metrics.ts) reads. */
export interface Summary {
  node: { cpu: Timed & { usageCoreNanoSeconds: number }; memory: Timed & { workingSetBytes: number } } & Record<string, unknown>;
  pods: ({
    podRef: { name: string; namespace: string; uid: string };
    cpu: Timed & { usageCoreNanoSeconds: number };
    memory: Timed & { workingSetBytes: number };
    containers: ({ name: string; startTime: string; cpu: Timed & { usageCoreNanoSeconds: number }; memory: Timed & { workingSetBytes: number } } & Record<string, unknown>)[];
  } & Record<string, unknown>)[];
}

interface CpuSample {
  time: number;
  ns: number;
}

function cpuOf(stats: ContainerStats[]): { usageCoreNanoSeconds: number; usageNanoCores: number } {
  return {
    usageCoreNanoSeconds: stats.reduce((s, c) => s + c.cpu.usageCoreNanoSeconds, 0),
    usageNanoCores: stats.reduce((s, c) => s + (c.cpu.usageNanoCores ?? 0), 0),
  };
}

export class StatsProvider {
  private previous?: CpuSample;

  constructor(
    private readonly runtime: Pick<RuntimeService, 'listContainerStats'>,
    private readonly nodeName: string,
    private readonly rootDir: string,
    private readonly startTime = new Date(),
  ) {}

  private async nodeCpu(now: number): Promise<{ usageCoreNanoSeconds: number; usageNanoCores: number }> {
    const ns = await readNodeCpuNs();
    const previous = this.previous;
    this.previous = { time: now, ns };
    const nanoCores = previous && now > previous.time ? Math.round(((ns - previous.ns) / (now - previous.time)) * 1e6) : 0;
    return { usageCoreNanoSeconds: Math.round(ns), usageNanoCores: Math.max(0, nanoCores) };
  }

  async summary(pods: { pod: V1Pod; status?: V1PodStatus }[]): Promise<Summary> {
    const now = Date.now();
    const time = new Date(now).toISOString();
    const [cpu, mem, fs, stats] = await Promise.all([this.nodeCpu(now), si.mem(), statfs(this.rootDir).catch(onErrno(['ENOENT'], undefined)) /* no root dir yet: no fs stats */, this.runtime.listContainerStats()]);
    const byPod = new Map<string, ContainerStats[]>();
    for (const s of stats) {
      const uid = s.attributes.labels[kubeLabels.podUid];
      if (!uid) continue;
      byPod.set(uid, [...(byPod.get(uid) ?? []), s]);
    }
    const fsStats = fs
      ? { time, availableBytes: fs.bavail * fs.bsize, capacityBytes: fs.blocks * fs.bsize, usedBytes: (fs.blocks - fs.bfree) * fs.bsize, inodesFree: fs.ffree, inodes: fs.files, inodesUsed: fs.files - fs.ffree }
      : { time };
    return {
      node: {
        nodeName: this.nodeName,
        startTime: this.startTime.toISOString(),
        cpu: { time, ...cpu },
        memory: { time, availableBytes: mem.available, usageBytes: mem.total - mem.free, workingSetBytes: mem.total - mem.available, rssBytes: mem.active, pageFaults: 0, majorPageFaults: 0 },
        fs: fsStats,
        runtime: { imageFs: fsStats },
        systemContainers: [],
      },
      pods: pods.map(({ pod, status }) => {
        const uid = pod.metadata!.uid!;
        const containers = byPod.get(uid) ?? [];
        const started = (name: string) => status?.containerStatuses?.find((c) => c.name === name)?.state?.running?.startedAt;
        const podStart = status?.startTime ? new Date(status.startTime).toISOString() : time;
        return {
          podRef: { name: pod.metadata!.name!, namespace: pod.metadata!.namespace ?? 'default', uid },
          startTime: podStart,
          containers: containers.map((c) => ({
            name: c.attributes.metadata.name,
            // Not yet in the status: the pod's start, which stays put (metrics-server compares
            // start times between scrapes to detect restarts).
            startTime: started(c.attributes.metadata.name) ? new Date(started(c.attributes.metadata.name)!).toISOString() : podStart,
            cpu: { time, usageCoreNanoSeconds: c.cpu.usageCoreNanoSeconds, usageNanoCores: c.cpu.usageNanoCores ?? 0 },
            memory: { time, workingSetBytes: c.memory.workingSetBytes, usageBytes: c.memory.usageBytes ?? c.memory.workingSetBytes, rssBytes: c.memory.rssBytes ?? 0, ...(c.memory.availableBytes !== undefined ? { availableBytes: c.memory.availableBytes } : {}) },
            rootfs: { time, usedBytes: c.writableLayer?.usedBytes ?? 0 },
            logs: { time },
          })),
          cpu: { time, ...cpuOf(containers) },
          memory: { time, workingSetBytes: containers.reduce((s, c) => s + c.memory.workingSetBytes, 0), usageBytes: containers.reduce((s, c) => s + (c.memory.usageBytes ?? c.memory.workingSetBytes), 0) },
          'ephemeral-storage': { time, usedBytes: containers.reduce((s, c) => s + (c.writableLayer?.usedBytes ?? 0), 0) },
        };
      }),
    };
  }
}
