/**
 * The three patch types of `PATCH` (https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/):
 * JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch, which merges
 * lists that carry a `patchMergeKey` in the Kubernetes types (containers by name, conditions by
 * type, ...) and understands the `$patch`, `$setElementOrder`, `$retainKeys` and
 * `$deleteFromPrimitiveList` directives that kubectl emits. Pure functions on JSON values.
 */

import jsonpatch from 'fast-json-patch';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export class PatchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PatchError';
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/**
 * Keys that reach an object's prototype chain when used as a property name. A patch may not
 * name them: `__proto__` would replace (or, through a shared prototype, pollute) what every
 * object inherits, and `constructor`/`prototype` walk to Object's functions (issue 25 item 1).
 */
const forbiddenKeys: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Own property only: `target.constructor` of a plain object is Object, not a field. */
function own(target: JsonObject, key: string): Json | undefined {
  return Object.prototype.hasOwnProperty.call(target, key) ? target[key] : undefined;
}

/** Defines (never assigns through a setter such as `__proto__`). */
function setOwn(target: JsonObject, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function checkKey(key: string): void {
  if (forbiddenKeys.has(key)) throw new PatchError(`the patch names the forbidden field "${key}"`);
}

/** RFC 7386. */
export function applyMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    checkKey(key);
    if (value === null) delete result[key];
    else setOwn(result, key, applyMergePatch(own(result, key) ?? null, value));
  }
  return result;
}

function pointerTokens(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** RFC 6902 (add, remove, replace, move, copy, test) with fast-json-patch; `test` compares deeply. */
export function applyJsonPatch(target: Json, operations: unknown): Json {
  if (!Array.isArray(operations)) throw new PatchError('a JSON patch must be an array of operations');
  for (const raw of operations) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') throw new PatchError('each JSON patch operation needs "op" and "path"');
    for (const pointer of [raw.path, raw.from]) {
      if (typeof pointer !== 'string') continue;
      if (pointer !== '' && !pointer.startsWith('/')) throw new PatchError(`invalid JSON pointer "${pointer}"`);
      for (const token of pointerTokens(pointer)) checkKey(token);
    }
  }
  try {
    const ops = operations as jsonpatch.Operation[];
    return jsonpatch.applyPatch(clone(target), clone(ops), true, true, true).newDocument;
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new PatchError(`JSON patch failed: ${message}`, { cause: error });
  }
}

/** patchMergeKey of list fields in the core types (by field name; k8s.io/api/core/v1/types.go). */
function mergeKeyFor(field: string, items: Json[]): string | undefined {
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'env':
    case 'volumes':
    case 'imagePullSecrets':
      return 'name';
    case 'volumeMounts':
      return 'mountPath';
    case 'conditions':
    case 'addresses':
      return 'type';
    case 'taints':
      return 'key';
    case 'ownerReferences':
      return 'uid';
    case 'hostAliases':
      return 'ip';
    case 'ports':
      return items.some((item) => isObject(item) && 'containerPort' in item) ? 'containerPort' : 'port';
    default:
      return undefined;
  }
}

/** Lists of scalars merged as sets (patchStrategy: merge). */
const primitiveMergeLists = new Set(['finalizers']);

function mergeList(field: string, original: Json[], patch: Json[]): Json[] {
  const key = mergeKeyFor(field, [...original, ...patch]);
  if (!key) {
    if (primitiveMergeLists.has(field)) return [...original, ...patch.filter((item) => !original.includes(item))];
    return patch.filter((item) => !(isObject(item) && '$patch' in item));
  }
  if (patch.some((item) => isObject(item) && item.$patch === 'replace')) {
    return patch.filter((item) => !(isObject(item) && item.$patch === 'replace'));
  }
  const result = original.map((item) => clone(item));
  for (const item of patch) {
    if (!isObject(item)) throw new PatchError(`list "${field}" needs objects with "${key}"`);
    const index = result.findIndex((existing) => isObject(existing) && existing[key] === item[key]);
    if (item.$patch === 'delete') {
      if (index >= 0) result.splice(index, 1);
    } else if (index >= 0) result[index] = applyStrategicMergePatch(result[index] as Json, item);
    else result.push(applyStrategicMergePatch({}, item));
  }
  return result;
}

/** Strategic merge patch for the list fields kubectl and client-node patch. */
export function applyStrategicMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _ignored, ...rest } = patch;
    return clone(rest);
  }
  if (patch.$patch === 'delete') return null;
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    checkKey(key);
    if (key === '$patch' || key === '$retainKeys' || key.startsWith('$setElementOrder/')) continue;
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length);
      checkKey(field);
      const current = own(result, field);
      if (Array.isArray(current) && Array.isArray(value)) setOwn(result, field, current.filter((item) => !value.includes(item)));
      continue;
    }
    if (value === null) delete result[key];
    else if (Array.isArray(value)) {
      const current = own(result, key);
      setOwn(result, key, mergeList(key, Array.isArray(current) ? current : [], value));
    } else if (isObject(value)) {
      const merged = applyStrategicMergePatch(own(result, key) ?? null, value);
      if (merged === null) delete result[key];
      else setOwn(result, key, merged);
    } else setOwn(result, key, value);
  }
  return result;
}

type PatchType = 'json' | 'merge' | 'strategic' | 'apply';

export function patchTypeOf(contentType: string): PatchType | undefined {
  const base = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  if (base === 'application/json-patch+json') return 'json';
  if (base === 'application/merge-patch+json') return 'merge';
  if (base === 'application/strategic-merge-patch+json') return 'strategic';
  if (base === 'application/apply-patch+yaml' || base === 'application/apply-patch+cbor') return 'apply';
  return undefined;
}

/** Applies a decoded patch to a decoded JSON document (both came from JSON.parse or YAML). */
export function applyPatch(type: Exclude<PatchType, 'apply'>, target: unknown, patch: unknown): Json {
  const document = isObject(target) ? target : null;
  if (type === 'json') return applyJsonPatch(document, patch);
  if (!isObject(patch)) throw new PatchError('a merge patch must be a JSON object');
  return type === 'merge' ? applyMergePatch(document, patch) : applyStrategicMergePatch(document, patch);
}
