/**
 * Event recording for the in-process controllers, as client-go's EventRecorder writes core/v1
 * Events (https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/): one
 * Event per (object, type, reason, message); a repeat bumps `count` and `lastTimestamp` instead of
 * writing a new object (the correlator's aggregation of identical events). The cache of recent
 * events is bounded; a failed write is logged, never thrown at the controller.
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { groupVersion, resourceByKind, resources, type ResourceInfo } from '../resources.js';
import type { KObject } from '../storage/types.js';
import { rfc3339 } from '../util.js';

const events = resources.find((r) => r.name === 'events') as ResourceInfo;
const maxRemembered = 4096;

type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  record(object: KObject, type: EventType, reason: string, message: string): Promise<void>;
}

export function createEventRecorder(registry: Registry, component: string, log: Logger, now: () => Date = () => new Date()): EventRecorder {
  const seen = new Map<string, { name: string; count: number }>();
  return {
    async record(object, type, reason, message) {
      const meta = object.metadata;
      const namespace = meta.namespace ?? 'default';
      const key = `${meta.uid ?? ''}\u0000${type}\u0000${reason}\u0000${message}`;
      const time = rfc3339(now());
      try {
        const known = seen.get(key);
        if (known) {
          const updated = await registry
            .mutate(events, namespace, known.name, (event) => ({ ...event, count: known.count + 1, lastTimestamp: time }))
            .then(() => true)
            .catch(() => false);
          if (updated) {
            known.count += 1;
            return;
          }
        }
        const info = resourceByKind(String(object.kind ?? ''));
        const name = `${meta.name ?? 'unknown'}.${(now().getTime() * 1000 + Math.floor(Math.random() * 1000)).toString(16)}`;
        await registry.create(events, namespace, {
          metadata: { name, namespace },
          involvedObject: { kind: object.kind, namespace: meta.namespace, name: meta.name, uid: meta.uid, apiVersion: info ? groupVersion(info) : object.apiVersion, resourceVersion: meta.resourceVersion },
          reason,
          message,
          source: { component },
          firstTimestamp: time,
          lastTimestamp: time,
          count: 1,
          type,
          eventTime: null,
          reportingComponent: component,
          reportingInstance: '',
        } as unknown as KObject);
        if (seen.size >= maxRemembered) seen.delete(seen.keys().next().value as string);
        seen.set(key, { name, count: 1 });
      } catch (error) {
        log.warn({ err: error, reason, object: `${meta.namespace ?? ''}/${meta.name ?? ''}` }, 'cannot record event');
      }
    },
  };
}
