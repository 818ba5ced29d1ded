/**
 * The `pods/resize` subresource (KEP-1287 in-place pod resize, GA in 1.35):
 * - prepareResize is the ResizeStrategy's PrepareForUpdate (pkg/registry/core/pod/strategy.go
 *   dropNonResizeUpdates): the stored pod with only labels/annotations and each container's
 *   (and each sidecar's) `resources` and `resizePolicy` taken from the request, so any other
 *   change in the body is dropped, as kube-apiserver drops it;
 * - validatePodResize is pkg/apis/core/validation ValidatePodResize: requests and limits may not be
 *   removed, only cpu and memory may change, the QoS class may not change, regular init containers
 *   and static pods cannot be resized, a running pod whose node reports no
 *   `containerStatuses[].resources` cannot be resized. Memory limit decreases are allowed (1.34
 *   relaxed the beta rule; the kubelet refuses a limit below current usage, agent/pods/resize.ts).
 * Container resources are checked as on create (validateContainerResources).
 * Pure: no I/O.
 */
import { podQosClass } from '../lib/k8s/qos.js';
import { parseMilliCPU, parseQuantity } from '../lib/quantity.js';
import type { StatusCause } from './status.js';
import type { KObject } from './storage/types.js';
import { canonicalJson, deepClone, isOneOf, isRecord, podView, recordOf, recordsOf } from './util.js';
import { duplicate, forbidden, invalidValue, unsupported } from './validation.js';

type Obj = Record<string, unknown>;

const mirrorAnnotation = 'kubernetes.io/config.mirror';
const resizable = ['cpu', 'memory'];
const resizeRestartPolicies = ['NotRequired', 'PreferNoRestart', 'RestartContainer'];

const isSidecar = (container: Obj): boolean => container.restartPolicy === 'Always';

function amount(name: string, value: unknown): number {
  return name === 'cpu' ? parseMilliCPU(String(value)) : parseQuantity(String(value));
}

/** ValidateResourceRequirements (the cpu/memory part) and validateResizePolicy, on create and resize. */
export function validateContainerResources(path: string, container: Obj): StatusCause[] {
  const causes: StatusCause[] = [];
  const resources = container.resources;
  if (resources !== undefined && !isRecord(resources)) return [invalidValue(`${path}.resources`, resources, 'must be an object')];
  const parsed: Record<'requests' | 'limits', Record<string, number>> = { requests: {}, limits: {} };
  for (const kind of ['requests', 'limits'] as const) {
    const list = resources?.[kind];
    if (list === undefined || list === null) continue;
    if (!isRecord(list)) {
      causes.push(invalidValue(`${path}.resources.${kind}`, list, 'must be a map of resource names to quantities'));
      continue;
    }
    for (const [name, value] of Object.entries(list)) {
      const field = `${path}.resources.${kind}[${name}]`;
      let parsedValue: number;
      try {
        parsedValue = amount(name, value);
      } catch {
        // an unparsable quantity becomes the client's 422 cause, as upstream's decoding error
        causes.push(invalidValue(field, value, "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"));
        continue;
      }
      if (parsedValue < 0) causes.push(invalidValue(field, value, 'must be greater than or equal to 0'));
      parsed[kind][name] = parsedValue;
    }
  }
  for (const [name, request] of Object.entries(parsed.requests)) {
    const limit = parsed.limits[name];
    const limitText = isRecord(resources?.limits) ? String(resources.limits[name]) : '';
    if (limit !== undefined && request > limit) causes.push(invalidValue(`${path}.resources.requests[${name}]`, String(recordOf(resources?.requests)[name]), `must be less than or equal to ${name} limit of ${limitText}`));
  }
  const policies = container.resizePolicy;
  if (policies !== undefined && policies !== null) {
    if (!Array.isArray(policies)) causes.push(invalidValue(`${path}.resizePolicy`, policies, 'must be a list'));
    else {
      const seen = new Set<string>();
      policies.forEach((raw, index) => {
        const policy = isRecord(raw) ? raw : {};
        const at = `${path}.resizePolicy[${index}]`;
        if (!isOneOf(policy.resourceName, resizable)) causes.push(unsupported(`${at}.resourceName`, policy.resourceName, resizable));
        else if (seen.has(policy.resourceName)) causes.push(duplicate(`${at}.resourceName`, policy.resourceName));
        else seen.add(policy.resourceName);
        if (!isOneOf(policy.restartPolicy, resizeRestartPolicies)) causes.push(unsupported(`${at}.restartPolicy`, policy.restartPolicy, resizeRestartPolicies));
      });
    }
  }
  return causes;
}

/** dropNonResizeUpdates: the stored pod with only what a resize may change taken from `body`. */
export function prepareResize(body: KObject, old: KObject): KObject {
  const next = deepClone(old);
  next.metadata.labels = body.metadata.labels;
  next.metadata.annotations = body.metadata.annotations;
  if (next.metadata.labels === undefined) delete next.metadata.labels;
  if (next.metadata.annotations === undefined) delete next.metadata.annotations;
  const spec = recordOf(next.spec);
  const bodySpec = recordOf(body.spec);
  for (const list of ['containers', 'initContainers']) {
    const wanted = new Map(recordsOf(bodySpec[list]).map((c) => [c.name, c]));
    for (const container of recordsOf(spec[list])) {
      // Regular init containers keep what they had: validation would refuse a change anyway.
      const from = wanted.get(container.name);
      if (!from || (list === 'initContainers' && !isSidecar(container))) continue;
      for (const field of ['resources', 'resizePolicy']) {
        if (from[field] === undefined) delete container[field];
        else container[field] = from[field];
      }
    }
  }
  return next;
}

function listOf(resources: unknown, kind: 'requests' | 'limits'): Obj {
  return recordOf(recordOf(resources)[kind]);
}

/** validateContainerResize: requests and limits may change, never disappear. */
function checkContainerResize(path: string, next: Obj, old: Obj): StatusCause[] {
  const causes: StatusCause[] = [];
  for (const kind of ['requests', 'limits'] as const) {
    const now = listOf(next.resources, kind);
    if (Object.keys(listOf(old.resources, kind)).some((name) => now[name] === undefined || now[name] === null))
      causes.push(forbidden(`${path}.resources.${kind}`, `resource ${kind} cannot be removed`));
  }
  return causes;
}

/** The container with its cpu and memory requests/limits put back to the old ones (dropCPUMemoryResourcesFromContainer). */
function withoutCpuMemoryChanges(container: Obj, old: Obj): Obj {
  const copy = deepClone(container);
  const resources: Obj = {};
  for (const kind of ['requests', 'limits'] as const) {
    const oldList = listOf(old.resources, kind);
    if (recordOf(old.resources)[kind] === undefined) continue;
    const list: Obj = { ...listOf(container.resources, kind) };
    for (const name of resizable) {
      delete list[name];
      if (oldList[name] !== undefined) list[name] = oldList[name];
    }
    resources[kind] = list;
  }
  if (Object.keys(resources).length > 0 || old.resources !== undefined) copy.resources = resources;
  else delete copy.resources;
  delete copy.resizePolicy;
  return copy;
}

function comparable(container: Obj): string {
  const copy = deepClone(container);
  delete copy.resizePolicy;
  const resources = recordOf(copy.resources);
  for (const kind of ['requests', 'limits']) if (isRecord(resources[kind]) && Object.keys(resources[kind]).length === 0) delete resources[kind];
  if (Object.keys(resources).length === 0) delete copy.resources;
  return canonicalJson(copy);
}

/** isPodResizeRequestSupported: a running pod's node must report the containers' actual resources. */
function nodeSupportsResize(old: KObject): boolean {
  const statuses = recordsOf(recordOf(old.status).containerStatuses);
  const running = statuses.find((s) => isRecord(recordOf(s.state).running));
  return running === undefined || running.resources !== undefined;
}

export function validatePodResize(pod: KObject, old: KObject): StatusCause[] {
  const spec = recordOf(pod.spec);
  const oldSpec = recordOf(old.spec);
  if (old.metadata.annotations?.[mirrorAnnotation] !== undefined) return [forbidden('', 'static pods cannot be resized')];
  if (isRecord(oldSpec.resources) && Object.keys(oldSpec.resources).length > 0) return [forbidden('', 'pods with pod-level resources cannot be resized')];
  const causes: StatusCause[] = [];
  const oldQos = String(recordOf(old.status).qosClass ?? podQosClass(podView(old)));
  const newQos = podQosClass(podView(pod));
  if (oldQos !== newQos) causes.push(invalidValue('spec', newQos, 'Pod QOS Class may not change as a result of resizing'));
  if (!nodeSupportsResize(old)) causes.push(forbidden('spec', 'Pod running on node without support for resize'));
  const lists: [string, Obj[], Obj[]][] = [
    ['spec.containers', recordsOf(spec.containers), recordsOf(oldSpec.containers)],
    ['spec.initContainers', recordsOf(spec.initContainers), recordsOf(oldSpec.initContainers)],
  ];
  for (const [path, now, before] of lists) {
    before.forEach((oldContainer, index) => {
      const container = now[index];
      if (!container) return;
      const at = `${path}[${index}]`;
      causes.push(...validateContainerResources(at, container));
      const init = path === 'spec.initContainers';
      if (init && !isSidecar(oldContainer)) {
        if (comparable(container) !== comparable(oldContainer)) causes.push(forbidden('spec', 'resources for non-sidecar init containers are immutable'));
        return;
      }
      causes.push(...checkContainerResize(`${at}`, container, oldContainer));
      if (comparable(withoutCpuMemoryChanges(container, oldContainer)) !== comparable(oldContainer))
        causes.push(forbidden('spec', init ? 'only cpu and memory resources for sidecar containers are mutable' : 'only cpu and memory resources are mutable'));
    });
  }
  return causes;
}
