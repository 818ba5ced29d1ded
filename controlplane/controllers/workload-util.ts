/**
 * Small helpers the workload controllers share: controller ownerReferences
 * (https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/), pod
 * readiness and availability (a pod is available once Ready for minReadySeconds, as
 * podutil.IsPodAvailable), and reads that treat "not found" as absent.
 */
import type { Registry } from '../registry.js';
import type { ResourceInfo } from '../resources.js';
import { groupVersion } from '../resources.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';
import { isRecord } from '../util.js';

type Obj = Record<string, unknown>;
export const obj = (value: unknown): Obj => (isRecord(value) ? value : {});
export const list = (value: unknown): Obj[] => (Array.isArray(value) ? value.filter(isRecord) : []);

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export function controllerRefFor(info: ResourceInfo, owner: KObject): OwnerReference {
  return { apiVersion: groupVersion(info), kind: info.kind, name: owner.metadata.name ?? '', uid: owner.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

export function ownerRefs(object: KObject): OwnerReference[] {
  return list(object.metadata.ownerReferences) as unknown as OwnerReference[];
}

export function controllerOf(object: KObject): OwnerReference | undefined {
  return ownerRefs(object).find((ref) => ref.controller === true);
}

function isOwnedBy(object: KObject, owner: KObject): boolean {
  return controllerOf(object)?.uid === owner.metadata.uid;
}

function podPhase(pod: KObject): string {
  return String(obj(pod.status).phase ?? 'Pending');
}

/** Running or pending and not being deleted (controller.IsPodActive). */
export function isPodActive(pod: KObject): boolean {
  const phase = podPhase(pod);
  return phase !== 'Succeeded' && phase !== 'Failed' && !pod.metadata.deletionTimestamp;
}

export function readyCondition(pod: KObject): Obj | undefined {
  return list(obj(pod.status).conditions).find((c) => c.type === 'Ready');
}

export function isPodReady(pod: KObject): boolean {
  return readyCondition(pod)?.status === 'True';
}

/** Ready for at least minReadySeconds at `now` (podutil.IsPodAvailable). */
export function isPodAvailable(pod: KObject, minReadySeconds: number, now: Date): boolean {
  const ready = readyCondition(pod);
  if (ready?.status !== 'True') return false;
  if (minReadySeconds <= 0) return true;
  const since = Date.parse(String(ready.lastTransitionTime ?? ''));
  return Number.isFinite(since) && since + minReadySeconds * 1000 <= now.getTime();
}

/** Milliseconds until a ready pod becomes available, or undefined when it is not ready or already available. */
export function msUntilAvailable(pod: KObject, minReadySeconds: number, now: Date): number | undefined {
  const ready = readyCondition(pod);
  if (ready?.status !== 'True' || minReadySeconds <= 0) return undefined;
  const since = Date.parse(String(ready.lastTransitionTime ?? ''));
  if (!Number.isFinite(since)) return undefined;
  const left = since + minReadySeconds * 1000 - now.getTime();
  return left > 0 ? left : undefined;
}

export async function getOrUndefined(registry: Registry, info: ResourceInfo, namespace: string | undefined, name: string): Promise<KObject | undefined> {
  try {
    return await registry.get(info, namespace, name);
  } catch (error) {
    if (error instanceof ApiError && error.code === 404) return undefined;
    throw error;
  }
}

export async function ignoreNotFound<T>(work: Promise<T>): Promise<T | undefined> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof ApiError && error.code === 404) return undefined;
    throw error;
  }
}

export function intOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

/** Splits a "namespace/name" queue key. */
export function splitKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}
