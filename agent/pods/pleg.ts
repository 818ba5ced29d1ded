/**
 * Pod lifecycle event generator (pkg/kubelet/pleg/generic.go): relists the runtime every
 * period (1 s), compares each pod's containers and sandboxes (id → state) with the previous
 * relist, and reports the pods that changed, so that a container exit turns into a pod sync
 * within about a second. It also reports which pod UIDs exist in the runtime (for orphan
 * cleanup) and how long each relist took (metrics, and "PLEG is not healthy" when relists stop).
 * Each relist also refreshes the runtime pod cache (pods/pod-cache.ts) before it reports the
 * changes, so that the woken workers read what it saw (generic.go updateCache, cache.UpdateTime).
 */
import type { Container, PodSandbox, RuntimeService } from '../../cri/runtime.js';
import type { Logger } from '../../lib/log.js';
import { groupByPod, type RuntimePodCache } from './pod-cache.js';

export interface PlegListener {
  onPodChanged(uid: string): void;
  onRelist?(uids: ReadonlySet<string>, durationMs: number): void;
}

export class Pleg {
  private previous = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private lastRelistAt = 0;
  private stopped = false;

  constructor(
    private readonly runtime: Pick<RuntimeService, 'listContainers' | 'listPodSandbox' | 'listPodResources'>,
    private readonly listener: PlegListener,
    private readonly log: Logger,
    private readonly periodMs = 1000,
    private readonly cache?: RuntimePodCache,
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.relist().finally(() => (this.running = undefined));
    }, this.periodMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** Healthy when the last successful relist is recent (kubelet: within 3 minutes). */
  healthy(now = Date.now(), thresholdMs = 180_000): boolean {
    return this.lastRelistAt > 0 && now - this.lastRelistAt < thresholdMs;
  }

  /** Every sandbox and container: one runtime query where the runtime offers it (Docker does). */
  private async listAll(): Promise<{ sandboxes: PodSandbox[]; containers: Container[] }> {
    if (this.runtime.listPodResources) return this.runtime.listPodResources();
    const [sandboxes, containers] = await Promise.all([this.runtime.listPodSandbox(), this.runtime.listContainers()]);
    return { sandboxes, containers };
  }

  async relist(): Promise<void> {
    const started = Date.now();
    const token = this.cache?.beginRelist();
    let current: Map<string, string>;
    try {
      const { sandboxes, containers } = await this.listAll();
      const pods = groupByPod(sandboxes, containers);
      current = new Map(
        [...pods].map(([uid, pod]) => [uid, [...pod.sandboxes.map((s) => `s:${s.id}:${s.state}`), ...pod.containers.map((c) => `c:${c.id}:${c.state}`)].sort().join(',')]),
      );
      if (token !== undefined && !this.stopped) this.cache?.update(token, pods);
    } catch (error) {
      this.log.warn({ err: error }, 'PLEG relist failed');
      return;
    }
    if (this.stopped) return;
    for (const [uid, signature] of current) if (this.previous.get(uid) !== signature) this.listener.onPodChanged(uid);
    for (const uid of this.previous.keys()) if (!current.has(uid)) this.listener.onPodChanged(uid);
    this.previous = current;
    this.lastRelistAt = Date.now();
    this.listener.onRelist?.(new Set(current.keys()), this.lastRelistAt - started);
  }
}
