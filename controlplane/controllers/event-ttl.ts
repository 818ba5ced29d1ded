/**
 * Event expiry: kube-apiserver stores Events with a TTL (--event-ttl, default 1 h), so a busy
 * kubelet cannot grow the store without bound. Here a periodic pass deletes Events whose last
 * occurrence (lastTimestamp, eventTime, or creation) is older than the TTL.
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { resources, type ResourceInfo, resourceNamed } from '../resources.js';
import type { KObject } from '../storage/types.js';
import type { Controller } from './controller.js';

const events = resourceNamed('events');

function lastOccurrence(event: KObject): number {
  const times = [event.lastTimestamp, event.eventTime, event.metadata.creationTimestamp]
    .filter((t): t is string => typeof t === 'string')
    .map((t) => Date.parse(t))
    .filter((t) => Number.isFinite(t));
  return times.length > 0 ? Math.max(...times) : 0;
}

export function startEventTtl(registry: Registry, log: Logger, ttlMs: number): Controller {
  let running: Promise<void> | undefined;
  const pass = async () => {
    const cutoff = Date.now() - ttlMs;
    const list = (await registry.list(events, undefined)).items;
    for (const event of list) {
      if (lastOccurrence(event) >= cutoff) continue;
      await registry.delete(events, event.metadata.namespace, event.metadata.name as string).catch(() => undefined);
    }
  };
  const timer = setInterval(
    () => {
      if (running) return;
      running = pass()
        .catch((error: unknown) => log.warn({ err: error }, 'event expiry pass failed'))
        .finally(() => (running = undefined));
    },
    Math.max(200, Math.min(60_000, ttlMs / 4)),
  );
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
