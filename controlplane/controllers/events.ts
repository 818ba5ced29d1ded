/**
 * Events of the in-process controllers through the one recorder (lib/events.ts: aggregation of
 * repeats into count/lastTimestamp, bounded memory, best effort). The controllers run inside the
 * API server, so the recorder writes through the registry (validation, storage, watch), not HTTP.
 */
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Clock } from '../../lib/clock.js';
import { EventRecorder as Recorder, type EventWriter, type InvolvedObject } from '../../lib/events.js';
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { groupVersion, resourceByKind, resourceNamed } from '../resources.js';
import type { KObject } from '../storage/types.js';
import { rfc3339 } from '../util.js';

const events = resourceNamed('events');

type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  /** Resolves once the event is written (or given up); never rejects. */
  record(object: KObject, type: EventType, reason: string, message: string): Promise<void>;
}

/** The recorder's sink inside the API server: the registry, with timestamps as stored (RFC 3339). */
export function registryEventWriter(registry: Registry): EventWriter {
  return {
    async create(namespace: string, event: CoreV1Event) {
      const stored = { ...event, firstTimestamp: rfc3339(event.firstTimestamp ?? new Date()), lastTimestamp: rfc3339(event.lastTimestamp ?? new Date()) };
      await registry.create(events, namespace, stored);
    },
    async update(namespace, name, change) {
      await registry.mutate(events, namespace, name, (event) => ({ ...event, count: change.count, lastTimestamp: rfc3339(change.lastTimestamp), message: change.message }));
    },
  };
}

function reference(object: KObject): InvolvedObject {
  const meta = object.metadata;
  const info = resourceByKind(String(object.kind ?? ''));
  const apiVersion = info ? groupVersion(info) : String(object.apiVersion ?? '');
  return {
    apiVersion,
    kind: String(object.kind ?? ''),
    name: meta.name ?? 'unknown',
    ...(meta.namespace !== undefined ? { namespace: meta.namespace } : {}),
    ...(meta.uid !== undefined ? { uid: meta.uid } : {}),
    ...(meta.resourceVersion !== undefined ? { resourceVersion: meta.resourceVersion } : {}),
  };
}

export function createEventRecorder(registry: Registry, component: string, log: Logger, clock?: Clock): EventRecorder {
  const recorder = new Recorder({ writer: registryEventWriter(registry), component, host: () => undefined, log, ...(clock ? { clock } : {}) });
  return {
    record: (object, type, reason, message) => recorder.recordAndWait({ involvedObject: reference(object), type, reason, message }),
  };
}
