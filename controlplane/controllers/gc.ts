/**
 * The garbage collector (kube-controller-manager's garbagecollector): keeps an index of owner
 * uid → dependents from the watch of every stored kind, and when an owner is deleted (or is
 * being deleted with the `foregroundDeletion` or `orphan` finalizer) does what
 * `gc-policy.ts` decides for each dependent; a foreground owner loses its finalizer once no
 * blocking dependent is left, an orphaning owner once every dependent lost its reference.
 * Dangling references found at start (an owner deleted while the control plane was down) are
 * processed the same way.
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { resourceByKind, storedResources, type ResourceInfo } from '../resources.js';
import type { KObject } from '../storage/types.js';
import type { WatchCache } from '../watch-cache.js';
import { KeyQueue } from './queue.js';
import type { Controller } from './controller.js';
import { blockingDependents, dependentAction, foregroundFinalizer, orphanFinalizer } from './gc-policy.js';
import { getOrUndefined, ignoreNotFound, ownerRefs } from './workload-util.js';

interface Identity {
  kind: string;
  namespace: string | undefined;
  name: string;
}

const identityOf = (object: KObject): Identity => ({ kind: String(object.kind), namespace: object.metadata.namespace, name: String(object.metadata.name) });
const depKey = (id: Identity) => `${id.kind}/${id.namespace ?? ''}/${id.name}`;

class GarbageCollector {
  /** owner uid → dependents (by identity key). */
  private readonly dependents = new Map<string, Map<string, Identity>>();
  /** Where to find an owner by uid (from the objects seen and from ownerReferences). */
  private readonly owners = new Map<string, Identity>();
  /** What each object last referenced, to keep the index right on changes. */
  private readonly refsOf = new Map<string, string[]>();
  readonly queue: KeyQueue;

  constructor(private readonly registry: Registry, log: Logger) {
    this.queue = new KeyQueue((uid) => this.process(uid), log);
  }

  observe(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: KObject): void {
    const id = identityOf(object);
    const key = depKey(id);
    const uid = object.metadata.uid ?? '';
    for (const old of this.refsOf.get(key) ?? []) this.dependents.get(old)?.delete(key);
    this.refsOf.delete(key);
    if (type === 'DELETED') {
      if (uid) this.queue.add(uid);
      for (const ref of ownerRefs(object)) this.queue.add(ref.uid);
      return;
    }
    if (uid) this.owners.set(uid, id);
    const refs = ownerRefs(object);
    for (const ref of refs) {
      let set = this.dependents.get(ref.uid);
      if (!set) this.dependents.set(ref.uid, (set = new Map()));
      set.set(key, id);
      if (!this.owners.has(ref.uid)) this.owners.set(ref.uid, { kind: ref.kind, namespace: resourceByKind(ref.kind)?.namespaced ? id.namespace : undefined, name: ref.name });
    }
    if (refs.length > 0) this.refsOf.set(key, refs.map((r) => r.uid));
    const finalizers = object.metadata.finalizers ?? [];
    if (object.metadata.deletionTimestamp && (finalizers.includes(foregroundFinalizer) || finalizers.includes(orphanFinalizer))) this.queue.add(uid);
  }

  private async fetch(id: Identity): Promise<KObject | undefined> {
    const info = resourceByKind(id.kind);
    if (!info || info.createOnly) return undefined;
    return getOrUndefined(this.registry, info, info.namespaced ? id.namespace : undefined, id.name);
  }

  private async alive(uid: string): Promise<boolean> {
    const id = this.owners.get(uid);
    if (!id) return false;
    return (await this.fetch(id))?.metadata.uid === uid;
  }

  async process(uid: string): Promise<void> {
    const id = this.owners.get(uid);
    if (!id) return;
    const owner = await this.fetch(id);
    const present = owner?.metadata.uid === uid ? owner : undefined;
    const finalizers = present?.metadata.finalizers ?? [];
    let state: 'gone' | 'foreground' | 'orphan';
    if (!present) state = 'gone';
    else if (present.metadata.deletionTimestamp && finalizers.includes(orphanFinalizer)) state = 'orphan';
    else if (present.metadata.deletionTimestamp && finalizers.includes(foregroundFinalizer)) state = 'foreground';
    else return;
    const remaining: KObject[] = [];
    for (const depId of [...(this.dependents.get(uid)?.values() ?? [])]) {
      const dependent = await this.fetch(depId);
      if (!dependent) continue;
      const alive = new Set<string>();
      for (const ref of ownerRefs(dependent)) if (ref.uid !== uid && (await this.alive(ref.uid))) alive.add(ref.uid);
      const decision = dependentAction(dependent, { uid, state }, alive);
      const info = resourceByKind(depId.kind) as ResourceInfo;
      if (decision.action === 'delete') await ignoreNotFound(this.registry.delete(info, depId.namespace, depId.name, { propagationPolicy: decision.policy }));
      else if (decision.action === 'removeRefs')
        await ignoreNotFound(
          this.registry.mutate(info, depId.namespace, depId.name, (current) => {
            current.metadata.ownerReferences = ownerRefs(current).filter((r) => !decision.uids.includes(r.uid)) as KObject['metadata']['ownerReferences'];
            if (current.metadata.ownerReferences?.length === 0) delete current.metadata.ownerReferences;
            return current;
          }),
        );
      const after = await this.fetch(depId);
      if (after && ownerRefs(after).some((r) => r.uid === uid)) remaining.push(after);
    }
    if (!present || !id) return;
    const info = resourceByKind(id.kind) as ResourceInfo;
    const done = state === 'orphan' ? remaining.length === 0 : blockingDependents(uid, remaining).length === 0;
    if (!done) return;
    const finalizer = state === 'orphan' ? orphanFinalizer : foregroundFinalizer;
    await ignoreNotFound(
      this.registry.mutate(info, id.namespace, id.name, (current) => {
        if (current.metadata.uid !== uid) return current;
        current.metadata.finalizers = (current.metadata.finalizers ?? []).filter((f) => f !== finalizer);
        return current;
      }),
    );
  }

  async initialScan(): Promise<void> {
    for (const info of storedResources) {
      for (const object of (await this.registry.list(info, undefined)).items) this.observe('ADDED', object);
    }
    // References to owners that no longer exist: process each such owner once.
    for (const uid of this.dependents.keys()) if (!(await this.alive(uid))) this.queue.add(uid);
  }
}

export function startGarbageCollector(registry: Registry, cache: WatchCache, log: Logger): Controller {
  const gc = new GarbageCollector(registry, log);
  const off = cache.add({ filter: { prefix: '/registry/', matches: () => true }, send: (type, object) => gc.observe(type, object) }, cache.lastRevision());
  gc.initialScan().catch((error: unknown) => log.warn({ err: error }, 'garbage collector: initial scan failed'));
  return {
    async stop() {
      off();
      await gc.queue.stop();
    },
  };
}
