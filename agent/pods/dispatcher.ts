/**
 * From the desired set to the parts that act on it (the kubelet's HandlePodAdditions /
 * HandlePodUpdates / HandlePodRemoves): each change of PodConfig's desired set is admitted
 * (the eviction manager may reject new pods), handed to the pod workers, gives each pod its
 * probe workers (pods whose probes are invalid run without them, as the API server would have
 * rejected them) and drops the probes of pods that left; then mirror pods are reconciled.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../lib/log.js';
import type { ProbeManager } from '../../probes/index.js';
import type { PodConfigListener } from '../sources/pod-config.js';
import type { PodWorkers } from './workers.js';

interface PodDispatcherOptions {
  workers: Pick<PodWorkers, 'sync' | 'get'>;
  probes: Pick<ProbeManager, 'addPod' | 'cleanupPods'>;
  /** Admission (agent/eviction/node.ts): rejected pods never reach a worker. */
  admit?: (desired: ReadonlyMap<string, V1Pod>, known: (uid: string) => boolean) => ReadonlyMap<string, V1Pod>;
  /** After every dispatch, with the number of admitted pods (metrics, mirror pods). */
  onDispatched: (admitted: number) => void;
  log: Logger;
}

export class PodDispatcher implements PodConfigListener {
  constructor(private readonly options: PodDispatcherOptions) {}

  onPodsChanged(all: ReadonlyMap<string, V1Pod>): void {
    const { admit, workers } = this.options;
    const desired = admit ? admit(all, (uid) => workers.get(uid) !== undefined) : all;
    workers.sync(desired);
    this.syncProbes(desired);
    this.options.onDispatched(desired.size);
  }

  onDuplicate(pod: V1Pod, existing: V1Pod): void {
    this.options.log.warn({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, uid: pod.metadata?.uid, kept: existing.metadata?.uid }, 'duplicate pod name from another source ignored');
  }

  private syncProbes(desired: ReadonlyMap<string, V1Pod>): void {
    const { probes, log } = this.options;
    for (const pod of desired.values()) {
      try {
        probes.addPod(pod);
      } catch (error) {
        log.warn({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, err: error }, 'invalid probes: the pod runs without them');
      }
    }
    probes.cleanupPods(new Set(desired.keys()));
  }
}
