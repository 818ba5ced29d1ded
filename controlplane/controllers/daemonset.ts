/**
 * The DaemonSet controller (kube-controller-manager's daemonset controller) carrying out
 * `daemonset-policy.ts`. Each template is stored as a ControllerRevision `<ds>-<hash>` (data is
 * the template, revision numbers grow; going back to an old template bumps its revision, as a
 * rollback does); pods carry `controller-revision-hash`. As upstream since 1.12 (ScheduleDaemonSetPods,
 * https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/#how-daemon-pods-are-scheduled)
 * a daemon pod is not bound here: it carries the required node affinity `matchFields
 * metadata.name In [node]` and the default scheduler binds it (so taints, host ports and
 * resources are checked once, by the scheduler). Watches nodes: a node that joins later gets its pod.
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { resources, storagePrefix, type ResourceInfo } from '../resources.js';
import type { KObject } from '../storage/types.js';
import { canonicalJson, deepClone } from '../util.js';
import type { WatchCache } from '../watch-cache.js';
import type { Controller } from './controller.js';
import { enqueueAll, QueuedController, wire } from './wiring.js';
import { templateHash } from './deployment-policy.js';
import { podFromTemplate } from './replicaset-policy.js';
import { daemonSetStatus, daemonTolerations, planDaemonSet, revisionHashLabel } from './daemonset-policy.js';
import { controllerOf, controllerRefFor, getOrUndefined, ignoreNotFound, intOr, list, msUntilAvailable, obj, splitKey } from './workload-util.js';

const daemonsets = resources.find((r) => r.name === 'daemonsets') as ResourceInfo;
const revisions = resources.find((r) => r.name === 'controllerrevisions') as ResourceInfo;
const pods = resources.find((r) => r.name === 'pods') as ResourceInfo;
const nodes = resources.find((r) => r.name === 'nodes') as ResourceInfo;

class DaemonSetController extends QueuedController {

  constructor(registry: Registry, log: Logger) {
    super(registry, log, 'daemonset-controller');
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = splitKey(key);
    const ds = await getOrUndefined(this.registry, daemonsets, namespace, name);
    if (!ds || ds.metadata.deletionTimestamp) return;
    const hash = await this.syncRevisions(ds);
    const nodeList = (await this.registry.list(nodes, undefined)).items;
    const owned = () => this.registry.list(pods, namespace).then((l) => l.items.filter((p) => controllerOf(p)?.uid === ds.metadata.uid));
    const now = new Date();
    const plan = planDaemonSet(ds, nodeList, await owned(), hash, now);
    for (const podName of [...new Set(plan.delete)]) {
      const deleted = await ignoreNotFound(this.registry.delete(pods, namespace, podName));
      if (deleted) await this.events.record(ds, 'Normal', 'SuccessfulDelete', `Deleted pod: ${podName}`);
    }
    for (const node of plan.create) {
      const pod = this.daemonPod(ds, node, hash);
      const created = await this.registry.create(pods, namespace, pod);
      await this.events.record(ds, 'Normal', 'SuccessfulCreate', `Created pod: ${String(created.metadata.name)}`);
    }
    const current = await owned();
    const minReady = intOr(obj(ds.spec).minReadySeconds, 0);
    const waits = current.map((p) => msUntilAvailable(p, minReady, now)).filter((ms): ms is number => ms !== undefined);
    if (waits.length > 0) this.delayed.add(key, Math.min(...waits) + 50);
    const status = { ...daemonSetStatus(ds, nodeList, current, hash, now), ...(obj(ds.status).collisionCount !== undefined ? { collisionCount: obj(ds.status).collisionCount } : {}) };
    if (canonicalJson(status) !== canonicalJson(ds.status))
      await ignoreNotFound(this.registry.mutate(daemonsets, namespace, name, (latest) => (latest.metadata.uid === ds.metadata.uid ? { ...latest, status } : latest), 'status'));
  }

  private daemonPod(ds: KObject, node: string, hash: string): KObject {
    const namespace = ds.metadata.namespace as string;
    const pod = podFromTemplate(obj(ds.spec).template, namespace, `${String(ds.metadata.name)}-`, controllerRefFor(daemonsets, ds));
    pod.metadata.labels = { ...pod.metadata.labels, [revisionHashLabel]: hash, 'pod-template-generation': String(ds.metadata.generation ?? 1) };
    const spec = obj(pod.spec);
    const tolerations = list(spec.tolerations);
    for (const t of daemonTolerations(spec.hostNetwork === true)) if (!tolerations.some((x) => x.key === t.key && x.effect === t.effect)) tolerations.push({ ...t });
    spec.tolerations = tolerations;
    // util.ReplaceDaemonSetPodNodeNameNodeAffinity: the pod's node, as a required matchFields term.
    const affinity = obj(spec.affinity);
    const nodeAffinity = obj(affinity.nodeAffinity);
    nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution = { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] };
    spec.affinity = { ...affinity, nodeAffinity };
    pod.spec = spec;
    return pod;
  }

  /** The ControllerRevision of the current template (created or re-numbered), old ones trimmed; returns its hash. */
  private async syncRevisions(ds: KObject): Promise<string> {
    const namespace = ds.metadata.namespace as string;
    const template = obj(ds.spec).template;
    const hash = templateHash(template, intOr(obj(ds.status).collisionCount, 0));
    const owned = (await this.registry.list(revisions, namespace)).items.filter((r) => controllerOf(r)?.uid === ds.metadata.uid);
    const maxRevision = Math.max(0, ...owned.map((r) => intOr(r.revision, 0)));
    const mine = owned.find((r) => r.metadata.labels?.[revisionHashLabel] === hash);
    if (!mine) {
      await this.registry.create(revisions, namespace, {
        metadata: { name: `${String(ds.metadata.name)}-${hash}`, namespace, labels: { ...(obj(obj(obj(ds.spec).selector).matchLabels) as Record<string, string>), [revisionHashLabel]: hash }, ownerReferences: [controllerRefFor(daemonsets, ds)] },
        data: { spec: { template: { ...deepClone(obj(template)), $patch: 'replace' } } },
        revision: maxRevision + 1,
      } as unknown as KObject);
    } else if (intOr(mine.revision, 0) < maxRevision) {
      await this.registry.mutate(revisions, namespace, mine.metadata.name as string, (r) => ({ ...r, revision: maxRevision + 1 }));
    }
    // History beyond revisionHistoryLimit, oldest first, never the current one.
    const limit = intOr(obj(ds.spec).revisionHistoryLimit, 10);
    const old = owned.filter((r) => r !== mine).sort((a, b) => intOr(a.revision, 0) - intOr(b.revision, 0));
    for (const r of old.slice(0, Math.max(0, old.length - limit))) await ignoreNotFound(this.registry.delete(revisions, namespace, r.metadata.name as string));
    return hash;
  }
}

export function startDaemonSetController(registry: Registry, cache: WatchCache, log: Logger): Controller {
  const controller = new DaemonSetController(registry, log);
  // Node changes (a node joins, its labels or taints change) can change where daemons run.
  const extra = [{ prefix: storagePrefix(nodes), send: () => enqueueAll(registry, daemonsets, controller.queue, log) }];
  return wire(registry, cache, log, controller.queue, controller.delayed, { own: daemonsets, children: [pods], extra });
}
