/**
 * The ReplicaSet controller (kube-controller-manager's replicaset controller): keeps
 * spec.replicas active pods for each ReplicaSet, adopts matching orphan pods, creates in
 * slow-start batches (1, 2, 4, …) so a failing template stops early, deletes in the order
 * `replicaset-policy.ts` ranks, records SuccessfulCreate/SuccessfulDelete/FailedCreate Events and
 * writes status. Reads go to the registry, which is consistent after each write, so no
 * "expectations" are needed to avoid double creation.
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { resources, type ResourceInfo } from '../resources.js';
import type { KObject } from '../storage/types.js';
import { canonicalJson } from '../util.js';
import type { WatchCache } from '../watch-cache.js';
import { selectorMatches } from '../kinds-workload.js';
import { KeyQueue } from './queue.js';
import type { Controller } from './controller.js';
import { createEventRecorder, type EventRecorder } from './events.js';
import { planReplicaSet, podFromTemplate, podsOf, replicaSetStatus } from './replicaset-policy.js';
import { controllerOf, controllerRefFor, getOrUndefined, ignoreNotFound, intOr, isPodActive, msUntilAvailable, obj, splitKey } from './workload-util.js';
import { DelayedKeys } from './delayed.js';

const replicasets = resources.find((r) => r.name === 'replicasets') as ResourceInfo;
const pods = resources.find((r) => r.name === 'pods') as ResourceInfo;

/** Runs `count` creations in batches of 1, 2, 4, … (controller.slowStartBatch); stops at the first failing batch. */
export async function slowStart(count: number, create: () => Promise<void>): Promise<{ created: number; error?: unknown }> {
  let created = 0;
  for (let batch = 1; created < count; batch *= 2) {
    const size = Math.min(batch, count - created);
    const results = await Promise.allSettled(Array.from({ length: size }, () => create()));
    created += results.filter((r) => r.status === 'fulfilled').length;
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) return { created, error: failed.reason };
  }
  return { created };
}

class ReplicaSetController {
  readonly queue: KeyQueue;
  readonly delayed: DelayedKeys;
  private readonly events: EventRecorder;

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {
    this.queue = new KeyQueue((key) => this.reconcile(key), log);
    this.delayed = new DelayedKeys((key) => this.queue.add(key));
    this.events = createEventRecorder(registry, 'replicaset-controller', log);
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = splitKey(key);
    const rs = await getOrUndefined(this.registry, replicasets, namespace, name);
    if (!rs) return;
    const all = (await this.registry.list(pods, namespace)).items;
    const { owned, orphans } = podsOf(rs, all);
    if (!rs.metadata.deletionTimestamp) for (const orphan of orphans) if (await this.adopt(rs, orphan)) owned.push(orphan);
    const active = owned.filter(isPodActive);
    if (!rs.metadata.deletionTimestamp) {
      const plan = planReplicaSet(rs, active);
      if (plan.create > 0) await this.createPods(rs, plan.create);
      for (const pod of plan.delete) {
        const deleted = await ignoreNotFound(this.registry.delete(pods, namespace, pod.metadata.name as string));
        if (deleted) await this.events.record(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${String(pod.metadata.name)}`);
      }
    }
    await this.writeStatus(rs);
  }

  private async adopt(rs: KObject, orphan: KObject): Promise<boolean> {
    const adopted = await ignoreNotFound(
      this.registry.mutate(pods, orphan.metadata.namespace, orphan.metadata.name as string, (pod) => {
        if (controllerOf(pod) || pod.metadata.deletionTimestamp) return pod;
        pod.metadata.ownerReferences = [...(pod.metadata.ownerReferences ?? []), controllerRefFor(replicasets, rs)] as KObject['metadata']['ownerReferences'];
        return pod;
      }),
    );
    return adopted !== undefined && controllerOf(adopted)?.uid === rs.metadata.uid;
  }

  private async createPods(rs: KObject, count: number): Promise<void> {
    const namespace = rs.metadata.namespace as string;
    const owner = controllerRefFor(replicasets, rs);
    const result = await slowStart(count, async () => {
      const pod = await this.registry.create(pods, namespace, podFromTemplate(obj(rs.spec).template, namespace, `${String(rs.metadata.name)}-`, owner));
      await this.events.record(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${String(pod.metadata.name)}`);
    });
    if (result.error !== undefined) {
      const message = result.error instanceof Error ? result.error.message : String(result.error);
      await this.events.record(rs, 'Warning', 'FailedCreate', `Error creating: ${message}`);
      throw new Error(`replicaset ${namespace}/${String(rs.metadata.name)}: created ${result.created} of ${count} pods`, { cause: result.error });
    }
  }

  private async writeStatus(rs: KObject): Promise<void> {
    const namespace = rs.metadata.namespace as string;
    const now = new Date();
    const owned = podsOf(rs, (await this.registry.list(pods, namespace)).items).owned;
    const status = replicaSetStatus(rs, owned, now);
    const minReady = intOr(obj(rs.spec).minReadySeconds, 0);
    const waits = owned.map((p) => msUntilAvailable(p, minReady, now)).filter((ms): ms is number => ms !== undefined);
    if (waits.length > 0) this.delayed.add(`${namespace}/${String(rs.metadata.name)}`, Math.min(...waits) + 50);
    await ignoreNotFound(
      this.registry.mutate(
        replicasets,
        namespace,
        rs.metadata.name as string,
        (current) => {
          if (canonicalJson(current.status) !== canonicalJson(status)) current.status = status;
          return current;
        },
        'status',
      ),
    );
  }
}

export function startReplicaSetController(registry: Registry, cache: WatchCache, log: Logger): Controller {
  const controller = new ReplicaSetController(registry, log);
  const { queue } = controller;
  const enqueue = (rs: KObject) => queue.add(`${rs.metadata.namespace}/${rs.metadata.name}`);
  const forOrphan = (pod: KObject) => {
    registry.list(replicasets, pod.metadata.namespace).then(
      (list) => list.items.filter((rs) => selectorMatches(obj(rs.spec).selector, pod.metadata.labels)).forEach(enqueue),
      (error: unknown) => log.warn({ err: error }, 'cannot list replicasets'),
    );
  };
  const from = cache.lastRevision();
  const offSets = cache.add({ filter: { prefix: '/registry/apps/replicasets/', matches: () => true }, send: (_type, rs) => enqueue(rs) }, from);
  const offPods = cache.add(
    {
      filter: { prefix: '/registry/core/pods/', matches: () => true },
      send: (_type, pod) => {
        const ref = controllerOf(pod);
        if (ref?.kind === 'ReplicaSet') queue.add(`${pod.metadata.namespace}/${ref.name}`);
        else if (!ref) forOrphan(pod);
      },
    },
    from,
  );
  registry.list(replicasets, undefined).then(
    (list) => list.items.forEach(enqueue),
    (error: unknown) => log.warn({ err: error }, 'cannot list replicasets'),
  );
  return {
    async stop() {
      offSets();
      offPods();
      controller.delayed.stop();
      await queue.stop();
    },
  };
}
