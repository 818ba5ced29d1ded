/**
 * The pod container manager (pkg/kubelet/cm/pod_container_manager_linux.go EnsureExists,
 * qos_container_manager_linux.go): before a pod's sandbox is created, its cgroup
 * <cgroupRoot>/kubepods[/<tier>]/pod<uid> exists with the pod-level limits of
 * cgroups/pod-resources.ts, and the QoS tier cgroups exist with their CPU shares; the runtime then
 * places the sandbox and containers inside it (CgroupParent). Removed once the pod is gone.
 * With the systemd driver the same cgroups are the slices kubepods[-<tier>]-pod<uid>.slice,
 * started and stopped through systemd (cgroups/systemd-slices.ts), their files written as well.
 * Only the pod's own cgroup and the kubepods tier cgroups are written, never the root's.
 */
import { dirname } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../lib/log.js';
import type { KubeletConfiguration } from '../../lib/config/kubelet.js';
import { describeError } from '../../lib/errors.js';
import { cgroupVersion, countPodCgroups, ensureCgroup, removePodCgroup } from './cgroups.js';
import { cgroupWrites, podResourceConfig, qosTierCpuShares, sharesToWeight, type CgroupWrite, type PodResourceConfig, type PodResourceOptions } from './pod-resources.js';
import { podCgroupParent, podCgroupPath } from '../../lib/k8s/cgroups.js';
import type { SystemdSlices } from './systemd-slices.js';
import { podQosClass, type QosClass } from '../../lib/k8s/qos.js';

export interface PodCgroups {
  /** Creates the pod's cgroup with its limits (idempotent). Throws when it cannot. */
  ensure(pod: V1Pod): Promise<void>;
  /** Removes the pod's cgroup in whichever QoS tier it is; false when it stayed busy. */
  remove(uid: string): Promise<boolean>;
}

interface CgroupfsPodCgroupsOptions extends PodResourceOptions {
  /** KubeletConfiguration cgroupRoot ('' = the top of the tree; cgroupfs driver). */
  cgroupRoot: string;
  /** The systemd driver: pod and tier cgroups are slices started through systemd. */
  slices?: SystemdSlices;
  /** Where the cgroup tree is mounted; default /sys/fs/cgroup. */
  mountRoot?: string;
  /** The pods the node runs, for the burstable tier's CPU shares. */
  activePods?: () => Iterable<V1Pod>;
  /** The kubepods cgroup's own resources (node allocatable, cgroups/node-allocatable.ts). */
  kubepods?: () => PodResourceConfig | undefined;
  log: Logger;
  /** Retries of a busy removal (250 ms apart); default 20. */
  removeAttempts?: number;
}

/** Pod-level cgroups with the pod's limits as a KubeletConfiguration asks for them (either driver). */
export function podCgroupsFor(
  config: Pick<KubeletConfiguration, 'cgroupRoot' | 'cpuCFSQuota' | 'cpuCFSQuotaPeriod' | 'podPidsLimit'>,
  activePods: () => Iterable<V1Pod>,
  log: Logger,
  kubepods?: () => PodResourceConfig | undefined,
  slices?: SystemdSlices,
): CgroupfsPodCgroups {
  return new CgroupfsPodCgroups({
    ...(kubepods ? { kubepods } : {}),
    ...(slices ? { slices } : {}),
    cgroupRoot: config.cgroupRoot,
    cpuCFSQuota: config.cpuCFSQuota,
    cpuCFSQuotaPeriodMs: config.cpuCFSQuotaPeriod,
    podPidsLimit: config.podPidsLimit,
    activePods,
    log,
  });
}

const allTiers: QosClass[] = ['Guaranteed', 'Burstable', 'BestEffort'];
/** How long tier cgroups written with the same values are trusted (the kubelet's periodic QoS update). */
const tierRewriteMs = 60_000;

export class CgroupfsPodCgroups implements PodCgroups {
  private version?: Promise<1 | 2 | undefined>;
  private warnedMissing = false;
  /** systemd: the node allocatable the tier slices were last started with. */
  private slicedTiers?: string;
  /** What the tier cgroups were last written with, and when (ms, monotonic). */
  private writtenTiers?: { key: string; at: number };

  constructor(private readonly options: CgroupfsPodCgroupsOptions) {}

  private get mountRoot(): string {
    return this.options.mountRoot ?? '/sys/fs/cgroup';
  }

  private get driver(): 'cgroupfs' | 'systemd' {
    return this.options.slices ? 'systemd' : 'cgroupfs';
  }

  /** The cgroup's directory in the tree. */
  private parent(qos: QosClass, uid: string): string {
    return podCgroupPath(qos, uid, this.driver, this.options.cgroupRoot);
  }

  /** systemd: the slice unit of a pod (or, with uid '', of its QoS tier). */
  private slice(qos: QosClass, uid: string): string {
    if (uid) return podCgroupParent(qos, uid, 'systemd');
    return qos === 'Guaranteed' ? 'kubepods.slice' : `kubepods-${qos === 'Burstable' ? 'burstable' : 'besteffort'}.slice`;
  }

  async ensure(pod: V1Pod): Promise<void> {
    const uid = pod.metadata?.uid;
    if (!uid || !/^[0-9a-zA-Z_-]+$/.test(uid)) throw new Error(`cannot create a pod cgroup for uid "${uid ?? ''}"`);
    this.version ??= cgroupVersion(this.mountRoot);
    const version = await this.version;
    if (version === undefined) {
      if (!this.warnedMissing) this.options.log.warn({ mountRoot: this.mountRoot }, 'no cgroup tree mounted: pod cgroups are not created');
      this.warnedMissing = true;
      return;
    }
    const qos = podQosClass(pod);
    const path = this.parent(qos, uid);
    const resources = podResourceConfig(pod, this.options);
    const writes = cgroupWrites(resources, version);
    try {
      await this.ensureTiers(version);
      await this.options.slices?.ensure(this.slice(qos, uid), `Kubernetes pod ${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''} (${uid})`, resources, version);
      await ensureCgroup(this.mountRoot, version, path, writes);
    } catch (error) {
      throw new Error(`failed to ensure the pod cgroup ${path}`, { cause: error });
    }
    this.options.log.debug({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, cgroup: path, writes }, 'pod cgroup ensured');
  }

  /** kubepods with node allocatable, kubepods/burstable and kubepods/besteffort with their CPU shares. */
  private async ensureTiers(version: 1 | 2): Promise<void> {
    const kubepods = this.options.kubepods?.();
    const slices = this.options.slices;
    const tiersKey = JSON.stringify(kubepods ?? null);
    if (slices && this.slicedTiers !== tiersKey) {
      // the kubelet's QoS container manager makes kubepods.slice and the two tier slices first
      // (once, and again when node allocatable changes: not a D-Bus round trip per pod start)
      await slices.ensure(this.slice('Guaranteed', ''), 'Kubernetes pods', kubepods, version);
      for (const tier of ['Burstable', 'BestEffort'] as const) await slices.ensure(this.slice(tier, ''), `Kubernetes ${tier} pods`, undefined, version);
      this.slicedTiers = tiersKey;
    }
    const shares = qosTierCpuShares(this.options.activePods?.() ?? []);
    // The same values written less than a minute ago are not written again: a pod start waits on
    // these writes. The kubelet's QoS container manager rewrites them on pod starts and once a
    // minute (qos_container_manager_linux.go periodicQOSCgroupUpdateInterval); changed values
    // (a Burstable pod's requests, node allocatable) are written at once here too.
    const key = JSON.stringify([tiersKey, shares]);
    const now = performance.now();
    if (this.writtenTiers?.key === key && now - this.writtenTiers.at < tierRewriteMs) return;
    const cpu = (value: number): CgroupWrite[] =>
      version === 1 ? [{ controller: 'cpu', file: 'cpu.shares', value: String(value) }] : [{ controller: 'cpu', file: 'cpu.weight', value: String(sharesToWeight(value)) }];
    // Side by side: each is on the critical path of every pod start, and they touch different
    // files (a tier's delegation writes kubepods' cgroup.subtree_control too, idempotently).
    await Promise.all([
      kubepods ? ensureCgroup(this.mountRoot, version, dirname(this.parent('Guaranteed', 'x')), cgroupWrites(kubepods, version)) : undefined,
      ensureCgroup(this.mountRoot, version, dirname(this.parent('Burstable', 'x')), cpu(shares.burstable)),
      ensureCgroup(this.mountRoot, version, dirname(this.parent('BestEffort', 'x')), cpu(shares.besteffort)),
    ]);
    this.writtenTiers = { key, at: now };
  }

  /**
   * Removes the pod's cgroup in every QoS tier (an orphan's class is not known). The runtime
   * may still be tearing down a container's own cgroup inside it: retried for a few seconds.
   */
  async remove(uid: string): Promise<boolean> {
    const parents = allTiers.map((qos) => this.parent(qos, uid));
    try {
      for (const qos of allTiers) await this.options.slices?.stop(this.slice(qos, uid));
    } catch (error) {
      this.options.log.warn({ uid, err: error }, 'pod slice cleanup failed');
      return false;
    }
    for (let attempt = 0; attempt < (this.options.removeAttempts ?? 20); attempt++) {
      let left = 0;
      for (const parent of parents) {
        try {
          await removePodCgroup(parent, this.mountRoot);
          left += await countPodCgroups(parent, this.mountRoot);
        } catch (error) {
          this.options.log.warn({ uid, err: error }, 'pod cgroup cleanup failed');
          return false;
        }
      }
      if (left === 0) return true;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    this.options.log.warn({ uid }, 'pod cgroup still busy; left in place');
    return false;
  }
}
