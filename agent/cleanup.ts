/**
 * `knode agent --cleanup`: removes what the agent made on this node — its pod sandboxes and
 * containers in Docker (those carrying the CRI type label, within KNODE_RUNTIME_SCOPE when set)
 * and their pod cgroups in every QoS tier (named as the agent names them, lib/k8s/cgroups.ts). The
 * kubelet has no such flag; this is knode's per-component teardown that `knode down --purge`
 * calls. Containers are removed with force: their network namespace goes with the pause container.
 */
import Docker from 'dockerode';
import { socketPathOf } from '../cri/docker/factory.js';
import { dockerLabels } from '../cri/docker/naming.js';
import { kubeLabels, type Labels } from '../cri/runtime.js';
import { ConfigError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { removePodCgroup } from './cgroups/cgroups.js';
import { podCgroupParent, podCgroupPath } from '../lib/k8s/cgroups.js';
import { SystemdSlices } from './cgroups/systemd-slices.js';
import type { QosClass } from '../lib/k8s/qos.js';

interface AgentCleanupOptions {
  /** unix:///var/run/docker.sock by default. */
  containerRuntimeEndpoint?: string;
  /** KNODE_RUNTIME_SCOPE as labels: only containers carrying them are removed. */
  scopeLabels?: Labels;
  /** KubeletConfiguration cgroupRoot. */
  cgroupRoot?: string;
  /** KubeletConfiguration cgroupDriver: with systemd, the pods' slices are stopped too. */
  cgroupDriver?: 'cgroupfs' | 'systemd';
  /** Where the cgroup tree is mounted; default /sys/fs/cgroup. */
  mountRoot?: string;
  log: Logger;
}

interface AgentCleanupReport {
  containers: number;
  podCgroups: number;
}

/** KNODE_RUNTIME_SCOPE ("key=value") as labels; unset → no scope. */
export function scopeLabels(text: string | undefined): Labels | undefined {
  if (!text) return undefined;
  const index = text.indexOf('=');
  if (index <= 0) throw new ConfigError(`KNODE_RUNTIME_SCOPE must be "key=value", got "${text}"`);
  return { [text.slice(0, index)]: text.slice(index + 1) };
}

const tiers: QosClass[] = ['Guaranteed', 'Burstable', 'BestEffort'];

export async function cleanupAgent(options: AgentCleanupOptions): Promise<AgentCleanupReport> {
  const docker = new Docker({ socketPath: socketPathOf(options.containerRuntimeEndpoint ?? 'unix:///var/run/docker.sock'), timeout: 30_000 });
  const label = [dockerLabels.type, ...Object.entries(options.scopeLabels ?? {}).map(([key, value]) => `${key}=${value}`)];
  const containers = await docker.listContainers({ all: true, filters: { label } });
  const uids = new Set(containers.map((c) => c.Labels[kubeLabels.podUid]).filter((uid): uid is string => Boolean(uid)));
  for (const container of containers) {
    await docker
      .getContainer(container.Id)
      .remove({ force: true })
      .catch((error: unknown) => options.log.warn({ err: error, container: container.Id.slice(0, 12) }, 'cannot remove container'));
  }
  let podCgroups = 0;
  const driver = options.cgroupDriver ?? 'cgroupfs';
  const slices = driver === 'systemd' && uids.size > 0 ? new SystemdSlices(options.log) : undefined;
  try {
    for (const uid of uids) {
      if (!/^[0-9a-zA-Z_-]+$/.test(uid)) continue;
      for (const qos of tiers) {
        await slices?.stop(podCgroupParent(qos, uid, 'systemd')).catch((error: unknown) => options.log.warn({ err: error, uid }, 'cannot stop pod slice'));
        const parent = podCgroupPath(qos, uid, driver, options.cgroupRoot ?? '');
        podCgroups += await removePodCgroup(parent, options.mountRoot).catch((error: unknown) => {
          options.log.warn({ err: error, cgroup: parent }, 'cannot remove pod cgroup');
          return 0;
        });
      }
    }
  } finally {
    slices?.close();
  }
  return { containers: containers.length, podCgroups };
}
