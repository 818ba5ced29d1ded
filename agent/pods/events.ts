/**
 * Events about a pod's containers (probe failures: reason `Unhealthy`, "Liveness probe failed:
 * …") recorded in the API like the kubelet's event recorder: the involved object is the pod with
 * `fieldPath: spec.containers{name}`, source component `kubelet`. Repeats of the same event are
 * aggregated into one object whose `count` and `lastTimestamp` grow, as client-go's
 * EventCorrelator does (https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/).
 * Best effort: a failure to record never affects the pod.
 */
import { createHash } from 'node:crypto';
import { PatchStrategy, setHeaderOptions, type CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from '../../lib/log.js';
import { describeError } from '../../lib/errors.js';

export interface PodEvent {
  podUid: string;
  namespace: string;
  podName: string;
  containerName?: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** The part of the API client the recorder uses. */
export type EventsApi = Pick<CoreV1Api, 'createNamespacedEvent' | 'patchNamespacedEvent'>;

const maxRemembered = 4096;

export class PodEventRecorder {
  private readonly seen = new Map<string, { name: string; count: number }>();
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: EventsApi,
    private readonly host: () => string | undefined,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Queues the event (serialized, so counts stay ordered); never throws. */
  record(event: PodEvent): void {
    this.chain = this.chain.then(() => this.write(event)).catch((error: unknown) => {
      this.log.debug({ err: describeError(error), reason: event.reason }, 'cannot record pod event');
    });
  }

  /** Resolves when every queued event was written (or given up). */
  flush(): Promise<void> {
    return this.chain;
  }

  private async write(event: PodEvent): Promise<void> {
    const key = createHash('sha256').update([event.podUid, event.containerName ?? '', event.type, event.reason, event.message].join('\0')).digest('hex').slice(0, 16);
    const now = new Date(this.now());
    const previous = this.seen.get(key);
    if (previous) {
      previous.count++;
      try {
        await this.api.patchNamespacedEvent({ name: previous.name, namespace: event.namespace, body: { count: previous.count, lastTimestamp: now } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
        return;
      } catch {
        // Gone (event TTL) or never written: create it again below.
      }
    }
    const name = `${event.podName}.${key}`;
    const host = this.host();
    const count = previous?.count ?? 1;
    this.seen.set(key, { name, count });
    if (this.seen.size > maxRemembered) this.seen.delete(this.seen.keys().next().value!);
    await this.api.createNamespacedEvent({
      namespace: event.namespace,
      body: {
        metadata: { name, namespace: event.namespace },
        involvedObject: {
          apiVersion: 'v1',
          kind: 'Pod',
          name: event.podName,
          namespace: event.namespace,
          uid: event.podUid,
          ...(event.containerName ? { fieldPath: `spec.containers{${event.containerName}}` } : {}),
        },
        reason: event.reason,
        message: event.message.slice(0, 1024),
        type: event.type,
        source: { component: 'kubelet', ...(host ? { host } : {}) },
        firstTimestamp: now,
        lastTimestamp: now,
        count,
      },
    });
  }
}
