/**
 * Generic REST storage for every resource (the role of k8s.io/apiserver/pkg/registry/generic):
 * metadata bookkeeping (uid, creationTimestamp, generation, resourceVersion), status
 * subresources, optimistic concurrency, graceful deletion and finalizers. What differs by kind
 * comes from the kind's strategy (kinds.ts), never from a test of the kind here. Writes to one
 * resource kind are serialized so that the read-check-write of allocations and preconditions
 * cannot interleave. Every object is bounded before it is stored: its JSON size (etcd's 1.5 MiB
 * request limit) and its nesting depth (issue 25 items 2 and 4).
 */
import { ApiError, alreadyExists, badRequest, conflict, forbidden, invalid, notFound, tooLarge } from './status.js';
import { StorageError, revisionOf, type KObject, type Storage } from './storage/types.js';
import { storageKey, storagePrefix, type ResourceInfo, groupVersion, resources, resourceNamed } from './resources.js';
import { strategyFor } from './kinds.js';
import { checkDepth } from './http-util.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError, type FieldRequirement, type LabelRequirement } from './selectors.js';
import { canonicalJson, deepClone, isRecord, newUid, randomSuffix, rfc3339 } from './util.js';
import type { StatusCause } from './status.js';
import { finalizersForDelete } from './deletion-policy.js';

interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  propagationPolicy?: string;
  orphanDependents?: boolean;
  dryRun?: string[];
}

interface ObjectList {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
  items: KObject[];
}

/** Hook run inside the per-kind write lock: allocation and admission that need other objects. */
type AdmitHook = (object: KObject, old: KObject | undefined, registry: Registry) => Promise<StatusCause[]>;

export interface Selector {
  labels: LabelRequirement[];
  fields: FieldRequirement[];
}

export function parseSelectors(labelSelector?: string, fieldSelector?: string): Selector {
  try {
    return { labels: parseLabelSelector(labelSelector), fields: parseFieldSelector(fieldSelector) };
  } catch (error) {
    if (error instanceof SelectorError) throw badRequest(`unable to parse requirement: ${error.message}`);
    throw error;
  }
}

export function selectorMatches(selector: Selector, object: KObject): boolean {
  return matchesLabels(selector.labels, object.metadata.labels) && matchesFields(selector.fields, object);
}

/** etcd's default --max-request-bytes (1.5 MiB), which bounds one object in kube-apiserver. */
const maxObjectBytes = 1.5 * 1024 * 1024;

/** The name of a stored or checked object (checkBody guarantees one before any write). */
function nameOf(object: KObject): string {
  return object.metadata.name ?? '';
}

interface RegistryOptions {
  now?: () => Date;
  /** Largest JSON size of one stored object (default 1.5 MiB). */
  maxObjectBytes?: number;
}

export class Registry {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly admitHooks = new Map<string, AdmitHook[]>();
  private readonly now: () => Date;
  private readonly maxObjectBytes: number;

  constructor(
    readonly storage: Storage,
    options: RegistryOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.maxObjectBytes = options.maxObjectBytes ?? maxObjectBytes;
  }

  /** Adds an admission/allocation hook for a kind (run on create and update). */
  addAdmitHook(kind: string, hook: AdmitHook): void {
    this.admitHooks.set(kind, [...(this.admitHooks.get(kind) ?? []), hook]);
  }

  async get(info: ResourceInfo, namespace: string | undefined, name: string): Promise<KObject> {
    const object = await this.storage.get(storageKey(info, namespace, name));
    if (!object) throw notFound(info, name);
    return object;
  }

  async list(info: ResourceInfo, namespace: string | undefined, options: ListOptions = {}): Promise<ObjectList> {
    const selector = parseSelectors(options.labelSelector, options.fieldSelector);
    const prefix = storagePrefix(info, namespace);
    const { items, revision } = await this.storage.list(prefix);
    let start = 0;
    if (options.continue) {
      const after = decodeContinue(options.continue);
      start = items.findIndex((item) => keyOf(info, item) > after);
      if (start < 0) start = items.length;
    }
    const matching: KObject[] = [];
    let next: string | undefined;
    let remaining = 0;
    for (const item of items.slice(start)) {
      if (!selectorMatches(selector, item)) continue;
      if (options.limit && options.limit > 0 && matching.length >= options.limit) {
        remaining++;
        continue;
      }
      matching.push(item);
    }
    const lastItem = matching.at(-1);
    if (remaining > 0 && lastItem) next = encodeContinue(keyOf(info, lastItem), revision);
    const metadata: ObjectList['metadata'] = { resourceVersion: String(revision) };
    if (next) {
      metadata.continue = next;
      if (selector.labels.length === 0 && selector.fields.length === 0) metadata.remainingItemCount = remaining;
    }
    return { apiVersion: groupVersion(info), kind: `${info.kind}List`, metadata, items: matching.map((item) => withTypeMeta(info, item)) };
  }

  async create(info: ResourceInfo, namespace: string | undefined, body: unknown, dryRun = false): Promise<KObject> {
    const object = this.checkBody(info, namespace, body, undefined);
    const meta = object.metadata;
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomSuffix()}`;
    const strategy = strategyFor(info.kind);
    return this.serialized(info, async () => {
      if (info.namespaced) await this.requireActiveNamespace(info, namespace ?? '', nameOf(object));
      meta.uid = newUid();
      meta.creationTimestamp = rfc3339(this.now());
      delete meta.resourceVersion;
      delete meta.deletionTimestamp;
      delete meta.deletionGracePeriodSeconds;
      if (info.generation) meta.generation = 1;
      else delete meta.generation;
      strategy.prepareForCreate?.(object);
      strategy.defaults?.(object);
      await this.validate(info, object, undefined);
      this.checkStorable(object);
      if (dryRun) return withTypeMeta(info, object);
      try {
        return withTypeMeta(info, await this.storage.create(storageKey(info, namespace, nameOf(object)), object));
      } catch (error) {
        throw this.mapStorageError(info, nameOf(object), error);
      }
    });
  }

  /** PUT on the object or its status subresource. */
  async update(info: ResourceInfo, namespace: string | undefined, name: string, body: unknown, subresource?: string, dryRun = false): Promise<KObject> {
    const object = this.checkBody(info, namespace, body, name);
    return this.serialized(info, async () => {
      const key = storageKey(info, namespace, name);
      const old = await this.storage.get(key);
      if (!old) throw notFound(info, name);
      const requested = object.metadata.resourceVersion;
      if (requested !== undefined && requested !== '' && requested !== old.metadata.resourceVersion) throw conflict(info, name);
      // A uid in the body is a precondition (the kubelet sends one in its pod status patches).
      const uid = object.metadata.uid;
      if (typeof uid === 'string' && uid !== '' && uid !== old.metadata.uid)
        throw conflict(info, name, `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${old.metadata.uid ?? ''}`);
      const next = this.prepareUpdate(info, object, old, subresource);
      strategyFor(info.kind).defaults?.(next);
      await this.validate(info, next, subresource === 'binding' ? undefined : old, subresource);
      this.checkStorable(next);
      if (canonicalJson(next) === canonicalJson(old)) return withTypeMeta(info, old);
      if (dryRun) return withTypeMeta(info, next);
      return withTypeMeta(info, await this.writeOrFinalize(info, key, next, old));
    });
  }

  /** Read-modify-write with a function (PATCH and internal controllers). */
  async mutate(
    info: ResourceInfo,
    namespace: string | undefined,
    name: string,
    change: (current: KObject) => unknown,
    subresource?: string,
    dryRun = false,
  ): Promise<KObject> {
    const current = await this.get(info, namespace, name);
    const changed = change(deepClone(current));
    if (!isRecord(changed) || !isRecord(changed.metadata)) throw badRequest('the patch produced an object without metadata');
    // A patch may carry its own resourceVersion precondition; otherwise it applies to what we read.
    const metadata = { ...changed.metadata, resourceVersion: changed.metadata.resourceVersion ?? current.metadata.resourceVersion };
    return this.update(info, namespace, name, { ...changed, metadata }, subresource, dryRun);
  }

  async delete(info: ResourceInfo, namespace: string | undefined, name: string, options: DeleteOptions = {}): Promise<KObject> {
    return (await this.deleteWithOutcome(info, namespace, name, options)).object;
  }

  /** `deleted` is false while the object stays (graceful deletion, finalizers, dry run). */
  async deleteWithOutcome(info: ResourceInfo, namespace: string | undefined, name: string, options: DeleteOptions = {}): Promise<{ object: KObject; deleted: boolean }> {
    return this.serialized(info, async () => {
      const key = storageKey(info, namespace, name);
      const current = await this.storage.get(key);
      if (!current) throw notFound(info, name);
      const strategy = strategyFor(info.kind);
      const refusal = strategy.forbidDelete?.(current);
      if (refusal !== undefined) throw forbidden(info, name, refusal);
      const pre = options.preconditions ?? {};
      if (pre.uid && pre.uid !== current.metadata.uid)
        throw conflict(info, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid ?? ''}`);
      if (pre.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion)
        throw conflict(info, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion ?? ''}`);
      const grace = strategy.checkGracefulDelete?.(current, options.gracePeriodSeconds) ?? 0;
      const finalizers = finalizersForDelete(current.metadata.finalizers ?? [], options.propagationPolicy, options.orphanDependents);
      if (grace === 0 && finalizers.length === 0) {
        if (options.dryRun?.includes('All')) return { object: withTypeMeta(info, current), deleted: true };
        return { object: withTypeMeta(info, await this.storage.delete(key, revisionOf(current))), deleted: true };
      }
      const next = deepClone(current);
      if (finalizers.length > 0) next.metadata.finalizers = finalizers;
      const already = next.metadata.deletionTimestamp !== undefined;
      const currentGrace = next.metadata.deletionGracePeriodSeconds;
      if (!already || (currentGrace !== undefined && grace < currentGrace)) {
        next.metadata.deletionTimestamp = rfc3339(new Date(this.now().getTime() + grace * 1000));
        next.metadata.deletionGracePeriodSeconds = grace;
        if (info.generation) next.metadata.generation = (next.metadata.generation ?? 0) + 1;
      }
      if (options.dryRun?.includes('All') || canonicalJson(next) === canonicalJson(current)) return { object: withTypeMeta(info, current), deleted: false };
      return { object: withTypeMeta(info, await this.storage.update(key, next, revisionOf(current))), deleted: false };
    });
  }

  async deleteCollection(info: ResourceInfo, namespace: string | undefined, listOptions: ListOptions, options: DeleteOptions): Promise<ObjectList> {
    const list = await this.list(info, namespace, { labelSelector: listOptions.labelSelector, fieldSelector: listOptions.fieldSelector });
    const deleted: KObject[] = [];
    for (const item of list.items) {
      try {
        deleted.push(await this.delete(info, item.metadata.namespace, nameOf(item), options));
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 404)) throw error;
      }
    }
    return { ...list, items: deleted };
  }

  /** Applies the status-subresource and generation rules of an update. */
  private prepareUpdate(info: ResourceInfo, object: KObject, old: KObject, subresource?: string): KObject {
    const custom = strategyFor(info.kind).prepareForSubresourceUpdate;
    // The kind's own rule for this subresource first (csr approval, pods/resize).
    let next = subresource !== undefined && subresource !== 'binding' ? custom?.(subresource, object, old) : undefined;
    if (next === undefined && subresource === 'status') {
      // Status writes change status (and metadata labels/annotations), never spec.
      next = deepClone(old);
      next.status = object.status;
      next.metadata.labels = object.metadata.labels;
      next.metadata.annotations = object.metadata.annotations;
    } else if (next === undefined) {
      next = object;
      if (info.statusSubresource) next.status = old.status;
    }
    const meta = next.metadata;
    // Immutable metadata is carried over from the stored object.
    meta.uid = old.metadata.uid;
    meta.creationTimestamp = old.metadata.creationTimestamp;
    meta.deletionTimestamp = old.metadata.deletionTimestamp;
    meta.deletionGracePeriodSeconds = old.metadata.deletionGracePeriodSeconds;
    meta.namespace = old.metadata.namespace;
    meta.resourceVersion = old.metadata.resourceVersion;
    if (meta.deletionTimestamp === undefined) delete meta.deletionTimestamp;
    if (meta.deletionGracePeriodSeconds === undefined) delete meta.deletionGracePeriodSeconds;
    if (info.generation) {
      meta.generation = old.metadata.generation ?? 1;
      // What is stored decides (a resize body's other spec changes are dropped): pod generation
      // bumps on any spec change, a resize included (KEP-5067).
      if (subresource !== 'status' && canonicalJson(next.spec) !== canonicalJson(old.spec)) meta.generation += 1;
    }
    if (subresource === undefined) strategyFor(info.kind).prepareForUpdate?.(next, old);
    return next;
  }

  /** An object in deletion whose finalizers are gone is removed instead of written. */
  private async writeOrFinalize(info: ResourceInfo, key: string, next: KObject, old: KObject): Promise<KObject> {
    try {
      const finalizers = next.metadata.finalizers ?? [];
      const graceful = strategyFor(info.kind).checkGracefulDelete !== undefined;
      const graceDone = !graceful || next.metadata.deletionGracePeriodSeconds === 0;
      if (next.metadata.deletionTimestamp && finalizers.length === 0 && graceDone) {
        await this.storage.update(key, next, revisionOf(old));
        return await this.storage.delete(key);
      }
      return await this.storage.update(key, next, revisionOf(old));
    } catch (error) {
      throw this.mapStorageError(info, nameOf(next), error);
    }
  }

  private checkBody(info: ResourceInfo, namespace: string | undefined, body: unknown, name: string | undefined): KObject {
    if (!isRecord(body)) throw badRequest('the request body must be a JSON or YAML object');
    const cloned = deepClone(body);
    if (cloned.metadata === undefined) cloned.metadata = {};
    if (!isRecord(cloned.metadata)) throw badRequest('metadata must be an object');
    const object: KObject = { ...cloned, metadata: cloned.metadata };
    if (object.kind !== undefined && object.kind !== info.kind)
      throw badRequest(`the API version in the data (${String(object.apiVersion)}) does not match the expected API version (${groupVersion(info)}) or kind ${String(object.kind)} is not ${info.kind}`);
    if (object.apiVersion !== undefined && object.apiVersion !== groupVersion(info))
      throw badRequest(`the API version in the data (${String(object.apiVersion)}) does not match the expected API version (${groupVersion(info)})`);
    const meta = object.metadata;
    if (info.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== namespace)
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      meta.namespace = namespace;
    } else delete meta.namespace;
    if (name !== undefined && meta.name !== undefined && meta.name !== name) throw badRequest('the name of the object (' + String(meta.name) + ') does not match the name on the URL (' + name + ')');
    if (name !== undefined) meta.name = name;
    if (!meta.name && !meta.generateName) throw invalid(info.kind, info.group, '', [{ reason: 'FieldValueRequired', message: 'name or generateName is required', field: 'metadata.name' }]);
    object.apiVersion = groupVersion(info);
    object.kind = info.kind;
    return object;
  }

  private async validate(info: ResourceInfo, object: KObject, old: KObject | undefined, subresource?: string): Promise<void> {
    const causes = strategyFor(info.kind).validate(object, old, subresource);
    if (causes.length === 0) for (const hook of this.admitHooks.get(info.kind) ?? []) causes.push(...(await hook(object, old, this)));
    if (causes.length > 0) throw invalid(info.kind, info.group, object.metadata.name ?? '', causes);
  }

  /** Depth and size bounds, checked on what would be stored (a patch can deepen or grow an object). */
  private checkStorable(object: KObject): void {
    checkDepth(object, undefined, 'the object');
    const bytes = Buffer.byteLength(JSON.stringify(object));
    if (bytes > this.maxObjectBytes) throw tooLarge(this.maxObjectBytes);
  }

  private async requireActiveNamespace(info: ResourceInfo, namespace: string, name: string): Promise<void> {
    const ns = await this.storage.get(storageKey(nsInfo, undefined, namespace));
    if (!ns) throw notFound(nsInfo, namespace);
    if (ns.metadata.deletionTimestamp)
      throw new ApiError(403, 'Forbidden', `${info.group ? `${info.name}.${info.group}` : info.name} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`);
  }

  private mapStorageError(info: ResourceInfo, name: string, error: unknown): unknown {
    if (!(error instanceof StorageError)) return error;
    if (error.kind === 'AlreadyExists') return alreadyExists(info, name);
    if (error.kind === 'NotFound') return notFound(info, name);
    return conflict(info, name);
  }

  private async serialized<T>(info: ResourceInfo, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(info.name) ?? Promise.resolve();
    const run = previous.then(work, work);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(info.name, tail);
    return run;
  }
}

const nsInfo = resourceNamed('namespaces');

function keyOf(info: ResourceInfo, object: KObject): string {
  return storageKey(info, object.metadata.namespace, nameOf(object));
}

export function withTypeMeta(info: ResourceInfo, object: KObject): KObject {
  if (object.apiVersion === groupVersion(info) && object.kind === info.kind) return object;
  return { ...object, apiVersion: groupVersion(info), kind: info.kind };
}

function encodeContinue(key: string, revision: number): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: revision, start: key })).toString('base64url');
}

function decodeContinue(token: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { start?: unknown };
    if (typeof parsed.start !== 'string') throw new Error('no start key');
    return parsed.start;
  } catch (error) {
    throw new ApiError(400, 'BadRequest', `continue key is not valid: ${error instanceof Error ? error.message : String(error)}`);
  }
}
