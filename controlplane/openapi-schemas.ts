/**
 * OpenAPI v3 component schemas for the kinds this API serves, so that `kubectl explain
 * deployment.spec.strategy` works and kubectl finds each kind's schema by its
 * `x-kubernetes-group-version-kind` (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#openapi-v3).
 *
 * Why built this way: the schemas are not written by hand. @kubernetes/client-node is generated
 * from kube-apiserver's own OpenAPI document; each model class keeps its fields and their types
 * (`attributeTypeMap`) and its .d.ts keeps the descriptions as doc comments. From those this
 * module rebuilds the schemas (names as upstream's `io.k8s.api.<group>.v1.<Type>` end in the type
 * name kubectl prints), with the strategic-merge keys kubectl needs for `kubectl apply`
 * (`x-kubernetes-patch-merge-key`, from k8s.io/api's struct tags; client-node drops them). Built
 * once, lazily, for the closure of types the served kinds reference; a missing description file
 * only costs the descriptions.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { models as generatedModels } from '../lib/kube-client.js';

interface Attribute {
  name: string;
  baseName: string;
  type: string;
  format: string;
}
type ModelClass = { attributeTypeMap?: Attribute[] };
type Schema = Record<string, unknown>;

const models = generatedModels as unknown as Record<string, ModelClass | undefined>;

/** Strategic merge patch metadata of k8s.io/api (patchStrategy/patchMergeKey struct tags). */
const patchMeta: Record<string, Record<string, { key?: string; strategy: string }>> = {
  V1PodSpec: {
    containers: { key: 'name', strategy: 'merge' },
    initContainers: { key: 'name', strategy: 'merge' },
    ephemeralContainers: { key: 'name', strategy: 'merge' },
    volumes: { key: 'name', strategy: 'merge,retainKeys' },
    imagePullSecrets: { key: 'name', strategy: 'merge' },
    hostAliases: { key: 'ip', strategy: 'merge' },
    topologySpreadConstraints: { key: 'topologyKey', strategy: 'merge' },
    resourceClaims: { key: 'name', strategy: 'merge,retainKeys' },
    schedulingGates: { key: 'name', strategy: 'merge' },
  },
  V1Container: { ports: { key: 'containerPort', strategy: 'merge' }, env: { key: 'name', strategy: 'merge' }, volumeMounts: { key: 'mountPath', strategy: 'merge' }, volumeDevices: { key: 'devicePath', strategy: 'merge' } },
  V1ObjectMeta: { ownerReferences: { key: 'uid', strategy: 'merge' }, finalizers: { strategy: 'merge' } },
  V1DeploymentSpec: { strategy: { strategy: 'retainKeys' } },
  V1DeploymentStatus: { conditions: { key: 'type', strategy: 'merge' } },
  V1ReplicaSetStatus: { conditions: { key: 'type', strategy: 'merge' } },
  V1DaemonSetStatus: { conditions: { key: 'type', strategy: 'merge' } },
  V1PodStatus: { conditions: { key: 'type', strategy: 'merge' } },
};

/** Upstream's schema name: the group's Go package path, then the type (what kubectl explain prints is the last part). */
function schemaName(className: string): string {
  const name = className.replace(/^(Core|Apps|Batch|Discovery|Coordination|Events|Storage|Authentication|Rbac|Admissionregistration)?V\d\w*?(?=[A-Z])/, '');
  const pkg = className === 'V1ObjectMeta' || className === 'V1LabelSelector' || className === 'V1LabelSelectorRequirement' || className === 'V1ManagedFieldsEntry' || className === 'V1OwnerReference'
    ? 'apimachinery.pkg.apis.meta.v1'
    : 'api.v1';
  return `io.k8s.${pkg}.${name}`;
}

let descriptionDir: string | undefined | null = null;

/** The class and field doc comments of a client-node model's .d.ts. */
function descriptions(className: string): { type?: string; fields: Map<string, string> } {
  const fields = new Map<string, string>();
  if (descriptionDir === null) {
    try {
      descriptionDir = join(dirname(createRequire(import.meta.url).resolve('@kubernetes/client-node')), 'gen', 'models');
    } catch {
    // client-node's generated models not found: the schemas go without descriptions
      descriptionDir = undefined;
    }
  }
  if (!descriptionDir || !/^\w+$/.test(className)) return { fields };
  let text: string;
  try {
    text = readFileSync(join(descriptionDir, `${className}.d.ts`), 'utf8');
  } catch {
    // no generated model file for this class: no field descriptions
    return { fields };
  }
  const clean = (comment: string) => comment.split('\n').map((line) => line.replace(/^\s*\*\s?/, '')).join(' ').replace(/\\"/g, '"').trim();
  const type = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*export declare class/.exec(text)?.[1];
  for (const match of text.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*'(\w+)'\??:/g)) fields.set(match[2] as string, clean(match[1] as string));
  return { type: type === undefined ? undefined : clean(type), fields };
}

const intOrString = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';
const intOrStringSchema: Schema = {
  type: 'string',
  format: 'int-or-string',
  'x-kubernetes-int-or-string': true,
  description:
    'IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, for example, a JSON field that can accept a name or number.',
};

const formats: Record<string, Schema> = {
  int32: { type: 'integer', format: 'int32' },
  int64: { type: 'integer', format: 'int64' },
  double: { type: 'number', format: 'double' },
  byte: { type: 'string', format: 'byte' },
};

/** The schema of one attribute type; class names are queued for their own schema. */
function typeSchema(type: string, format: string, need: (className: string) => string): Schema {
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return { type: 'array', items: typeSchema(array[1] as string, format, need) };
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return { type: 'object', additionalProperties: typeSchema(map[1] as string, format, need) };
  switch (type) {
    case 'string':
      return { ...(formats[format] ?? { type: 'string' }) };
    case 'number':
      return { ...(formats[format] ?? { type: 'number' }) };
    case 'boolean':
      return { type: 'boolean' };
    case 'Date':
      return { type: 'string', format: 'date-time' };
    case 'IntOrString':
      return { $ref: `#/components/schemas/${intOrString}` };
    case 'any':
    case 'object':
      return { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
    default:
      return models[type]?.attributeTypeMap ? { $ref: `#/components/schemas/${need(type)}` } : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  }
}

function classSchema(className: string, need: (className: string) => string): Schema {
  const docs = descriptions(className);
  const properties: Record<string, Schema> = {};
  for (const attribute of models[className]?.attributeTypeMap ?? []) {
    let schema = typeSchema(attribute.type, attribute.format, need);
    const description = docs.fields.get(attribute.name);
    // A $ref may have no siblings in OpenAPI 3.0: upstream wraps it in allOf.
    if (schema.$ref && attribute.type !== 'IntOrString') schema = { allOf: [schema], ...(attribute.baseName === 'metadata' ? {} : { default: {} }) };
    else if (schema.$ref) schema = { allOf: [schema] };
    // client-node keeps only the type's text for int-or-string fields: not repeated on the field.
    if (description && description !== intOrStringSchema.description) schema.description = description;
    const meta = patchMeta[className]?.[attribute.baseName];
    if (meta) {
      schema['x-kubernetes-patch-strategy'] = meta.strategy;
      if (meta.key) schema['x-kubernetes-patch-merge-key'] = meta.key;
    }
    properties[attribute.baseName] = schema;
  }
  return { type: 'object', ...(docs.type ? { description: docs.type } : {}), properties };
}

/** The model class of a served kind (core Event is CoreV1Event in client-node). */
function modelClassOf(kind: string, version: string): string | undefined {
  const prefix = version.toUpperCase().replace(/^V/, 'V');
  for (const name of [`${prefix}${kind}`, `Core${prefix}${kind}`]) if (models[name]?.attributeTypeMap) return name;
  return undefined;
}

const cache = new Map<string, Record<string, Schema>>();

/** components.schemas for a group version's kinds and every type they reference. */
export function componentSchemas(kinds: { group: string; version: string; kind: string }[]): Record<string, Schema> {
  const cacheKey = kinds.map((k) => `${k.group}/${k.version}/${k.kind}`).join(',');
  const cached = cache.get(cacheKey);
  if (cached) return cached;
  const schemas: Record<string, Schema> = { [intOrString]: intOrStringSchema };
  const queue: string[] = [];
  const names = new Map<string, string>();
  const need = (className: string) => {
    if (!names.has(className)) {
      names.set(className, schemaName(className));
      queue.push(className);
    }
    return names.get(className) as string;
  };
  const roots = new Map<string, { group: string; version: string; kind: string }>();
  for (const gvk of kinds) {
    const className = modelClassOf(gvk.kind, gvk.version);
    if (!className) continue;
    roots.set(need(className), gvk);
    const list = modelClassOf(`${gvk.kind}List`, gvk.version);
    if (list) roots.set(need(list), { ...gvk, kind: `${gvk.kind}List` });
  }
  for (let className = queue.shift(); className !== undefined; className = queue.shift()) schemas[names.get(className) as string] = classSchema(className, need);
  for (const [name, gvk] of roots) if (schemas[name]) schemas[name]['x-kubernetes-group-version-kind'] = [gvk];
  cache.set(cacheKey, schemas);
  return schemas;
}
