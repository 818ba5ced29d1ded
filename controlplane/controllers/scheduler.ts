/**
 * The scheduler: binds Pods without spec.nodeName (schedulerName default-scheduler) through
 * pods/binding, one at a time so that each decision sees the previous ones; an unschedulable
 * Pod gets PodScheduled=False with reason Unschedulable and is retried when nodes change and
 * on every resync.
 */
import type { Logger } from '../../lib/log.js';
import { bindPod, setCondition } from '../binding.js';
import type { Registry } from '../registry.js';
import { resources, type ResourceInfo, resourceNamed } from '../resources.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';
import { isRecord, rfc3339 } from '../util.js';
import type { WatchCache } from '../watch-cache.js';
import { KeyQueue } from './queue.js';
import { nodeUsage, schedule } from './scheduler-policy.js';
import type { Controller } from './controller.js';

const pods = resourceNamed('pods');
const nodes = resourceNamed('nodes');

function wantsScheduling(pod: KObject): boolean {
  const spec = isRecord(pod.spec) ? pod.spec : {};
  return !spec.nodeName && (spec.schedulerName ?? 'default-scheduler') === 'default-scheduler' && !pod.metadata.deletionTimestamp;
}

async function reconcile(registry: Registry, key: string): Promise<void> {
  const [namespace, name] = key.split('/') as [string, string];
  let pod: KObject;
  try {
    pod = await registry.get(pods, namespace, name);
  } catch (error) {
    if (error instanceof ApiError && error.code === 404) return;
    throw error;
  }
  if (!wantsScheduling(pod)) return;
  const nodeList = (await registry.list(nodes, undefined)).items;
  const podList = (await registry.list(pods, undefined)).items;
  const decision = schedule(pod, nodeList, nodeUsage(podList));
  if ('node' in decision) {
    try {
      await bindPod(registry, namespace, name, { target: { kind: 'Node', name: decision.node } });
    } catch (error) {
      if (error instanceof ApiError && (error.code === 404 || error.code === 409)) return; // gone or bound meanwhile
      throw error;
    }
    return;
  }
  await registry.mutate(
    pods,
    namespace,
    name,
    (current) => {
      const status = (isRecord(current.status) ? current.status : {}) as Record<string, unknown>;
      setCondition(status, { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: decision.unschedulable, lastProbeTime: null, lastTransitionTime: rfc3339(new Date()) });
      current.status = status;
      return current;
    },
    'status',
  );
}

export function startScheduler(registry: Registry, cache: WatchCache, log: Logger, resyncMs: number): Controller {
  const queue = new KeyQueue((key) => reconcile(registry, key), log);
  const enqueuePending = () => {
    registry.list(pods, undefined, { fieldSelector: 'spec.nodeName=' }).then(
      (list) => list.items.filter(wantsScheduling).forEach((p) => queue.add(`${p.metadata.namespace}/${p.metadata.name}`)),
      (error: unknown) => log.warn({ err: error }, 'cannot list pending pods'),
    );
  };
  const from = cache.lastRevision();
  const offPods = cache.add(
    {
      filter: { prefix: '/registry/core/pods/', matches: () => true },
      send: (type, pod) => {
        if (type !== 'DELETED' && wantsScheduling(pod)) queue.add(`${pod.metadata.namespace}/${pod.metadata.name}`);
        // A finished or deleted pod frees room on its node.
        else if (type === 'DELETED') enqueuePending();
      },
    },
    from,
  );
  const offNodes = cache.add({ filter: { prefix: '/registry/core/nodes/', matches: () => true }, send: () => enqueuePending() }, from);
  enqueuePending();
  const timer = setInterval(enqueuePending, resyncMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      offPods();
      offNodes();
      await queue.stop();
    },
  };
}
