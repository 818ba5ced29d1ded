/**
 * Garbage-collector decisions (https://kubernetes.io/docs/concepts/architecture/garbage-collection/),
 * pure: what happens to a dependent once an owner is gone or being deleted (the finalizers a
 * DELETE adds are chosen in ../deletion-policy.ts).
 */
import type { KObject } from '../storage/types.js';
import { ownerRefs, type OwnerReference } from './workload-util.js';

export { foregroundFinalizer, orphanFinalizer } from '../deletion-policy.js';

type DependentAction =
  | { action: 'keep' }
  | { action: 'delete'; policy: 'Background' | 'Foreground' }
  | { action: 'removeRefs'; uids: string[] };

/**
 * What to do with `dependent` given which of its owners still exist (`alive`, by uid) and the owner
 * being processed: gone → delete the dependent when no owner is left, else drop the dangling
 * references; in foreground deletion → delete it in foreground too; orphaning → drop the reference.
 */
export function dependentAction(dependent: KObject, owner: { uid: string; state: 'gone' | 'foreground' | 'orphan' }, alive: Set<string>): DependentAction {
  const refs = ownerRefs(dependent);
  if (!refs.some((r) => r.uid === owner.uid)) return { action: 'keep' };
  if (owner.state === 'orphan') return { action: 'removeRefs', uids: [owner.uid] };
  if (owner.state === 'foreground') return dependent.metadata.deletionTimestamp ? { action: 'keep' } : { action: 'delete', policy: 'Foreground' };
  const living = refs.filter((r) => r.uid !== owner.uid && alive.has(r.uid));
  if (living.length === 0) return dependent.metadata.deletionTimestamp ? { action: 'keep' } : { action: 'delete', policy: 'Background' };
  const dangling = refs.filter((r) => !alive.has(r.uid)).map((r) => r.uid);
  return { action: 'removeRefs', uids: dangling };
}

/** Whether a foreground-deleting owner may go: no dependent that blocks it is left. */
export function blockingDependents(owner: string, dependents: KObject[]): KObject[] {
  return dependents.filter((d) => ownerRefs(d).some((r: OwnerReference) => r.uid === owner && r.blockOwnerDeletion === true));
}
