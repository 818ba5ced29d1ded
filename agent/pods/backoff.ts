/**
 * Restart and image-pull back-off, as the kubelet's flowcontrol.Backoff
 * (k8s.io/client-go/util/flowcontrol/backoff.go) used by kuberuntime doBackOff
 * (pkg/kubelet/kuberuntime/kuberuntime_manager.go): 10 s initial, doubling, 5 min cap. An entry
 * expires when its last update is more than 2 × max (10 min) ago, which is the documented
 * "reset after 10 minutes of running" (docs: Pod Lifecycle → Container restart policy).
 *
 * Sequence for a container that exits right away: the first exit restarts at once and arms
 * 10 s; each later exit waits the current delay and then doubles it: 0, 10, 20, 40, … 300 s.
 */

import { systemClock, type Clock } from '../../lib/clock.js';

interface Entry {
  delayMs: number;
  lastUpdate: number;
}

export class Backoff {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly clock: Clock = systemClock,
    readonly initialMs = 10_000,
    readonly maxMs = 300_000,
  ) {}

  private expired(entry: Entry, at: number): boolean {
    return at - entry.lastUpdate > 2 * this.maxMs;
  }

  /** The delay now in force for key (0 when none). */
  delay(key: string): number {
    const entry = this.entries.get(key);
    return entry && !this.expired(entry, this.clock.now()) ? entry.delayMs : 0;
  }

  /** Whether an event (a container exit) at eventTime is still inside the back-off window. */
  isInBackOffSince(key: string, eventTime: number): boolean {
    const entry = this.entries.get(key);
    if (!entry || this.expired(entry, this.clock.now())) return false;
    return this.clock.now() - eventTime < entry.delayMs;
  }

  /** Whether the last recorded retry is less than the current delay ago (IsInBackOffSinceUpdate). */
  isInBackOffSinceUpdate(key: string): boolean {
    const entry = this.entries.get(key);
    const now = this.clock.now();
    if (!entry || this.expired(entry, now)) return false;
    return now - entry.lastUpdate < entry.delayMs;
  }

  /** Milliseconds left of the back-off since the last recorded retry (0 = go). */
  remainingSinceUpdate(key: string): number {
    if (!this.isInBackOffSinceUpdate(key)) return 0;
    const entry = this.entries.get(key)!;
    return Math.max(0, entry.delayMs - (this.clock.now() - entry.lastUpdate));
  }

  /** Milliseconds left before a retry is allowed for an event at eventTime (0 = go). */
  remaining(key: string, eventTime: number): number {
    if (!this.isInBackOffSince(key, eventTime)) return 0;
    return Math.max(0, this.entries.get(key)!.delayMs - (this.clock.now() - eventTime));
  }

  /** Records a retry at eventTime: arms the initial delay, or doubles it up to the cap. */
  next(key: string, eventTime: number): number {
    const entry = this.entries.get(key);
    const delayMs = !entry || this.expired(entry, eventTime) ? this.initialMs : Math.min(entry.delayMs * 2, this.maxMs);
    this.entries.set(key, { delayMs, lastUpdate: eventTime });
    return delayMs;
  }

  reset(key: string): void {
    this.entries.delete(key);
  }

  /** Drops expired entries (the kubelet's periodic backOff.GC). */
  gc(): void {
    const now = this.clock.now();
    for (const [key, entry] of this.entries) if (this.expired(entry, now)) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The kubelet's back-off key: pod identity + container name + spec hash (getStableKey). */
export function backoffKey(podUid: string, containerName: string, specHash: string): string {
  return `${podUid}_${containerName}_${specHash}`;
}

/**
 * The delay until a pod's next periodic resync: syncFrequency stretched by up to half again at
 * random (kubelet pod_workers.go: wait.Jitter(resyncInterval, workerResyncIntervalJitterFactor
 * = 0.5)), so that pods started together do not all resync in the same second.
 */
export function resyncDelayMs(resyncMs: number, random: () => number = Math.random): number {
  return resyncMs * (1 + 0.5 * random());
}
