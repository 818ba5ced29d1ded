/**
 * EndpointSlice and Endpoints controllers (kube-controller-manager's endpointslice and
 * endpoints controllers in one): watch Services and Pods, and write the objects that
 * `endpoints-policy.ts` computes. Slices are found by the `kubernetes.io/service-name` and
 * `endpointslice.kubernetes.io/managed-by` labels; Endpoints of a Service without a selector
 * are left to the user, as upstream does.
 */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import { resources, type ResourceInfo, resourceNamed } from '../resources.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';
import { canonicalJson, isRecord } from '../util.js';
import type { WatchCache } from '../watch-cache.js';
import { desiredEndpoints, desiredSlices, managedBy } from './endpoints-policy.js';
import { KeyQueue } from './queue.js';
import type { Controller } from './controller.js';

const info = resourceNamed;
const services = info('services');
const pods = info('pods');
const slices = info('endpointslices');
const endpoints = info('endpoints');

async function ignoreNotFound(work: Promise<unknown>): Promise<void> {
  try {
    await work;
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 404)) throw error;
  }
}

/** Writes `desired` over `current` keeping what the server owns (uid, resourceVersion, ...). */
async function apply(registry: Registry, resource: ResourceInfo, current: KObject | undefined, desired: KObject): Promise<void> {
  const ns = desired.metadata.namespace;
  if (!current) {
    await registry.create(resource, ns, desired);
    return;
  }
  const { metadata: _m, ...currentBody } = current;
  const { metadata: _d, ...desiredBody } = desired;
  const sameBody = canonicalJson({ ...currentBody, apiVersion: undefined, kind: undefined }) === canonicalJson({ ...desiredBody, apiVersion: undefined, kind: undefined });
  const sameMeta = canonicalJson(current.metadata.labels ?? {}) === canonicalJson(desired.metadata.labels ?? {});
  if (sameBody && sameMeta) return;
  await registry.update(resource, ns, current.metadata.name as string, { ...desired, metadata: { ...current.metadata, labels: desired.metadata.labels, ownerReferences: desired.metadata.ownerReferences ?? current.metadata.ownerReferences } });
}

async function reconcile(registry: Registry, key: string): Promise<void> {
  const [namespace, name] = key.split('/') as [string, string];
  let service: KObject | undefined;
  try {
    service = await registry.get(services, namespace, name);
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 404)) throw error;
  }
  const existing = (await registry.list(slices, namespace, { labelSelector: `kubernetes.io/service-name=${name},endpointslice.kubernetes.io/managed-by=${managedBy}` })).items;
  const selector = service && isRecord(service.spec) ? service.spec.selector : undefined;
  if (!service || !isRecord(selector) || Object.keys(selector).length === 0) {
    for (const slice of existing) await ignoreNotFound(registry.delete(slices, namespace, slice.metadata.name as string));
    if (!service) await ignoreNotFound(deleteManagedEndpoints(registry, namespace, name));
    return;
  }
  const podList = (await registry.list(pods, namespace)).items;
  const wanted = desiredSlices(service, podList);
  for (const slice of wanted) await apply(registry, slices, existing.find((s) => s.metadata.name === slice.metadata.name), slice);
  for (const slice of existing) if (!wanted.some((w) => w.metadata.name === slice.metadata.name)) await ignoreNotFound(registry.delete(slices, namespace, slice.metadata.name as string));
  let currentEndpoints: KObject | undefined;
  try {
    currentEndpoints = await registry.get(endpoints, namespace, name);
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 404)) throw error;
  }
  await apply(registry, endpoints, currentEndpoints, desiredEndpoints(service, podList));
}

async function deleteManagedEndpoints(registry: Registry, namespace: string, name: string): Promise<void> {
  if (namespace === 'default' && name === 'kubernetes') return;
  await registry.delete(endpoints, namespace, name);
}

export function startEndpointSliceController(registry: Registry, cache: WatchCache, log: Logger): Controller {
  const queue = new KeyQueue((key) => reconcile(registry, key), log);
  const enqueueNamespace = (namespace: string | undefined) => {
    if (!namespace) return;
    registry.list(services, namespace).then(
      (list) => list.items.forEach((s) => queue.add(`${namespace}/${s.metadata.name}`)),
      (error: unknown) => log.warn({ err: error }, 'cannot list services'),
    );
  };
  const from = cache.lastRevision();
  const offServices = cache.add(
    {
      filter: { prefix: '/registry/core/services/', matches: () => true },
      send: (_type, object) => {
        if (object.metadata.namespace === 'default' && object.metadata.name === 'kubernetes') return;
        queue.add(`${object.metadata.namespace}/${object.metadata.name}`);
      },
    },
    from,
  );
  const offPods = cache.add({ filter: { prefix: '/registry/core/pods/', matches: () => true }, send: (_type, pod) => enqueueNamespace(pod.metadata.namespace) }, from);
  // Services that exist at start (for example after a restart) are reconciled once.
  registry.list(services, undefined).then(
    (list) => list.items.forEach((s) => !(s.metadata.namespace === 'default' && s.metadata.name === 'kubernetes') && queue.add(`${s.metadata.namespace}/${s.metadata.name}`)),
    (error: unknown) => log.warn({ err: error }, 'cannot list services'),
  );
  return {
    async stop() {
      offServices();
      offPods();
      await queue.stop();
    },
  };
}
