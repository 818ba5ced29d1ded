/**
 * pods/binding (pkg/registry/core/pod/storage BindingREST): sets spec.nodeName once and marks
 * the pod PodScheduled=True. A pod that is already bound, or being deleted, is a 409 Conflict.
 */
import type { Registry } from './registry.js';
import { resources, type ResourceInfo, resourceNamed } from './resources.js';
import { badRequest, conflict } from './status.js';
import type { KObject } from './storage/types.js';
import { isRecord, recordOf, recordsOf, rfc3339 } from './util.js';

const podInfo = resourceNamed('pods');

export function setCondition(status: Record<string, unknown>, condition: Record<string, unknown>): void {
  const conditions = recordsOf(status.conditions);
  const index = conditions.findIndex((c) => c.type === condition.type);
  const old = conditions[index];
  if (old) {
    const changed = old.status !== condition.status;
    conditions[index] = { ...old, ...condition, lastTransitionTime: changed ? condition.lastTransitionTime : old.lastTransitionTime };
  } else conditions.push(condition);
  status.conditions = conditions;
}

export async function bindPod(registry: Registry, namespace: string, name: string, body: unknown, now = new Date()): Promise<KObject> {
  if (!isRecord(body) || !isRecord(body.target) || typeof body.target.name !== 'string' || body.target.name === '')
    throw badRequest('a Binding needs target.name');
  const node = body.target.name;
  await registry.mutate(podInfo, namespace, name, (pod) => {
    const spec = recordOf(pod.spec);
    pod.spec = spec;
    if (pod.metadata.deletionTimestamp) throw conflict(podInfo, name, 'pod is being deleted, cannot be assigned to a host');
    if (spec.nodeName) throw conflict(podInfo, name, `pod ${name} is already assigned to node "${String(spec.nodeName)}"`);
    spec.nodeName = node;
    return pod;
  }, 'binding');
  return registry.mutate(podInfo, namespace, name, (pod) => {
    const status = recordOf(pod.status);
    setCondition(status, { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: rfc3339(now) });
    pod.status = status;
    return pod;
  }, 'status');
}
