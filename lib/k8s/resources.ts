/**
 * Effective pod requests and limits, as k8s.io/component-helpers resource.PodRequests/PodLimits
 * compute them (docs "Resource Management for Pods and Containers", "Sidecar Containers" /
 * KEP-753, "Pod Overhead"):
 * - a container's requests default to its limits (API defaulting);
 * - pod = max(sum over app containers and restartable (sidecar) init containers, each regular
 *   init container plus the sidecars started before it), per resource;
 * - spec.overhead adds to requests, and to limits only where a limit exists.
 * Amounts are numbers: cpu in millicores, everything else in its base unit (bytes, count).
 * The scheduler, the kubelet's cgroups and eviction all use these. Pure.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { parseMilliCPU, parseQuantity } from '../quantity.js';

export type ResourceAmounts = Record<string, number>;

interface PodResources {
  requests: ResourceAmounts;
  limits: ResourceAmounts;
  /** Every container (and each init step with its sidecars) declares a limit for the resource. */
  limitsDeclared: { cpu: boolean; memory: boolean };
}

/** A quantity as a number (cpu in millicores); throws with `where` named on a bad quantity. */
function resourceAmount(name: string, value: unknown, where: string): number {
  if (value === undefined || value === null) return 0;
  try {
    return name === 'cpu' ? parseMilliCPU(String(value)) : Math.floor(parseQuantity(String(value)));
  } catch (error) {
    throw new Error(`${where}: invalid ${name} quantity "${String(value)}"`, { cause: error });
  }
}

function amounts(list: Record<string, unknown> | undefined, where: string): ResourceAmounts {
  const out: ResourceAmounts = {};
  for (const [name, value] of Object.entries(list ?? {})) out[name] = resourceAmount(name, value, where);
  return out;
}

/** A container's requests (defaulted from its limits) and limits. */
export function containerResources(container: V1Container): { requests: ResourceAmounts; limits: ResourceAmounts } {
  const where = `container "${container.name}"`;
  const limits = amounts(container.resources?.limits as Record<string, unknown> | undefined, where);
  const requests = { ...limits, ...amounts(container.resources?.requests as Record<string, unknown> | undefined, where) };
  return { requests, limits };
}

function add(a: ResourceAmounts, b: ResourceAmounts): ResourceAmounts {
  const out = { ...a };
  for (const [name, value] of Object.entries(b)) out[name] = (out[name] ?? 0) + value;
  return out;
}

function max(a: ResourceAmounts, b: ResourceAmounts): ResourceAmounts {
  const out = { ...a };
  for (const [name, value] of Object.entries(b)) out[name] = Math.max(out[name] ?? 0, value);
  return out;
}

/** PodRequests and PodLimits together. Throws (naming the container) on an invalid quantity. */
export function podResources(pod: V1Pod): PodResources {
  let requests: ResourceAmounts = {};
  let limits: ResourceAmounts = {};
  const declared = { cpu: true, memory: true };
  const checkDeclared = (l: ResourceAmounts): void => {
    if (!((l.cpu ?? 0) > 0)) declared.cpu = false;
    if (!((l.memory ?? 0) > 0)) declared.memory = false;
  };
  for (const container of pod.spec?.containers ?? []) {
    const c = containerResources(container);
    checkDeclared(c.limits);
    requests = add(requests, c.requests);
    limits = add(limits, c.limits);
  }
  let sidecarRequests: ResourceAmounts = {};
  let sidecarLimits: ResourceAmounts = {};
  let initRequests: ResourceAmounts = {};
  let initLimits: ResourceAmounts = {};
  for (const container of pod.spec?.initContainers ?? []) {
    const c = containerResources(container);
    let stepRequests: ResourceAmounts;
    let stepLimits: ResourceAmounts;
    if (container.restartPolicy === 'Always') {
      requests = add(requests, c.requests);
      limits = add(limits, c.limits);
      sidecarRequests = stepRequests = add(sidecarRequests, c.requests);
      sidecarLimits = stepLimits = add(sidecarLimits, c.limits);
    } else {
      stepRequests = add(c.requests, sidecarRequests);
      stepLimits = add(c.limits, sidecarLimits);
    }
    checkDeclared(stepLimits);
    initRequests = max(initRequests, stepRequests);
    initLimits = max(initLimits, stepLimits);
  }
  requests = max(requests, initRequests);
  limits = max(limits, initLimits);
  const overhead = pod.spec?.overhead as Record<string, unknown> | undefined;
  if (overhead) {
    const o = amounts(overhead, 'pod overhead');
    requests = add(requests, o);
    for (const [name, value] of Object.entries(o)) if ((limits[name] ?? 0) > 0) limits[name]! += value;
  }
  return { requests, limits, limitsDeclared: declared };
}

/** resource.PodRequests for one resource (0 when not requested). */
export function podRequest(pod: V1Pod, resource: string): number {
  return podResources(pod).requests[resource] ?? 0;
}
