/**
 * Unknown-field detection from the API's own type definitions: @kubernetes/client-node's models
 * (generated from kube-apiserver's OpenAPI, the same source as openapi-schemas.ts) list every
 * field of every type, so a body can be walked against them as kube-apiserver's strict decoder
 * does (https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation), with
 * paths in its notation: `spec.template.spec.containers[0].imagee`. Free-form fields (`any`,
 * RawExtension, maps of strings) are not walked; strategic-merge directives (`$patch`, …) are
 * not fields.
 */
import { models as generatedModels } from '../lib/kube-client.js';
import { isRecord } from './util.js';

interface Attribute {
  baseName: string;
  type: string;
}
const models = generatedModels as unknown as Record<string, { attributeTypeMap?: Attribute[] } | undefined>;
/** Deeper than any real object; the API server refuses bodies nested this deep anyway. */
const maxDepth = 64;

function walkType(type: string, value: unknown, path: string, out: string[], depth: number): void {
  if (depth > maxDepth || value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((item, i) => walkType(array[1] as string, item, `${path}[${i}]`, out, depth + 1));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (isRecord(value)) for (const [key, item] of Object.entries(value)) walkType(map[1] as string, item, `${path}[${key}]`, out, depth + 1);
    return;
  }
  const attributes = models[type]?.attributeTypeMap;
  if (!attributes || !isRecord(value)) return;
  const byName = new Map(attributes.map((a) => [a.baseName, a.type]));
  for (const [key, item] of Object.entries(value)) {
    if (key.startsWith('$')) continue;
    const field = path ? `${path}.${key}` : key;
    const fieldType = byName.get(key);
    if (fieldType === undefined) out.push(field);
    else walkType(fieldType, item, field, out, depth + 1);
  }
}

/** Paths of the fields `body` has that the model class (e.g. V1Deployment) does not; undefined without such a class. */
export function unknownModelFields(className: string, body: unknown): string[] | undefined {
  if (!models[className]?.attributeTypeMap) return undefined;
  const out: string[] = [];
  walkType(className, body, '', out, 0);
  return out;
}
