/** Small helpers shared by the control-plane modules. */
import { randomBytes, randomUUID } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import type { KObject } from './storage/types.js';

export function deepClone<T>(value: T): T {
  return structuredClone(value);
}

/** JSON with sorted keys, to compare objects regardless of key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

/** RFC 3339 with second precision, as metav1.Time serializes. */
export function rfc3339(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** Like metav1.MicroTime (Lease renewTime, Event eventTime). */
function rfc3339Micro(date: Date): string {
  return `${date.toISOString().slice(0, 23)}000Z`;
}

export function newUid(): string {
  return randomUUID();
}

const suffixAlphabet = 'bcdfghjklmnpqrstvwxz2456789';

/** generateName suffix: five characters from the apiserver's alphabet (names.SimpleNameGenerator). */
export function randomSuffix(length = 5): string {
  const bytes = randomBytes(length);
  return Array.from(bytes, (b) => suffixAlphabet[b % suffixAlphabet.length]).join('');
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Typed reads of the untyped parts of a KObject (spec, status, ...), instead of casts: a field
 * of the wrong JSON type reads as absent.
 */
export function recordOf(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

export function recordsOf(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

export function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Whether `value` is one of the allowed strings (an enum field). */
export function isOneOf<T extends string>(value: unknown, allowed: readonly T[]): value is T {
  return typeof value === 'string' && (allowed as readonly string[]).includes(value);
}

/**
 * A stored Pod read through the client-node types, for the shared Kubernetes rules in lib/k8s.
 * Stored objects are plain decoded JSON, the same shape V1Pod describes with every field optional.
 */
export function podView(object: KObject): V1Pod {
  return object as V1Pod;
}
