/**
 * The ControllerRefManager of kube-controller-manager (pkg/controller/controller_ref_manager.go,
 * ClaimObject; https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/#non-template-pod-acquisitions):
 * of the objects a controller could own, those it owns and still selects are kept; an orphan it
 * selects is adopted (a controller ownerReference is added) unless either side is being deleted;
 * one it owns but no longer selects is released (its ownerReference removed). Objects in
 * deletion are neither adopted nor released, and a controller in deletion adopts and releases
 * nothing.
 */
import type { Registry } from '../registry.js';
import type { ResourceInfo } from '../resources.js';
import type { KObject } from '../storage/types.js';
import { selectorMatches } from '../kinds-workload.js';
import { controllerOf, controllerRefFor, ignoreNotFound, obj } from './workload-util.js';

interface Claim {
  owned: KObject[];
  adopt: KObject[];
  release: KObject[];
}

/** Pure: how the controller's selector sorts the candidate objects (same namespace as the controller). */
export function claimObjects(controller: KObject, candidates: KObject[]): Claim {
  const claim: Claim = { owned: [], adopt: [], release: [] };
  const selector = obj(controller.spec).selector;
  const controllerDeleting = controller.metadata.deletionTimestamp !== undefined;
  for (const object of candidates) {
    if (object.metadata.namespace !== controller.metadata.namespace) continue;
    const ref = controllerOf(object);
    const matches = selectorMatches(selector, object.metadata.labels);
    if (ref) {
      if (ref.uid !== controller.metadata.uid) continue;
      if (matches) claim.owned.push(object);
      else if (!controllerDeleting && !object.metadata.deletionTimestamp) claim.release.push(object);
      continue;
    }
    if (matches && !controllerDeleting && !object.metadata.deletionTimestamp) claim.adopt.push(object);
  }
  return claim;
}

/** AdoptPod/AdoptReplicaSet: adds the controller reference if the object is still an orphan; returns it if adopted. */
export async function adopt(registry: Registry, info: ResourceInfo, ownerInfo: ResourceInfo, owner: KObject, object: KObject): Promise<KObject | undefined> {
  const updated = await ignoreNotFound(
    registry.mutate(info, object.metadata.namespace, object.metadata.name as string, (current) => {
      if (controllerOf(current) || current.metadata.deletionTimestamp) return current;
      current.metadata.ownerReferences = [...(current.metadata.ownerReferences ?? []), controllerRefFor(ownerInfo, owner)] as KObject['metadata']['ownerReferences'];
      return current;
    }),
  );
  return updated && controllerOf(updated)?.uid === owner.metadata.uid ? updated : undefined;
}

/** ReleasePod/ReleaseReplicaSet: removes the owner's reference (only if it is still there). */
export async function release(registry: Registry, info: ResourceInfo, owner: KObject, object: KObject): Promise<void> {
  await ignoreNotFound(
    registry.mutate(info, object.metadata.namespace, object.metadata.name as string, (current) => {
      const refs = current.metadata.ownerReferences ?? [];
      const kept = refs.filter((ref) => obj(ref).uid !== owner.metadata.uid);
      if (kept.length === refs.length) return current;
      if (kept.length > 0) current.metadata.ownerReferences = kept;
      else delete current.metadata.ownerReferences;
      return current;
    }),
  );
}
