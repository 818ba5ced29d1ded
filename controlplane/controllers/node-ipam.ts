/**
 * Node IPAM (kube-controller-manager --allocate-node-cidrs with the range allocator): a node
 * without spec.podCIDR gets the next free /24 of --cluster-cidr in spec.podCIDR and podCIDRs.
 * The set in use is derived from the stored nodes, so a deleted node's block is free again;
 * one worker means no block is handed out twice.
 */
import type { Logger } from '../../lib/log.js';
import { allocatePodCidr, type Cidr } from '../ipalloc.js';
import type { Registry } from '../registry.js';
import { resources, type ResourceInfo, resourceNamed } from '../resources.js';
import { ApiError } from '../status.js';
import { isRecord } from '../util.js';
import type { WatchCache } from '../watch-cache.js';
import { KeyQueue } from './queue.js';
import type { Controller } from './controller.js';

const nodes = resourceNamed('nodes');

async function reconcile(registry: Registry, clusterCidr: Cidr, name: string, log: Logger): Promise<void> {
  const all = (await registry.list(nodes, undefined)).items;
  const node = all.find((n) => n.metadata.name === name);
  if (!node) return;
  const spec = isRecord(node.spec) ? node.spec : {};
  if (typeof spec.podCIDR === 'string' && spec.podCIDR !== '') return;
  const used = new Set(all.flatMap((n) => (isRecord(n.spec) && Array.isArray(n.spec.podCIDRs) ? (n.spec.podCIDRs as string[]) : isRecord(n.spec) && typeof n.spec.podCIDR === 'string' ? [n.spec.podCIDR] : [])));
  const cidr = allocatePodCidr(clusterCidr, used);
  if (!cidr) {
    log.error({ node: name }, 'no pod CIDR left in the cluster CIDR');
    return;
  }
  try {
    await registry.mutate(nodes, undefined, name, (current) => {
      const currentSpec = (isRecord(current.spec) ? current.spec : {}) as Record<string, unknown>;
      if (currentSpec.podCIDR) return current;
      current.spec = { ...currentSpec, podCIDR: cidr, podCIDRs: [cidr] };
      return current;
    });
    log.info({ node: name, podCIDR: cidr }, 'assigned pod CIDR');
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 404)) throw error;
  }
}

export function startNodeIpam(registry: Registry, cache: WatchCache, log: Logger, clusterCidr: Cidr): Controller {
  const queue = new KeyQueue((name) => reconcile(registry, clusterCidr, name, log), log);
  const off = cache.add(
    {
      filter: { prefix: '/registry/core/nodes/', matches: () => true },
      send: (type, node) => {
        if (type !== 'DELETED') queue.add(node.metadata.name as string);
      },
    },
    cache.lastRevision(),
  );
  registry.list(nodes, undefined).then(
    (list) => list.items.forEach((n) => queue.add(n.metadata.name as string)),
    (error: unknown) => log.warn({ err: error }, 'cannot list nodes'),
  );
  return {
    async stop() {
      off();
      await queue.stop();
    },
  };
}
