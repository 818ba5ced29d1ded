/**
 * The ReplicaSet controller (kube-controller-manager's replicaset controller): keeps
 * spec.replicas active pods for each ReplicaSet, adopts matching orphan pods and releases the
 * ones it no longer selects (controller-ref.ts), creates in
 * slow-start batches (1, 2, 4, …) so a failing template stops early, deletes in the order
 * `replicaset-policy.ts` ranks, records SuccessfulCreate/SuccessfulDelete/FailedCreate Events and
 * writes status. Reads go to the registry, which is consistent after each write, so no
 * "expectations" are needed to avoid double creation.
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { resources, storagePrefix, type ResourceInfo } from '../resources.js';
import type { KObject } from '../storage/types.js';
import { canonicalJson } from '../util.js';
import type { WatchCache, WatchEventType } from '../watch-cache.js';
import { selectorMatches } from '../kinds-workload.js';
import { adopt, claimObjects, release } from './controller-ref.js';
import type { Controller } from './controller.js';
import { keyOf, QueuedController, wire } from './wiring.js';
import { planReplicaSet, podFromTemplate, podsOf, replicaSetStatus } from './replicaset-policy.js';
import { controllerOf, controllerRefFor, getOrUndefined, ignoreNotFound, intOr, isPodActive, msUntilAvailable, obj, splitKey } from './workload-util.js';

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

class ReplicaSetController extends QueuedController {

  constructor(registry: Registry, log: Logger) {
    super(registry, log, 'replicaset-controller');
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = splitKey(key);
    const rs = await getOrUndefined(this.registry, replicasets, namespace, name);
    if (!rs) return;
    const all = (await this.registry.list(pods, namespace)).items;
    // claimPods over the active pods: adopt matching orphans, release owned pods it no longer selects.
    const claim = claimObjects(rs, all.filter(isPodActive));
    const released = new Set(claim.release.map((p) => p.metadata.uid));
    for (const pod of claim.release) await release(this.registry, pods, rs, pod);
    const owned = podsOf(rs, all).owned.filter((p) => !released.has(p.metadata.uid));
    for (const orphan of claim.adopt) {
      const adopted = await adopt(this.registry, pods, replicasets, rs, orphan);
      if (adopted) owned.push(adopted);
    }
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
  // An orphan pod may be adopted by any ReplicaSet of its namespace whose selector matches it.
  const forOrphan = (pod: KObject) => {
    if (controllerOf(pod)) return;
    registry.list(replicasets, pod.metadata.namespace).then(
      (list) => list.items.filter((rs) => selectorMatches(obj(rs.spec).selector, pod.metadata.labels)).forEach((rs) => controller.queue.add(keyOf(rs))),
      (error: unknown) => log.warn({ err: error }, 'cannot list replicasets'),
    );
  };
  const extra = [{ prefix: storagePrefix(pods), send: (_type: WatchEventType, pod: KObject) => forOrphan(pod) }];
  return wire(registry, cache, log, controller.queue, controller.delayed, { own: replicasets, children: [pods], extra });
}
