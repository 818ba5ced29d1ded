/**
 * Pod status to the API (pkg/kubelet/status/status_manager.go): the latest status of each pod
 * is kept here and sent only when it differs from what was last sent; static pods report on
 * their mirror pod. Sending is a strategic merge patch of pods/<name>/status (conditions merge
 * by type, so conditions owned by others survive). A failure is retried with a per-pod capped
 * back-off; nothing in the pod's own lifecycle waits on the API. An API pod whose deletion has
 * been carried out is finally deleted with grace period 0 and a UID precondition, after its
 * last status went out (the kubelet's "canBeDeleted" path).
 */
import type { V1Pod, V1PodCondition, V1PodStatus } from '@kubernetes/client-node';
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '../../lib/kube-client.js';
import type { Logger } from '../../lib/log.js';
import { describeError } from '../../lib/errors.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import { stableJson } from '../sources/static-pod.js';
import { configHash, configMirrorAnnotation, isStaticPod } from '../../lib/k8s/pod-source.js';

export interface PodStatusApi {
  /**
   * Patches pods/<name>/status. With `mirrorOf` (a static pod's config hash) the pod must be the
   * mirror of exactly that static pod version, else nothing is written and the result is false.
   */
  patchStatus(namespace: string, name: string, status: V1PodStatus, mirrorOf?: string): Promise<boolean>;
  /** Deletes with grace 0 and a UID precondition; "not found" is success. */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
}

export function apiErrorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown; statusCode?: unknown })?.code ?? (error as { statusCode?: unknown })?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Conditions the kubelet sets only while they hold (PodResizePending, PodResizeInProgress) are
 * removed from the stored status when absent, with the strategic merge patch's delete directive
 * (the kubelet's two-way merge patch of old and new status produces the same).
 */
const transientConditions = ['PodResizePending', 'PodResizeInProgress'];

function withRemovedConditions(status: V1PodStatus): V1PodStatus {
  const present = new Set((status.conditions ?? []).map((c) => c.type));
  const removed = transientConditions.filter((type) => !present.has(type)).map((type) => ({ type, $patch: 'delete' }) as unknown as V1PodCondition);
  return removed.length === 0 ? status : { ...status, conditions: [...(status.conditions ?? []), ...removed] };
}

/** The client-node implementation. */
export class ClientPodStatusApi implements PodStatusApi {
  constructor(private readonly core: CoreV1Api) {}

  async patchStatus(namespace: string, name: string, status: V1PodStatus, mirrorOf?: string): Promise<boolean> {
    const body: { status: V1PodStatus; metadata?: { uid: string } } = { status: withRemovedConditions(status) };
    if (mirrorOf !== undefined) {
      // The old and the new version of an edited static pod report on mirrors of the same name:
      // write only to the mirror of this version, pinned by a UID precondition so that a mirror
      // recreated in between is not written either (the kubelet's status manager skips a
      // status whose mirror translates to another static pod: "Pod was deleted and then recreated").
      const mirror = await this.core.readNamespacedPod({ name, namespace });
      if (mirror.metadata?.annotations?.[configMirrorAnnotation] !== mirrorOf || mirror.metadata?.deletionTimestamp) return false;
      body.metadata = { uid: mirror.metadata.uid! };
    }
    await this.core.patchNamespacedPodStatus({ name, namespace, body }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    return true;
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({ name, namespace, body: { gracePeriodSeconds: 0, preconditions: { uid } } });
    } catch (error) {
      const code = apiErrorCode(error);
      if (code === 404 || code === 409) return; // gone, or a new pod of the same name
      throw error;
    }
  }
}

interface Entry {
  pod: V1Pod;
  status: V1PodStatus;
  key: string;
  sentKey?: string;
  deleteAfterSend: boolean;
  retryAt: number;
  delayMs: number;
}

export class StatusManager {
  private readonly entries = new Map<string, Entry>();
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private again = false;

  constructor(
    private readonly api: PodStatusApi,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
    private readonly periodMs = 1000,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.periodMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
  }

  /** Records a pod's status (from its worker). */
  set(pod: V1Pod, status: V1PodStatus): void {
    const uid = pod.metadata!.uid!;
    const key = stableJson(status);
    const entry = this.entries.get(uid);
    if (entry) {
      entry.pod = pod;
      if (entry.key === key) return;
      entry.status = status;
      entry.key = key;
    } else {
      this.entries.set(uid, { pod, status, key, deleteAfterSend: false, retryAt: 0, delayMs: 500 });
    }
    this.kick();
  }

  get(uid: string): V1PodStatus | undefined {
    return this.entries.get(uid)?.status;
  }

  /** The pod finished terminating: API pods being deleted get their final delete. */
  terminated(pod: V1Pod, removed: boolean): void {
    const uid = pod.metadata!.uid!;
    const entry = this.entries.get(uid);
    if (!isStaticPod(pod) && pod.metadata?.deletionTimestamp && entry) {
      entry.deleteAfterSend = true;
      this.kick();
    } else if (removed) {
      this.entries.delete(uid);
    }
  }

  /** A mirror pod (re)appeared: its status must be sent again. */
  resendFor(namespace: string, name: string): void {
    for (const entry of this.entries.values()) {
      if (entry.pod.metadata?.namespace === namespace && entry.pod.metadata?.name === name) {
        delete entry.sentKey;
        this.kick();
      }
    }
  }

  forget(uid: string): void {
    this.entries.delete(uid);
  }

  private kick(): void {
    this.flush().catch((error: unknown) => this.log.error({ err: error }, 'pod status flush failed'));
  }

  /** Sends what changed; flushes never overlap (a call during one runs one more round). */
  flush(): Promise<void> {
    if (this.flushing) {
      this.again = true;
      return this.flushing;
    }
    const run = (async () => {
      do {
        this.again = false;
        await this.flushOnce();
      } while (this.again);
    })();
    const guarded = run.finally(() => {
      if (this.flushing === guarded) this.flushing = undefined;
    });
    this.flushing = guarded;
    return guarded;
  }

  private async flushOnce(): Promise<void> {
    const now = this.clock.now();
    for (const [uid, entry] of [...this.entries]) {
      if (entry.retryAt > now) continue;
      const { namespace = 'default', name = '' } = entry.pod.metadata ?? {};
      try {
        if (entry.sentKey !== entry.key) {
          const key = entry.key;
          const applied = await this.api.patchStatus(namespace, name, entry.status, isStaticPod(entry.pod) ? configHash(entry.pod) : undefined);
          // Not applied: the mirror stands for another version of this static pod. Its own
          // mirror, once created, triggers resendFor().
          if (!applied) this.log.debug({ pod: `${namespace}/${name}` }, 'mirror pod is of another static pod version; status not sent');
          entry.sentKey = key;
        }
        if (entry.deleteAfterSend) {
          await this.api.deletePod(namespace, name, uid);
          this.entries.delete(uid);
        }
        entry.delayMs = 500;
      } catch (error) {
        const code = apiErrorCode(error);
        // A static pod's mirror may not exist yet; an API pod may be gone: not worth a warning.
        if (code === 404) {
          if (!isStaticPod(entry.pod) && entry.deleteAfterSend) this.entries.delete(uid);
          entry.retryAt = now + 1000;
          continue;
        }
        entry.retryAt = now + entry.delayMs;
        entry.delayMs = Math.min(entry.delayMs * 2, 30_000);
        this.log.warn({ pod: `${namespace}/${name}`, err: error, retryMs: entry.delayMs }, 'pod status update failed');
      }
    }
  }
}
