/**
 * The Deployment controller (kube-controller-manager's deployment controller): one ReplicaSet
 * per pod template, named `<deployment>-<pod-template-hash>`; RollingUpdate and Recreate as
 * `deployment-policy.ts` decides; pause (no rollout, scaling only); rollback works through
 * `kubectl rollout undo`, which copies an old ReplicaSet's template back into the Deployment,
 * after which that ReplicaSet is the new one again and gets the next revision. Records
 * ScalingReplicaSet Events, cleans history beyond revisionHistoryLimit and writes status.
 * A change of spec.replicas during a rollout is spread over the ReplicaSets (deployment-scale.ts);
 * orphan ReplicaSets it selects are adopted, owned ones it no longer selects released
 * (controller-ref.ts).
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { resources, storagePrefix, type ResourceInfo } from '../resources.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';
import { canonicalJson, deepClone } from '../util.js';
import type { WatchCache, WatchEventType } from '../watch-cache.js';
import { selectorMatches } from '../kinds-workload.js';
import { isScalingEvent, scaleDeployment } from './deployment-scale.js';
import { adopt, claimObjects, release } from './controller-ref.js';
import type { Controller } from './controller.js';
import { keyOf, QueuedController, wire } from './wiring.js';
import {
  desiredAnnotation,
  deploymentStatus,
  findNewReplicaSet,
  hashLabel,
  historyToDelete,
  isComplete,
  maxAnnotation,
  msUntilDeadline,
  newReplicaSetReplicas,
  resolveBounds,
  revisionAnnotation,
  revisionOf,
  scaleDownOld,
  templateHash,
} from './deployment-policy.js';
import { controllerOf, controllerRefFor, getOrUndefined, ignoreNotFound, intOr, isPodActive, obj, splitKey } from './workload-util.js';

const deployments = resources.find((r) => r.name === 'deployments') as ResourceInfo;
const replicasets = resources.find((r) => r.name === 'replicasets') as ResourceInfo;
const pods = resources.find((r) => r.name === 'pods') as ResourceInfo;

type ProgressEvent = { reason: string; message: string } | undefined;

class DeploymentController extends QueuedController {

  constructor(registry: Registry, log: Logger) {
    super(registry, log, 'deployment-controller');
  }

  /** getReplicaSetsForDeployment: ClaimReplicaSets (adopt matching orphans, release unselected ones). */
  private async ownedSets(d: KObject): Promise<KObject[]> {
    const claim = claimObjects(d, (await this.registry.list(replicasets, d.metadata.namespace)).items);
    for (const rs of claim.release) await release(this.registry, replicasets, d, rs);
    const owned = [...claim.owned];
    for (const rs of claim.adopt) {
      const adopted = await adopt(this.registry, replicasets, deployments, d, rs);
      if (adopted) owned.push(adopted);
    }
    return owned;
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = splitKey(key);
    const d = await getOrUndefined(this.registry, deployments, namespace, name);
    if (!d || d.metadata.deletionTimestamp) return;
    const spec = obj(d.spec);
    let sets = await this.ownedSets(d);
    let newRs = findNewReplicaSet(d, sets);
    let event: ProgressEvent;
    if (spec.paused === true || isScalingEvent(d, sets)) {
      // syncDeployment: paused, or spec.replicas changed: sync() scales (proportionally during a
      // rollout) without rolling out; a paused Deployment's history is still cleaned up.
      const old = sets.filter((rs) => rs !== newRs);
      const plan = scaleDeployment(d, newRs, old);
      for (const rs of sets) {
        const size = plan.get(String(rs.metadata.name));
        if (size !== undefined) await this.scale(d, rs, size);
      }
      if (spec.paused === true) await this.cleanup(d, old);
    } else if (obj(spec.strategy).type === 'Recreate') {
      event = await this.recreate(d, sets, newRs);
    } else {
      if (!newRs) {
        newRs = await this.createNewSet(d, sets);
        event = { reason: 'NewReplicaSetCreated', message: `Created new replica set "${String(newRs.metadata.name)}"` };
        sets = [...sets, newRs];
      }
      await this.syncRevision(d, sets, newRs);
      await this.rolling(d, sets, newRs);
    }
    sets = await this.ownedSets(d);
    newRs = findNewReplicaSet(d, sets);
    await this.writeStatus(d, sets, newRs, event);
  }

  private async rolling(d: KObject, sets: KObject[], newRs: KObject): Promise<void> {
    const replicas = intOr(obj(d.spec).replicas, 1);
    const current = intOr(obj(newRs.spec).replicas, 0);
    const wanted = current > replicas ? replicas : newReplicaSetReplicas(d, sets, newRs);
    if (wanted !== current) {
      await this.scale(d, newRs, wanted);
      return;
    }
    const old = sets.filter((rs) => rs !== newRs);
    const changes = scaleDownOld(d, sets, old.filter((rs) => intOr(obj(rs.spec).replicas, 0) > 0), newRs);
    for (const rs of old) {
      const size = changes.get(String(rs.metadata.name));
      if (size !== undefined) await this.scale(d, rs, size);
    }
    if (changes.size === 0 && isComplete(d, deploymentStatus({ deployment: d, all: sets, newRs, now: new Date() }))) await this.cleanup(d, old);
  }

  private async recreate(d: KObject, sets: KObject[], newRs: KObject | undefined): Promise<ProgressEvent> {
    const old = sets.filter((rs) => rs !== newRs);
    let scaled = false;
    for (const rs of old) if (intOr(obj(rs.spec).replicas, 0) > 0) scaled = (await this.scale(d, rs, 0)) || scaled;
    if (scaled) return undefined;
    // New pods start only once every old pod is gone (terminating ones included).
    const podList = (await this.registry.list(pods, d.metadata.namespace)).items;
    const oldUids = new Set(old.map((rs) => rs.metadata.uid));
    const running = podList.filter((p) => oldUids.has(controllerOf(p)?.uid) && (isPodActive(p) || p.metadata.deletionTimestamp));
    if (running.length > 0) {
      this.delayed.add(`${d.metadata.namespace}/${d.metadata.name}`, 1000);
      return undefined;
    }
    let event: ProgressEvent;
    let target = newRs;
    if (!target) {
      target = await this.createNewSet(d, sets);
      event = { reason: 'NewReplicaSetCreated', message: `Created new replica set "${String(target.metadata.name)}"` };
    }
    await this.syncRevision(d, [...sets, target], target);
    await this.scale(d, target, intOr(obj(d.spec).replicas, 1));
    if (isComplete(d, deploymentStatus({ deployment: d, all: sets, newRs: target, now: new Date() }))) await this.cleanup(d, old);
    return event;
  }

  private async createNewSet(d: KObject, sets: KObject[]): Promise<KObject> {
    const spec = obj(d.spec);
    const collisionCount = intOr(obj(d.status).collisionCount, 0);
    const template = deepClone(obj(spec.template));
    const hash = templateHash(template, collisionCount);
    const meta = obj(template.metadata);
    meta.labels = { ...(obj(meta.labels) as Record<string, string>), [hashLabel]: hash };
    template.metadata = meta;
    const selector = deepClone(obj(spec.selector));
    selector.matchLabels = { ...(obj(selector.matchLabels) as Record<string, string>), [hashLabel]: hash };
    const revision = Math.max(0, ...sets.map(revisionOf)) + 1;
    const replicas = intOr(spec.replicas, 1);
    const { maxSurge } = resolveBounds(d);
    const name = `${String(d.metadata.name)}-${hash}`;
    const rs = {
      metadata: {
        name,
        namespace: d.metadata.namespace,
        labels: meta.labels,
        annotations: { [revisionAnnotation]: String(revision), [desiredAnnotation]: String(replicas), [maxAnnotation]: String(replicas + maxSurge) },
        ownerReferences: [controllerRefFor(deployments, d)],
      },
      spec: { replicas: 0, minReadySeconds: intOr(spec.minReadySeconds, 0), selector, template },
    } as unknown as KObject;
    try {
      return await this.registry.create(replicasets, d.metadata.namespace, rs);
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 409)) throw error;
      // A ReplicaSet of that name with another template: a hash collision; bump collisionCount and retry.
      await this.registry.mutate(deployments, d.metadata.namespace, d.metadata.name as string, (current) => ({ ...current, status: { ...obj(current.status), collisionCount: collisionCount + 1 } }), 'status');
      throw new Error(`replicaset ${name} exists with another template; collisionCount is now ${collisionCount + 1}`, { cause: error });
    }
  }

  /** The new ReplicaSet carries the highest revision (a rollback makes an old one new again); the Deployment mirrors it. */
  private async syncRevision(d: KObject, sets: KObject[], newRs: KObject): Promise<void> {
    const maxOld = Math.max(0, ...sets.filter((rs) => rs.metadata.uid !== newRs.metadata.uid).map(revisionOf));
    const revision = revisionOf(newRs) > maxOld ? revisionOf(newRs) : maxOld + 1;
    if (revisionOf(newRs) !== revision) {
      const updated = await this.registry.mutate(replicasets, newRs.metadata.namespace, newRs.metadata.name as string, (rs) => {
        rs.metadata.annotations = { ...rs.metadata.annotations, [revisionAnnotation]: String(revision) };
        return rs;
      });
      newRs.metadata = updated.metadata;
    }
    if (d.metadata.annotations?.[revisionAnnotation] !== String(revision)) {
      const updated = await this.registry.mutate(deployments, d.metadata.namespace, d.metadata.name as string, (current) => {
        current.metadata.annotations = { ...current.metadata.annotations, [revisionAnnotation]: String(revision) };
        return current;
      });
      d.metadata = updated.metadata;
    }
  }

  /** Sets a ReplicaSet's size and its desired/max annotations; records ScalingReplicaSet. */
  private async scale(d: KObject, rs: KObject, replicas: number): Promise<boolean> {
    const from = intOr(obj(rs.spec).replicas, 0);
    const desired = intOr(obj(d.spec).replicas, 1);
    const annotations = { [desiredAnnotation]: String(desired), [maxAnnotation]: String(desired + resolveBounds(d).maxSurge) };
    const sameAnnotations = Object.entries(annotations).every(([k, v]) => rs.metadata.annotations?.[k] === v);
    if (from === replicas && sameAnnotations) return false;
    const updated = await ignoreNotFound(
      this.registry.mutate(replicasets, rs.metadata.namespace, rs.metadata.name as string, (current) => {
        current.spec = { ...obj(current.spec), replicas };
        current.metadata.annotations = { ...current.metadata.annotations, ...annotations };
        return current;
      }),
    );
    if (updated) {
      rs.spec = updated.spec;
      rs.metadata = updated.metadata;
    }
    if (updated && from !== replicas)
      await this.events.record(d, 'Normal', 'ScalingReplicaSet', `Scaled ${replicas > from ? 'up' : 'down'} replica set ${String(rs.metadata.name)} from ${from} to ${replicas}`);
    return from !== replicas;
  }

  private async cleanup(d: KObject, old: KObject[]): Promise<void> {
    for (const rs of historyToDelete(d, old)) await ignoreNotFound(this.registry.delete(replicasets, rs.metadata.namespace, rs.metadata.name as string, { propagationPolicy: 'Background' }));
  }

  private async writeStatus(d: KObject, sets: KObject[], newRs: KObject | undefined, event: ProgressEvent): Promise<void> {
    const current = await getOrUndefined(this.registry, deployments, d.metadata.namespace, d.metadata.name as string);
    if (!current) return;
    const now = new Date();
    const status = deploymentStatus({ deployment: current, all: sets, newRs, now, event });
    const wait = msUntilDeadline(current, status, now);
    if (wait !== undefined) this.delayed.add(`${d.metadata.namespace}/${d.metadata.name}`, wait);
    if (canonicalJson(status) === canonicalJson(current.status)) return;
    await ignoreNotFound(this.registry.mutate(deployments, d.metadata.namespace, d.metadata.name as string, (latest) => ({ ...latest, status }), 'status'));
  }
}

export function startDeploymentController(registry: Registry, cache: WatchCache, log: Logger): Controller {
  const controller = new DeploymentController(registry, log);
  // An orphan ReplicaSet may be adopted by a Deployment of its namespace whose selector matches it.
  const forOrphan = (_type: WatchEventType, rs: KObject) => {
    if (controllerOf(rs)) return;
    registry.list(deployments, rs.metadata.namespace).then(
      (list) => list.items.filter((d) => selectorMatches(obj(d.spec).selector, rs.metadata.labels)).forEach((d) => controller.queue.add(keyOf(d))),
      (error: unknown) => log.warn({ err: error }, 'cannot list deployments'),
    );
  };
  const extra = [{ prefix: storagePrefix(replicasets), send: forOrphan }];
  return wire(registry, cache, log, controller.queue, controller.delayed, { own: deployments, children: [replicasets], extra });
}
