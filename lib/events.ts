/**
 * The one event recorder (core/v1 Events) of knode's components, as client-go's
 * record.EventRecorder with its EventCorrelator (tools/record/events_cache.go): an event is
 * written for an involved object (a Pod, with fieldPath spec.containers{name} for a container, the
 * Node, or a workload the control plane's controllers manage), and, in client-go's order:
 * - similar events (same source, object, type and reason) with 10 different messages within
 *   10 minutes are combined into one whose message is "(combined from similar events): …"
 *   (EventAggregator);
 * - repeats of the same event (same object, field path, type, reason and message) are one Event
 *   object whose count and lastTimestamp grow (eventLogger; a patch, or a create when the object
 *   is gone);
 * - each source+object has a token bucket of 25 events refilled one per 5 minutes; events over it
 *   are dropped (EventSourceObjectSpamFilter), so a crash-looping pod cannot flood the API.
 * Events are queued (at most 1000, as the broadcaster's queue) and written one at a time, so
 * counts stay ordered, no faster than `writeLimit` (the kubelet's eventRecordQPS/eventBurst). Best effort: a failure to record is logged at debug level and never reaches
 * the caller (https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/).
 *
 * Where events go is an EventWriter: the API over HTTP for the node components
 * (apiEventWriter), the registry in process for the control plane's controllers
 * (controlplane/controllers/events.ts).
 */
import { createHash } from 'node:crypto';
import type { CoreV1Api, CoreV1Event } from '@kubernetes/client-node';
import { PatchStrategy, setHeaderOptions } from './kube-client.js';
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
  /**
   * Sets count, lastTimestamp and message of an event written before; rejects when it is gone
   * (an error whose `code` is 404, as the API client's and the registry's).
   */
  update(namespace: string, name: string, change: { count: number; lastTimestamp: Date; message: string }): Promise<void>;
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
  /** client-go's correlator settings; defaults: defaultCorrelatorSettings. */
  correlator?: CorrelatorSettings;
  /**
   * Event writes per second and their burst (the kubelet's eventRecordQPS and eventBurst, the
   * rate limit of its event client): a write waits for its turn. qps 0: no limit.
   */
  writeLimit?: { qps: number; burst: number };
} & ({ api: EventsApi } | { writer: EventWriter });

/** Keys remembered by each cache (least recently used forgotten first), as the correlator's LRU caches. */
const maxRemembered = 4096;
/** Event messages are cut here (kube-apiserver refuses messages over 1 KiB in events/v1). */
const maxMessage = 1024;
/** Events waiting to be written; more are dropped (client-go's broadcaster queue, maxQueuedEvents). */
const maxQueued = 1000;

/** client-go's correlator settings (defaultAggregateMaxEvents, defaultSpamBurst, defaultSpamQPS …). */
interface CorrelatorSettings {
  /** Different messages of similar events before they are combined (10). */
  aggregateMaxEvents: number;
  /** Window of that count (600 s). */
  aggregateIntervalMs: number;
  /** Events per source+object at once (25). */
  spamBurst: number;
  /** One more allowed every this many ms (300 000: qps 1/300). */
  spamRefillMs: number;
}

const defaultCorrelatorSettings: CorrelatorSettings = { aggregateMaxEvents: 10, aggregateIntervalMs: 600_000, spamBurst: 25, spamRefillMs: 300_000 };

export function podReference(pod: { metadata?: { name?: string; namespace?: string; uid?: string }; spec?: { initContainers?: { name: string }[] } }, containerName?: string): InvolvedObject {
  // kubelet GenerateContainerRef: init containers are spec.initContainers{name}.
  const list = containerName && pod.spec?.initContainers?.some((c) => c.name === containerName) ? 'initContainers' : 'containers';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    name: pod.metadata?.name ?? '',
    namespace: pod.metadata?.namespace ?? 'default',
    ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}),
    ...(containerName ? { fieldPath: `spec.${list}{${containerName}}` } : {}),
  };
}

/** A Map used as an LRU cache of bounded size. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly size: number) {}
  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }
  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.size) this.map.delete(this.map.keys().next().value!);
  }
}

function hashKey(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 24);
}

/** What the correlator decided for one event: drop it, or write it under `key` with `message`. */
type Correlation = { skip: true } | { skip: false; key: string; message: string };

/**
 * client-go's EventCorrelator without the writes (pure but for its caches; time from `now`):
 * EventAggregator, then the spam filter. The eventLogger part (count per key) is the recorder's,
 * which updates it only after a successful write, as client-go's UpdateState.
 */
class EventCorrelator {
  private readonly aggregates = new Lru<{ messages: Set<string>; last: number }>(maxRemembered);
  private readonly buckets = new Lru<{ tokens: number; at: number }>(maxRemembered);

  constructor(private readonly settings: CorrelatorSettings = defaultCorrelatorSettings) {}

  correlate(event: EventInput, source: { component: string; host?: string }, now: number): Correlation {
    const o = event.involvedObject;
    const object = [source.component, source.host ?? '', o.kind, o.namespace ?? '', o.name, o.uid ?? '', o.apiVersion];
    // EventAggregatorByReasonFunc: the aggregate key leaves out the field path and the message.
    const aggregateKey = hashKey([...object, event.type, event.reason]);
    let key = hashKey([...object, o.fieldPath ?? '', event.type, event.reason, event.message]);
    let message = event.message;
    let record = this.aggregates.get(aggregateKey);
    if (!record || now - record.last > this.settings.aggregateIntervalMs) record = { messages: new Set(), last: now };
    record.messages.add(event.message);
    record.last = now;
    this.aggregates.set(aggregateKey, record);
    if (record.messages.size >= this.settings.aggregateMaxEvents) {
      // EventAggregatorByReasonMessageFunc; the set is kept just under the limit (PopAny).
      record.messages.delete(record.messages.values().next().value!);
      key = aggregateKey;
      message = `(combined from similar events): ${event.message}`;
    }
    return this.allow(hashKey(object), now) ? { skip: false, key, message } : { skip: true };
  }

  /** Token bucket per source+object (flowcontrol.NewTokenBucketPassiveRateLimiter). */
  private allow(spamKey: string, now: number): boolean {
    const { spamBurst, spamRefillMs } = this.settings;
    const bucket = this.buckets.get(spamKey) ?? { tokens: spamBurst, at: now };
    bucket.tokens = Math.min(spamBurst, bucket.tokens + Math.max(0, now - bucket.at) / spamRefillMs);
    bucket.at = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.buckets.set(spamKey, bucket);
    return allowed;
  }
}

export class EventRecorder implements EventSink {
  /** eventLogger: the Event object and count last written per key. */
  private readonly seen = new Lru<{ name: string; count: number; first: Date }>(maxRemembered);
  private readonly correlator: EventCorrelator;
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private sequence = 0;
  private readonly clock: Clock;
  private readonly writer: EventWriter;
  /** The write rate limiter's bucket (tokens at time `at`). */
  private writeTokens?: { tokens: number; at: number };

  constructor(private readonly options: EventRecorderOptions) {
    this.clock = options.clock ?? systemClock;
    this.writer = 'writer' in options ? options.writer : apiEventWriter(options.api);
    this.correlator = new EventCorrelator(options.correlator ?? defaultCorrelatorSettings);
  }

  /** Correlates and queues the event; never throws. */
  record(event: EventInput): void {
    void this.recordAndWait(event);
  }

  /** Correlates and queues the event; resolves once it is written, dropped or given up. Never rejects. */
  recordAndWait(event: EventInput): Promise<void> {
    const now = this.clock.now();
    const host = this.options.host();
    const source = { component: this.options.component, ...(host ? { host } : {}) };
    const log = this.options.log;
    const what = { reason: event.reason, kind: event.involvedObject.kind, name: event.involvedObject.name };
    const decision = this.correlator.correlate(event, source, now);
    if (decision.skip) {
      log.debug(what, 'event dropped by the spam filter (25 per object, then one per 5 minutes)');
      return Promise.resolve();
    }
    if (this.queued >= maxQueued) {
      log.debug(what, 'event dropped: the event queue is full');
      return Promise.resolve();
    }
    this.queued++;
    const written = this.chain
      .then(() => this.write(event, decision.key, decision.message, source, now))
      .catch((error: unknown) => log.debug({ err: error, ...what }, 'cannot record event'))
      .finally(() => this.queued--);
    this.chain = written;
    return written;
  }

  /** Resolves when every queued event was written (or given up). */
  flush(): Promise<void> {
    return this.chain;
  }

  /** Waits until the write rate limit allows one more write (client-go's token bucket, blocking). */
  private async writeTurn(): Promise<void> {
    const limit = this.options.writeLimit;
    if (!limit || limit.qps <= 0) return;
    const burst = Math.max(1, limit.burst);
    const now = this.clock.now();
    const bucket = this.writeTokens ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * limit.qps);
    bucket.at = now;
    bucket.tokens -= 1;
    this.writeTokens = bucket;
    if (bucket.tokens >= 0) return;
    const waitMs = Math.ceil((-bucket.tokens / limit.qps) * 1000);
    await new Promise<void>((resolve) => this.clock.setTimer(resolve, waitMs));
  }

  private async write(event: EventInput, key: string, message: string, source: { component: string; host?: string }, at: number): Promise<void> {
    await this.writeTurn();
    const involved = event.involvedObject;
    const namespace = involved.namespace ?? 'default';
    const now = new Date(at);
    const previous = this.seen.get(key);
    if (previous) {
      try {
        await this.writer.update(namespace, previous.name, { count: previous.count + 1, lastTimestamp: now, message: message.slice(0, maxMessage) });
        this.seen.set(key, { ...previous, count: previous.count + 1 });
        return;
      } catch (error) {
        // Gone (event TTL): created again below with the count so far, as client-go's recordEvent.
        if (apiStatusCode(error) !== 404) throw error;
      }
    }
    // client-go names events <object>.<hex of the time in ns>; the sequence keeps them apart within a ms.
    const name = `${involved.name}.${(BigInt(at) * 1_000_000n + BigInt(this.sequence++ % 1_000_000)).toString(16)}`;
    const count = previous ? previous.count + 1 : 1;
    const first = previous?.first ?? now;
    await this.writer.create(namespace, {
      metadata: { name, namespace, ...(event.annotations && Object.keys(event.annotations).length > 0 ? { annotations: event.annotations } : {}) },
      involvedObject: { ...involved, ...(involved.kind === 'Node' ? {} : { namespace }) },
      reason: event.reason,
      message: message.slice(0, maxMessage),
      type: event.type,
      source,
      firstTimestamp: first,
      lastTimestamp: now,
      count,
      reportingComponent: this.options.component,
      reportingInstance: source.host ?? '',
    });
    this.seen.set(key, { name, count, first });
  }
}

/** The HTTP status of an API error of @kubernetes/client-node (ApiException.code), if any. */
function apiStatusCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}
