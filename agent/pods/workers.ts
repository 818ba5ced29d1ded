/**
 * The set of pod workers (pkg/kubelet/pod_workers.go): one per desired pod UID; a UID that
 * leaves the desired set is terminated and removed. Pods found in the runtime that no source
 * wants (orphans, e.g. after a restart of the agent when a pod was deleted meanwhile) are killed
 * too — but only once every source has delivered its first set (kubelet: HandlePodCleanups
 * waits for sourcesReady), so a restart never kills pods it simply has not heard about yet.
 */
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { kubeLabels } from '../../cri/runtime.js';
import { describeError } from '../../lib/errors.js';
import { PodWorker, type PodWorkerDeps } from './worker.js';

export class PodWorkers {
  private readonly workers = new Map<string, PodWorker>();
  private readonly finishing = new Set<Promise<void>>();
  private stopped = false;
  private changes = 0;
  private readonly deps: PodWorkerDeps;

  constructor(deps: PodWorkerDeps) {
    // Every status a worker reports changes what statuses() returns.
    this.deps = {
      ...deps,
      onStatus: (pod, status) => {
        this.changes++;
        deps.onStatus(pod, status);
      },
    };
  }

  /**
   * Grows whenever statuses() may answer differently (a pod added, updated or removed, a status
   * reported): readers that serve it often (the kubelet API's /pods) keep their rendering of it
   * while this stays the same.
   */
  get revision(): number {
    return this.changes;
  }

  /** Applies a new desired set (UID → pod). */
  sync(desired: ReadonlyMap<string, V1Pod>): void {
    if (this.stopped) return;
    this.changes++;
    for (const [uid, pod] of desired) {
      const worker = this.workers.get(uid);
      if (worker) worker.update(pod);
      else this.add(uid, pod);
    }
    for (const [uid, worker] of this.workers) if (!desired.has(uid)) this.removeWorker(uid, worker);
  }

  private add(uid: string, pod: V1Pod): PodWorker {
    const worker = new PodWorker(uid, pod, this.deps);
    this.workers.set(uid, worker);
    worker.requestSync();
    return worker;
  }

  private removeWorker(uid: string, worker: PodWorker): void {
    worker.remove();
    this.workers.delete(uid);
    this.terminating.add(uid);
    const finished = worker.done.finally(() => {
      this.finishing.delete(finished);
      this.terminating.delete(uid);
      // Its resources are free: deferred resizes are admitted again (KEP-1287 Deferred).
      this.deps.allocation?.release(uid);
      for (const other of this.workers.values()) if (other.resizeDeferred) other.requestSync();
    });
    this.finishing.add(finished);
  }

  /** UIDs whose worker is terminating them (not orphans). */
  private readonly terminating = new Set<string>();

  /** A runtime event for a pod (from PLEG). */
  podEvent(uid: string): void {
    this.workers.get(uid)?.requestSync();
  }

  /** Every worker resyncs (e.g. probe results changed). */
  syncAll(): void {
    for (const worker of this.workers.values()) worker.requestSync();
  }

  get(uid: string): PodWorker | undefined {
    return this.workers.get(uid);
  }

  statuses(): { pod: V1Pod; status?: V1PodStatus }[] {
    return [...this.workers.values()].map((w) => ({ pod: w.currentPod, ...(w.status ? { status: w.status } : {}) }));
  }

  get size(): number {
    return this.workers.size;
  }

  /**
   * Kills runtime pods that no worker owns. `uids` are the pod UIDs present in the runtime.
   * Returns the UIDs it started to clean.
   */
  cleanOrphans(runtimeUids: Iterable<string>): string[] {
    if (this.stopped) return [];
    const cleaned: string[] = [];
    for (const uid of runtimeUids) {
      if (this.workers.has(uid) || this.terminating.has(uid) || this.orphanCleaning.has(uid)) continue;
      cleaned.push(uid);
      this.orphanCleaning.add(uid);
      const orphan: V1Pod = { metadata: { uid, name: `orphan-${uid}`, namespace: '' }, spec: { containers: [], terminationGracePeriodSeconds: 2 } };
      const worker = new PodWorker(uid, orphan, { ...this.deps, onStatus: () => undefined, onTerminated: () => undefined });
      worker.remove();
      const finished = worker.done
        .catch((error: unknown) => this.deps.log.warn({ uid, err: error }, 'orphan cleanup failed'))
        .finally(() => {
          this.orphanCleaning.delete(uid);
          this.finishing.delete(finished);
        });
      this.finishing.add(finished);
    }
    return cleaned;
  }

  private readonly orphanCleaning = new Set<string>();

  /** Waits for the terminations in progress (tests, shutdown of a removed pod). */
  async settle(): Promise<void> {
    while (this.finishing.size > 0) await Promise.all([...this.finishing]);
  }

  /** Stops all workers; running containers are left alone. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
  }
}

const podUidLabel = kubeLabels.podUid;
