/**
 * The three patch types of `PATCH` (https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/):
 * JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch, which merges
 * lists that carry a `patchMergeKey` in the Kubernetes types (containers by name, conditions by
 * type, ...) and understands the `$patch`, `$setElementOrder`, `$retainKeys` and
 * `$deleteFromPrimitiveList` directives that kubectl emits. Pure functions on JSON values.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export class PatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PatchError';
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** RFC 7386. */
export function applyMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key] ?? null, value);
  }
  return result;
}

interface JsonPatchOp {
  op: string;
  path: string;
  value?: Json;
  from?: string;
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new PatchError(`invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function resolveParent(root: Json, tokens: string[], path: string): { parent: JsonObject | Json[]; last: string } {
  let node: Json = root;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[Number(token)] as Json;
    else if (isObject(node)) node = node[token] as Json;
    else node = undefined as unknown as Json;
    if (node === undefined || node === null || typeof node !== 'object') throw new PatchError(`path "${path}" does not exist`);
  }
  return { parent: node as JsonObject | Json[], last: tokens[tokens.length - 1] as string };
}

function arrayIndex(array: Json[], token: string, path: string, forInsert: boolean): number {
  if (token === '-' && forInsert) return array.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchError(`invalid array index "${token}" in "${path}"`);
  const index = Number(token);
  if (index > array.length || (!forInsert && index === array.length)) throw new PatchError(`array index ${index} out of range in "${path}"`);
  return index;
}

function getAt(root: Json, path: string): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return root;
  const { parent, last } = resolveParent(root, tokens, path);
  const value = Array.isArray(parent) ? parent[arrayIndex(parent, last, path, false)] : parent[last];
  if (value === undefined) throw new PatchError(`path "${path}" does not exist`);
  return value;
}

function removeAt(root: Json, path: string): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) throw new PatchError('cannot remove the whole document');
  const { parent, last } = resolveParent(root, tokens, path);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, last, path, false), 1)[0] as Json;
  if (!(last in parent)) throw new PatchError(`path "${path}" does not exist`);
  const value = parent[last] as Json;
  delete parent[last];
  return value;
}

function addAt(root: Json, path: string, value: Json, replace: boolean): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  const { parent, last } = resolveParent(root, tokens, path);
  if (Array.isArray(parent)) {
    const index = arrayIndex(parent, last, path, !replace);
    parent.splice(index, replace ? 1 : 0, value);
  } else {
    if (replace && !(last in parent)) throw new PatchError(`path "${path}" does not exist`);
    parent[last] = value;
  }
  return root;
}

/** RFC 6902: add, remove, replace, move, copy, test. */
export function applyJsonPatch(target: Json, operations: unknown): Json {
  if (!Array.isArray(operations)) throw new PatchError('a JSON patch must be an array of operations');
  let doc = clone(target);
  for (const raw of operations) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') throw new PatchError('each JSON patch operation needs "op" and "path"');
    const op = raw as unknown as JsonPatchOp;
    switch (op.op) {
      case 'add':
      case 'replace':
        if (!('value' in raw)) throw new PatchError(`operation "${op.op}" needs a value`);
        doc = addAt(doc, op.path, clone(op.value as Json), op.op === 'replace');
        break;
      case 'remove':
        removeAt(doc, op.path);
        break;
      case 'move':
      case 'copy': {
        if (typeof op.from !== 'string') throw new PatchError(`operation "${op.op}" needs "from"`);
        const value = op.op === 'move' ? removeAt(doc, op.from) : clone(getAt(doc, op.from));
        doc = addAt(doc, op.path, value, false);
        break;
      }
      case 'test':
        if (JSON.stringify(getAt(doc, op.path)) !== JSON.stringify(op.value)) throw new PatchError(`test operation failed at "${op.path}"`);
        break;
      default:
        throw new PatchError(`unknown JSON patch operation "${op.op}"`);
    }
  }
  return doc;
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
    if (key === '$patch' || key === '$retainKeys' || key.startsWith('$setElementOrder/')) continue;
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length);
      const current = result[field];
      if (Array.isArray(current) && Array.isArray(value)) result[field] = current.filter((item) => !value.includes(item));
      continue;
    }
    if (value === null) delete result[key];
    else if (Array.isArray(value)) result[key] = mergeList(key, Array.isArray(result[key]) ? (result[key] as Json[]) : [], value);
    else if (isObject(value)) {
      const merged = applyStrategicMergePatch(result[key] ?? null, value);
      if (merged === null) delete result[key];
      else result[key] = merged;
    } else result[key] = value;
  }
  return result;
}

export type PatchType = 'json' | 'merge' | 'strategic' | 'apply';

export function patchTypeOf(contentType: string): PatchType | undefined {
  const base = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  if (base === 'application/json-patch+json') return 'json';
  if (base === 'application/merge-patch+json') return 'merge';
  if (base === 'application/strategic-merge-patch+json') return 'strategic';
  if (base === 'application/apply-patch+yaml' || base === 'application/apply-patch+cbor') return 'apply';
  return undefined;
}

export function applyPatch(type: Exclude<PatchType, 'apply'>, target: Json, patch: Json): Json {
  if (type === 'json') return applyJsonPatch(target, patch);
  if (!isObject(patch)) throw new PatchError('a merge patch must be a JSON object');
  return type === 'merge' ? applyMergePatch(target, patch) : applyStrategicMergePatch(target, patch);
}
