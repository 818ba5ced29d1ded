/**
 * Which accepted config fields knode honours: one table per config type (lib/config/support-*.ts)
 * lists every field of its schema as `honoured` (with the behaviour test that proves it) or
 * `not implemented`. At start each component logs ONE warning naming every not-implemented field
 * the user set to something other than its default, so that no setting is silently ignored
 * (issue 22). The README's tables are rendered from the same tables (a unit test compares them).
 *
 * Field paths are the leaves of the zod object schema, dotted ("conntrack.maxPerCore"); maps such
 * as evictionHard or featureGates are one leaf.
 */
import type { z } from 'zod';
import type { Logger } from '../log.js';

export type FieldSupport =
  | { status: 'honoured'; /** test file (repo path) */ test: string; /** a test title (or unique text) in that file */ name: string; note?: string }
  | { status: 'not implemented'; note?: string; /** values that do work (e.g. the default behaviour named explicitly) */ except?: readonly unknown[] };

export type SupportTable = Readonly<Record<string, FieldSupport>>;

interface ZodDef {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
}

const def = (schema: z.ZodType): ZodDef => (schema as unknown as { _zod: { def: ZodDef } })._zod.def;

/** The object schema under defaults, optionals and transforms; undefined for a leaf. */
function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let current: z.ZodType | undefined = schema;
  for (let depth = 0; current && depth < 10; depth++) {
    const d = def(current);
    if (d.type === 'object') return d.shape;
    current = d.innerType ?? d.in;
  }
  return undefined;
}

/** Every leaf field path of an object schema (apiVersion and kind aside). */
export function schemaFieldPaths(schema: z.ZodType, prefix = ''): string[] {
  const shape = objectShape(schema);
  if (!shape) return [];
  const paths: string[] = [];
  for (const [key, child] of Object.entries(shape)) {
    if (!prefix && (key === 'apiVersion' || key === 'kind')) continue;
    const path = prefix ? `${prefix}.${key}` : key;
    if (objectShape(child)) paths.push(...schemaFieldPaths(child, path));
    else paths.push(path);
  }
  return paths;
}

export function valueAt(object: unknown, path: string): unknown {
  let current: unknown = object;
  for (const part of path.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stable(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

/** The not-implemented fields whose value differs from the default. */
export function unimplementedSettings(config: unknown, defaults: unknown, table: SupportTable): string[] {
  return Object.entries(table)
    .filter(([path, support]) => {
      if (support.status !== 'not implemented') return false;
      const value = stable(valueAt(config, path));
      return value !== stable(valueAt(defaults, path)) && !(support.except ?? []).some((allowed) => stable(allowed) === value);
    })
    .map(([path]) => path);
}

/** Logs the one start-up warning (nothing when every set field is honoured). */
export function warnUnimplemented(log: Logger, kind: string, fields: readonly string[]): void {
  if (fields.length === 0) return;
  log.warn({ kind, fields }, `${kind}: these settings are accepted but not implemented by knode and have no effect: ${fields.join(', ')}`);
}

/** The README table of a support table (markdown). */
export function renderSupportTable(table: SupportTable): string {
  const lines = ['| field | knode | tested by | note |', '|---|---|---|---|'];
  for (const [path, support] of Object.entries(table)) {
    const except = support.status === 'not implemented' && support.except ? ` (except ${support.except.map((v) => JSON.stringify(v)).join(', ')})` : '';
    const test = support.status === 'honoured' ? `\`${support.test}\`` : '';
    lines.push(`| \`${path}\` | ${support.status}${except} | ${test} | ${(support.note ?? '').replace(/\|/g, '\\|')} |`);
  }
  return lines.join('\n');
}
