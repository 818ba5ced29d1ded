/**
 * Reading and validating config files. Every failure is a ConfigError whose one-line message
 * names the file and the field, e.g.
 *   config file "/etc/knode/kubelet.yaml": field "evictionHard.memory.available": invalid quantity "1x"
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import { ConfigError, describeError } from '../errors.js';

/** Reads one YAML or JSON document from a file (JSON is YAML). */
export function readConfigDocument(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`config file "${file}": cannot read: ${describeError(error)}`, { cause: error });
  }
  return parseConfigText(text, file);
}

function parseConfigText(text: string, file: string): unknown {
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents)) throw new ConfigError(`config file "${file}": not a YAML or JSON document`);
  const nonEmpty = documents.filter((doc) => doc.contents !== null);
  if (nonEmpty.length === 0) throw new ConfigError(`config file "${file}": is empty`);
  if (nonEmpty.length > 1) throw new ConfigError(`config file "${file}": holds ${nonEmpty.length} documents, expected one`);
  const doc = nonEmpty[0]!;
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const line = first.linePos?.[0]?.line;
    throw new ConfigError(`config file "${file}": invalid YAML${line ? ` at line ${line}` : ''}: ${first.message.split('\n')[0]}`);
  }
  return doc.toJS();
}

/** Formats a zod issue path as Kubernetes field paths are written ("a.b[0].c"). */
function fieldPath(path: readonly PropertyKey[]): string {
  return path
    .map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? String(part) : `.${String(part)}`))
    .join('');
}

/** Validates data against a schema; the first issue becomes a ConfigError naming file and field. */
export function validateConfig<S extends z.ZodType>(schema: S, data: unknown, file: string): z.output<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = fieldPath(issue.path);
  throw new ConfigError(`config file "${file}": ${field ? `field "${field}": ` : ''}${issue.message}`);
}

/** Checks apiVersion and kind before anything else, so a wrong file type gets a plain answer. */
export function expectTypeMeta(data: unknown, file: string, apiVersions: readonly string[], kind: string): Record<string, unknown> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`config file "${file}": expected a ${kind} object`);
  }
  const object = data as Record<string, unknown>;
  if (!apiVersions.includes(String(object.apiVersion))) {
    throw new ConfigError(`config file "${file}": field "apiVersion": unknown apiVersion ${JSON.stringify(object.apiVersion)} (expected ${apiVersions.join(' or ')})`);
  }
  if (object.kind !== kind) {
    throw new ConfigError(`config file "${file}": field "kind": unknown kind ${JSON.stringify(object.kind)} (expected ${kind})`);
  }
  return object;
}

/** Top-level keys the schema does not know: reported as warnings, as the kubelet's lenient decoding does. */
export function unknownTopLevelFields(data: Record<string, unknown>, known: readonly string[]): string[] {
  return Object.keys(data).filter((key) => !known.includes(key));
}
