/**
 * What the kubelet's sync loop does on PLEG events and housekeeping ticks (kubelet.go
 * syncLoopIteration, HandlePodCleanups): a pod whose containers changed is synced; after each
 * relist, once every source has delivered its first set (sourcesReady), runtime pods no source
 * wants are killed (PodWorkers.cleanOrphans) and, throttled to housekeepingMs, the network of
 * sandboxes that are no longer ready is released (libcni GCNetworkList; issue 25 item 8) and
 * orphaned pod directories are removed (cleanupOrphanedPodDirs): <rootDir>/pods/<uid> of a pod
 * that no source wants, no worker handles and the runtime no longer has, e.g. after the agent
 * was killed in the middle of a termination.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerRuntime } from '../../cri/runtime.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import { errnoCode } from '../../lib/errors.js';
import type { AgentMetrics } from '../server/metrics.js';
import { removePodDir } from '../volumes/volumes.js';
import type { PlegListener } from './pleg.js';
import type { PodWorkers } from './workers.js';

interface HousekeepingOptions {
  runtime: Pick<ContainerRuntime, 'garbageCollectNetwork'>;
  workers: Pick<PodWorkers, 'podEvent' | 'cleanOrphans' | 'get' | 'statuses'>;
  /** Whether a source wants the pod (UID). */
  desired: (uid: string) => boolean;
  /** Whether every configured source delivered its first set. */
  sourcesReady: () => boolean;
  metrics: Pick<AgentMetrics, 'plegRelist' | 'updateRunning'>;
  rootDir: string;
  /** Period of the throttled part (network GC, orphaned pod directories), ms; default 30 000. */
  periodMs?: number;
  clock: Clock;
  log: Logger;
}

export class Housekeeping implements PlegListener {
  private last = 0;

  constructor(private readonly options: HousekeepingOptions) {}

  onPodChanged(uid: string): void {
    this.options.workers.podEvent(uid);
  }

  onRelist(uids: ReadonlySet<string>, durationMs: number): void {
    const { metrics, workers } = this.options;
    metrics.plegRelist.observe(durationMs / 1000);
    if (this.options.sourcesReady()) {
      workers.cleanOrphans(uids);
      void this.housekeeping(uids);
    }
    metrics.updateRunning(workers.statuses());
  }

  private async housekeeping(runtimeUids: ReadonlySet<string>): Promise<void> {
    const { clock, log, rootDir } = this.options;
    const now = clock.now();
    if (now - this.last < (this.options.periodMs ?? 30_000)) return;
    this.last = now;
    await this.options.runtime.garbageCollectNetwork?.().catch((error: unknown) => log.warn({ err: error }, 'pod network garbage collection failed'));
    for (const uid of await this.podDirs()) {
      if (runtimeUids.has(uid) || this.options.desired(uid) || this.options.workers.get(uid)) continue;
      try {
        await removePodDir(rootDir, uid);
        log.info({ uid }, 'removed orphaned pod directory');
      } catch (error) {
        log.warn({ uid, err: error }, 'cannot remove orphaned pod directory');
      }
    }
  }

  private async podDirs(): Promise<string[]> {
    const dir = join(this.options.rootDir, 'pods');
    try {
      return await readdir(dir);
    } catch (error) {
      // No pods directory yet: no pod ever had volumes here.
      if (errnoCode(error) === 'ENOENT') return [];
      this.options.log.warn({ err: error, dir }, 'cannot list pod directories');
      return [];
    }
  }
}
