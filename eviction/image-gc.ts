/**
 * Image garbage collection, the kubelet's pkg/kubelet/images/image_gc_manager.go:
 * - records per image: first detected, last used (now, while any container — running or dead —
 *   uses it), size; pinned images are never removed;
 * - GarbageCollect: when image fs usage >= imageGCHighThresholdPercent, free
 *   capacity*(100−low)/100 − available bytes, unused images with the oldest lastUsed first
 *   (ties: oldest firstDetected), skipping images younger than imageMinimumGCAge;
 *   imageMaximumGCAge (when > 0) removes images unused for longer than it first;
 * - DeleteUnusedImages (eviction reclaim): frees every eligible unused image.
 * Docs: https://kubernetes.io/docs/concepts/architecture/garbage-collection/#container-image-garbage-collection
 *
 * Scheduling: node-cron, every 5 minutes by default (kubelet ImageGCPeriod = 5m). Cron fits
 * because the period is minutes and need not be relative to start; the eviction manager's
 * 10 s housekeeping uses timers instead (see manager.ts).
 */
import cron, { type ScheduledTask } from 'node-cron';
import { createLogger, type Logger } from '../lib/log.js';
import type { KubeletConfiguration } from '../lib/config/kubelet.js';
import type { ImageReclaimer } from './types.js';
import { systemClock, type Clock } from '../lib/clock.js';

export interface ImageInfo {
  id: string;
  sizeBytes: number;
  repoTags: string[];
  pinned?: boolean;
}

/** What image GC needs from the runtime (CRI ImageService + RuntimeService.listContainers). */
export interface ImageStore {
  listImages(): Promise<ImageInfo[]>;
  /** Image IDs referenced by any container, running or exited. */
  imagesInUse(): Promise<Set<string>>;
  /** Idempotent: an image already gone is success. */
  removeImage(id: string): Promise<void>;
  /** ImageService.ImageFsInfo: capacity and available bytes of the image filesystem. */
  imageFsInfo(): Promise<{ capacityBytes: number; availableBytes: number }>;
}

export interface ImageRecord {
  firstDetected: number;
  /** 0 when never seen in use. */
  lastUsed: number;
  size: number;
  pinned: boolean;
}

interface ImageGCPolicy {
  highThresholdPercent: number;
  lowThresholdPercent: number;
  minAgeMs: number;
  /** 0 = disabled. */
  maxAgeMs: number;
}

/** The policy from a loaded KubeletConfiguration (durations are already milliseconds). */
export function imageGCPolicyFromKubelet(config: Pick<KubeletConfiguration, 'imageGCHighThresholdPercent' | 'imageGCLowThresholdPercent' | 'imageMinimumGCAge' | 'imageMaximumGCAge'>): ImageGCPolicy {
  return {
    highThresholdPercent: config.imageGCHighThresholdPercent,
    lowThresholdPercent: config.imageGCLowThresholdPercent,
    minAgeMs: config.imageMinimumGCAge,
    maxAgeMs: config.imageMaximumGCAge,
  };
}

/** Pure: updates records from the current image list and the images in use. */
export function detectImages(records: ReadonlyMap<string, ImageRecord>, images: readonly ImageInfo[], inUse: ReadonlySet<string>, now: number): Map<string, ImageRecord> {
  const result = new Map<string, ImageRecord>();
  for (const image of images) {
    const previous = records.get(image.id);
    result.set(image.id, {
      firstDetected: previous?.firstDetected ?? now,
      lastUsed: inUse.has(image.id) ? now : (previous?.lastUsed ?? 0),
      size: image.sizeBytes,
      pinned: image.pinned ?? false,
    });
  }
  return result;
}

/** Pure: the images to remove, in order, until `bytesToFree` is reached (freeSpace). */
export function selectImagesToFree(records: ReadonlyMap<string, ImageRecord>, inUse: ReadonlySet<string>, now: number, minAgeMs: number, bytesToFree: number): string[] {
  const candidates = [...records]
    .filter(([id, record]) => !inUse.has(id) && !record.pinned)
    .sort(([, a], [, b]) => a.lastUsed - b.lastUsed || a.firstDetected - b.firstDetected);
  const chosen: string[] = [];
  let freed = 0;
  for (const [id, record] of candidates) {
    if (freed >= bytesToFree) break;
    if (record.lastUsed >= now) continue;
    if (now - record.firstDetected < minAgeMs) continue;
    chosen.push(id);
    freed += record.size;
  }
  return chosen;
}

/** Pure: bytes to free for the thresholds, 0 when usage is under the high threshold. */
export function bytesToFree(capacity: number, available: number, policy: ImageGCPolicy): number {
  // imageGCHighThresholdPercent 100 disables image GC (KubeletConfiguration v1beta1 docs).
  if (capacity <= 0 || policy.highThresholdPercent >= 100) return 0;
  const avail = Math.min(available, capacity);
  const usagePercent = 100 - Math.trunc((avail * 100) / capacity);
  if (usagePercent < policy.highThresholdPercent) return 0;
  return Math.max(0, Math.trunc((capacity * (100 - policy.lowThresholdPercent)) / 100) - avail);
}

interface GCResult {
  removed: string[];
  freedBytes: number;
  wantedBytes: number;
}

export class ImageGCManager implements ImageReclaimer {
  private records = new Map<string, ImageRecord>();
  private task: ScheduledTask | undefined;
  private running: Promise<unknown> | undefined;
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(
    private readonly store: ImageStore,
    private readonly policy: ImageGCPolicy,
    options: { clock?: Clock; logger?: Logger; schedule?: string } = {},
  ) {
    if (policy.lowThresholdPercent >= policy.highThresholdPercent && policy.highThresholdPercent < 100) {
      throw new Error(`imageGCLowThresholdPercent (${policy.lowThresholdPercent}) must be lower than imageGCHighThresholdPercent (${policy.highThresholdPercent})`);
    }
    this.clock = options.clock ?? systemClock;
    this.beganAt = this.clock.now();
    this.log = options.logger ?? createLogger('image-gc');
    this.schedule = options.schedule ?? '0 */5 * * * *';
    if (!cron.validate(this.schedule)) throw new Error(`invalid image GC schedule "${this.schedule}"`);
  }

  private readonly schedule: string;
  private readonly beganAt: number;

  /** Starts the periodic GC (node-cron). */
  start(): void {
    if (this.task) return;
    this.task = cron.schedule(this.schedule, () => this.runScheduled(), { noOverlap: true });
  }

  async stop(): Promise<void> {
    const task = this.task;
    this.task = undefined;
    if (task) await task.destroy();
    await this.running;
  }

  private async runScheduled(): Promise<void> {
    const run = this.garbageCollect().catch((error: unknown) => this.log.error({ err: error }, 'image garbage collection failed'));
    this.running = run;
    await run;
  }

  /** Refreshes the records (first detected / last used). The agent may call it after starting containers. */
  async detect(): Promise<{ images: ImageInfo[]; inUse: Set<string> }> {
    const [images, inUse] = await Promise.all([this.store.listImages(), this.store.imagesInUse()]);
    this.records = detectImages(this.records, images, inUse, this.clock.now());
    return { images, inUse };
  }

  recordsSnapshot(): ReadonlyMap<string, ImageRecord> {
    return new Map(this.records);
  }

  private async free(bytes: number): Promise<GCResult> {
    const { inUse } = await this.detect();
    const ids = selectImagesToFree(this.records, inUse, this.clock.now(), this.policy.minAgeMs, bytes);
    const removed: string[] = [];
    let freedBytes = 0;
    for (const id of ids) {
      try {
        await this.store.removeImage(id);
        removed.push(id);
        freedBytes += this.records.get(id)?.size ?? 0;
        this.records.delete(id);
      } catch (error) {
        this.log.warn({ err: error, image: id }, 'failed to remove image');
      }
    }
    if (removed.length > 0) this.log.info({ removed, freedBytes }, 'removed unused images');
    return { removed, freedBytes, wantedBytes: bytes };
  }

  /** One GC pass against the thresholds (kubelet GarbageCollect). */
  async garbageCollect(): Promise<GCResult> {
    if (this.policy.maxAgeMs > 0) await this.freeOldImages();
    const fs = await this.store.imageFsInfo();
    const wanted = bytesToFree(fs.capacityBytes, fs.availableBytes, this.policy);
    if (wanted === 0) return { removed: [], freedBytes: 0, wantedBytes: 0 };
    const result = await this.free(wanted);
    if (result.freedBytes < wanted) {
      this.log.warn(
        { wanted, freed: result.freedBytes },
        `Failed to garbage collect required amount of images. Attempted to free ${wanted} bytes, but only found ${result.freedBytes} bytes eligible to free.`,
      );
    }
    return result;
  }

  /** imageMaximumGCAge: only once MaxAge has passed since the manager began (kubelet freeOldImages). */
  private async freeOldImages(): Promise<void> {
    const now = this.clock.now();
    if (now - this.beganAt <= this.policy.maxAgeMs) return;
    const { inUse } = await this.detect();
    for (const [id, record] of this.records) {
      if (inUse.has(id) || record.pinned || now - record.lastUsed <= this.policy.maxAgeMs) continue;
      await this.store.removeImage(id).then(
        () => this.records.delete(id),
        (error: unknown) => this.log.warn({ err: error, image: id }, 'failed to remove old image'),
      );
    }
  }

  /** Eviction reclaim: removes every eligible unused image; returns the bytes freed. */
  async deleteUnusedImages(): Promise<number> {
    return (await this.free(Number.MAX_SAFE_INTEGER)).freedBytes;
  }
}
