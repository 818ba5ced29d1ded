/**
 * The one event recorder (core/v1 Events) of knode's components, as client-go's
 * record.EventRecorder with its EventCorrelator: an event is written for an involved object
 * (a Pod, with fieldPath spec.containers{name} for a container, the Node, or a workload the
 * control plane's controllers manage), and repeats of the same event (same object, type, reason
 * and message) are aggregated into one Event object whose count and lastTimestamp grow
 * (https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/).
 * Events are queued and written one at a time, so counts stay ordered. Best effort: a failure
 * to record is logged at debug level and never reaches the caller.
 *
 * Where events go is an EventWriter: the API over HTTP for the node components
 * (apiEventWriter), the registry in process for the control plane's controllers
 * (controlplane/controllers/events.ts).
 */
import { createHash } from 'node:crypto';
import { PatchStrategy, setHeaderOptions, type CoreV1Api, type CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from './log.js';
import { systemClock, type Clock } from './clock.js';

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  name: string;
  /** Events of cluster-scoped objects (a Node) go to the "default" namespace, as the kubelet's. */
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  fieldPath?: string;
}

export interface EventInput {
  involvedObject: InvolvedObject;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  annotations?: Record<string, string>;
}

/** What components record events through (the recorder below, or a fake in tests). */
export interface EventSink {
  record(event: EventInput): void;
}

/** The part of the API client the recorder uses. */
export type EventsApi = Pick<CoreV1Api, 'createNamespacedEvent' | 'patchNamespacedEvent'>;

/** Where the recorder writes its events. */
export interface EventWriter {
  create(namespace: string, event: CoreV1Event): Promise<void>;
  /** Sets count and lastTimestamp of an event written before; rejects when it is gone. */
  update(namespace: string, name: string, change: { count: number; lastTimestamp: Date }): Promise<void>;
}

/** Events through the Kubernetes API (create, then merge patches for repeats). */
function apiEventWriter(api: EventsApi): EventWriter {
  return {
    async create(namespace, body) {
      await api.createNamespacedEvent({ namespace, body });
    },
    async update(namespace, name, body) {
      await api.patchNamespacedEvent({ name, namespace, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    },
  };
}

type EventRecorderOptions = {
  /** source.component and reportingComponent, e.g. "kubelet". */
  component: string;
  /** source.host and reportingInstance: the node name once known. */
  host: () => string | undefined;
  log: Logger;
  clock?: Clock;
} & ({ api: EventsApi } | { writer: EventWriter });

/** Aggregation keys remembered (oldest forgotten first), like the correlator's LRU cache. */
const maxRemembered = 4096;
/** Event messages are cut here (kube-apiserver refuses messages over 1 KiB in events/v1). */
const maxMessage = 1024;

export function podReference(pod: { metadata?: { name?: string; namespace?: string; uid?: string } }, containerName?: string): InvolvedObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    name: pod.metadata?.name ?? '',
    namespace: pod.metadata?.namespace ?? 'default',
    ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}),
    ...(containerName ? { fieldPath: `spec.containers{${containerName}}` } : {}),
  };
}

export class EventRecorder implements EventSink {
  private readonly seen = new Map<string, { name: string; count: number }>();
  private chain: Promise<void> = Promise.resolve();
  private readonly clock: Clock;
  private readonly writer: EventWriter;

  constructor(private readonly options: EventRecorderOptions) {
    this.clock = options.clock ?? systemClock;
    this.writer = 'writer' in options ? options.writer : apiEventWriter(options.api);
  }

  /** Queues the event; never throws. */
  record(event: EventInput): void {
    void this.recordAndWait(event);
  }

  /** Queues the event; resolves once it is written (or given up). Never rejects. */
  recordAndWait(event: EventInput): Promise<void> {
    const written = this.chain
      .then(() => this.write(event))
      .catch((error: unknown) => this.options.log.debug({ err: error, reason: event.reason, kind: event.involvedObject.kind, name: event.involvedObject.name }, 'cannot record event'));
    this.chain = written;
    return written;
  }

  /** Resolves when every queued event was written (or given up). */
  flush(): Promise<void> {
    return this.chain;
  }

  private async write(event: EventInput): Promise<void> {
    const involved = event.involvedObject;
    const namespace = involved.namespace ?? 'default';
    const key = createHash('sha256')
      .update([involved.kind, namespace, involved.name, involved.uid ?? '', involved.fieldPath ?? '', event.type, event.reason, event.message].join('\0'))
      .digest('hex')
      .slice(0, 16);
    const now = new Date(this.clock.now());
    const previous = this.seen.get(key);
    if (previous) {
      previous.count++;
      try {
        await this.writer.update(namespace, previous.name, { count: previous.count, lastTimestamp: now });
        return;
      } catch {
        // Gone (event TTL) or never written: it is created again below, with the count so far.
      }
    }
    const name = `${involved.name}.${key}`;
    const host = this.options.host();
    const count = previous?.count ?? 1;
    this.seen.set(key, { name, count });
    if (this.seen.size > maxRemembered) this.seen.delete(this.seen.keys().next().value!);
    await this.writer.create(namespace, {
      metadata: { name, namespace, ...(event.annotations && Object.keys(event.annotations).length > 0 ? { annotations: event.annotations } : {}) },
      involvedObject: { ...involved, ...(involved.kind === 'Node' ? {} : { namespace }) },
      reason: event.reason,
      message: event.message.slice(0, maxMessage),
      type: event.type,
      source: { component: this.options.component, ...(host ? { host } : {}) },
      firstTimestamp: now,
      lastTimestamp: now,
      count,
      reportingComponent: this.options.component,
      reportingInstance: host ?? '',
    });
  }
}
