/**
 * How every workload controller is fed (the informer wiring of kube-controller-manager): events
 * of its own kind enqueue that object, events of a child kind enqueue the child's controller
 * (by its controller ownerReference), extra watches enqueue what they choose, and the objects
 * present at start are enqueued once (after a restart too).
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { storagePrefix, type ResourceInfo } from '../resources.js';
import type { KObject } from '../storage/types.js';
import type { WatchCache, WatchEventType } from '../watch-cache.js';
import type { Controller } from './controller.js';
import { DelayedKeys } from './delayed.js';
import { KeyQueue } from './queue.js';
import { createEventRecorder, type EventRecorder } from './events.js';
import { controllerOf } from './workload-util.js';

interface Wiring {
  own: ResourceInfo;
  /** Child kinds whose controller (of kind `own.kind`) is enqueued on every change. */
  children: ResourceInfo[];
  /** Other watches: a storage prefix and what to do with each event. */
  extra?: { prefix: string; send(type: WatchEventType, object: KObject): void }[];
}

export const keyOf = (object: KObject): string => `${object.metadata.namespace ?? ''}/${object.metadata.name ?? ''}`;

/** Enqueues every object of a kind (start-up, or when something cluster-wide changed). */
export function enqueueAll(registry: Registry, info: ResourceInfo, queue: KeyQueue, log: Logger): void {
  registry.list(info, undefined).then(
    (items) => items.items.forEach((object) => queue.add(keyOf(object))),
    (error: unknown) => log.warn({ err: error, resource: info.name }, 'cannot list objects to reconcile'),
  );
}

export function wire(registry: Registry, cache: WatchCache, log: Logger, queue: KeyQueue, delayed: DelayedKeys, wiring: Wiring): Controller {
  const from = cache.lastRevision();
  const offs = [
    cache.add({ filter: { prefix: storagePrefix(wiring.own), matches: () => true }, send: (_type, object) => queue.add(keyOf(object)) }, from),
    ...wiring.children.map((child) =>
      cache.add(
        {
          filter: { prefix: storagePrefix(child), matches: () => true },
          send: (_type, object) => {
            const ref = controllerOf(object);
            if (ref?.kind === wiring.own.kind) queue.add(`${object.metadata.namespace ?? ''}/${ref.name}`);
          },
        },
        from,
      ),
    ),
    ...(wiring.extra ?? []).map((watch) => cache.add({ filter: { prefix: watch.prefix, matches: () => true }, send: watch.send }, from)),
  ];
  enqueueAll(registry, wiring.own, queue, log);
  return {
    async stop() {
      for (const off of offs) off();
      delayed.stop();
      await queue.stop();
    },
  };
}

/** What each workload controller holds: its queue (retries with back-off), delayed keys and event recorder. */
export abstract class QueuedController {
  readonly queue: KeyQueue;
  readonly delayed: DelayedKeys;
  protected readonly events: EventRecorder;

  constructor(
    protected readonly registry: Registry,
    protected readonly log: Logger,
    component: string,
  ) {
    this.queue = new KeyQueue((key) => this.reconcile(key), log);
    this.delayed = new DelayedKeys((key) => this.queue.add(key));
    this.events = createEventRecorder(registry, component, log);
  }

  abstract reconcile(key: string): Promise<void>;
}
