/**
 * Namespace controller: when a namespace is deleted, everything in it is deleted too
 * (https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/). Here the
 * namespace object goes first and its content is removed right after, pods without grace.
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { storedResources } from '../resources.js';
import type { WatchCache } from '../watch-cache.js';
import type { Controller } from './controller.js';

export function startNamespaceController(registry: Registry, cache: WatchCache, log: Logger): Controller {
  const pending = new Set<Promise<void>>();
  const purge = async (namespace: string) => {
    for (const info of storedResources.filter((r) => r.namespaced)) {
      const list = await registry.list(info, namespace);
      for (const item of list.items) {
        await registry.delete(info, namespace, item.metadata.name as string, { gracePeriodSeconds: 0 }).catch(() => undefined);
      }
    }
  };
  const remove = cache.add(
    {
      filter: { prefix: '/registry/core/namespaces/', matches: () => true },
      send: (type, object) => {
        if (type !== 'DELETED' || !object.metadata.name) return;
        const work = purge(object.metadata.name).catch((error: unknown) => log.error({ err: error, namespace: object.metadata.name }, 'namespace cleanup failed'));
        pending.add(work);
        void work.finally(() => pending.delete(work));
      },
    },
    cache.lastRevision(),
  );
  return {
    async stop() {
      remove();
      await Promise.all(pending);
    },
  };
}
