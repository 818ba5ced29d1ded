/**
 * pods/resize through the real Registry and pod strategy (KEP-1287; upstream ValidatePodResize and
 * the ResizeStrategy): what may change, the 422 causes with their field paths, generation bumps.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from '../../controlplane/registry.js';
import { resourceNamed } from '../../controlplane/resources.js';
import { ApiError } from '../../controlplane/status.js';
import { MemoryStorage } from '../../controlplane/storage/memory.js';
import type { KObject } from '../../controlplane/storage/types.js';
import { apiResourceList } from '../../controlplane/discovery.js';

const pods = resourceNamed('pods');
const namespaces = resourceNamed('namespaces');

type Container = Record<string, unknown>;

async function setup(containers: Container[], extra: { initContainers?: Container[]; annotations?: Record<string, string> } = {}): Promise<{ registry: Registry; pod: KObject }> {
  const registry = new Registry(new MemoryStorage());
  await registry.create(namespaces, undefined, { metadata: { name: 'default' } });
  const pod = await registry.create(pods, 'default', {
    metadata: { name: 'p', ...(extra.annotations ? { annotations: extra.annotations } : {}) },
    spec: { containers, ...(extra.initContainers ? { initContainers: extra.initContainers } : {}) },
  });
  return { registry, pod };
}

const burstable = (): Container => ({ name: 'c', image: 'busybox', resources: { requests: { cpu: '100m', memory: '32Mi' }, limits: { cpu: '200m', memory: '64Mi' } } });

function resize(registry: Registry, change: (pod: KObject) => void): Promise<KObject> {
  return registry.mutate(
    pods,
    'default',
    'p',
    (pod) => {
      change(pod);
      return pod;
    },
    'resize',
  );
}

async function causesOf(promise: Promise<unknown>): Promise<{ field?: string; message: string }[]> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError && error.code === 422) return error.details?.causes ?? [];
    throw error;
  }
  throw new Error('expected a 422');
}

const containerOf = (pod: KObject, index = 0): Container => ((pod.spec as { containers: Container[] }).containers[index] ?? {});

describe('pods/resize', () => {
  it('is listed in discovery with get, patch and update', () => {
    const list = apiResourceList('', 'v1') as { resources: { name: string; verbs: string[] }[] };
    expect(list.resources.find((r) => r.name === 'pods/resize')?.verbs).toEqual(['get', 'patch', 'update']);
  });

  it('changes cpu and memory and resizePolicy, bumps generation, drops every other change', async () => {
    const { registry, pod } = await setup([burstable()]);
    expect(pod.metadata.generation).toBe(1);
    const resized = await resize(registry, (p) => {
      const c = containerOf(p);
      c.resources = { requests: { cpu: '300m', memory: '48Mi' }, limits: { cpu: '400m', memory: '128Mi' } };
      c.resizePolicy = [{ resourceName: 'memory', restartPolicy: 'RestartContainer' }];
      c.image = 'other'; // not a resize field: dropped, as the ResizeStrategy does
      (p.spec as Record<string, unknown>).activeDeadlineSeconds = 5;
    });
    expect(resized.metadata.generation).toBe(2);
    expect(containerOf(resized).resources).toEqual({ requests: { cpu: '300m', memory: '48Mi' }, limits: { cpu: '400m', memory: '128Mi' } });
    expect(containerOf(resized).resizePolicy).toEqual([{ resourceName: 'memory', restartPolicy: 'RestartContainer' }]);
    expect(containerOf(resized).image).toBe('busybox');
    expect((resized.spec as Record<string, unknown>).activeDeadlineSeconds).toBeUndefined();
  });

  it('the main endpoint still refuses a resources change', async () => {
    const { registry } = await setup([burstable()]);
    const causes = await causesOf(
      registry.mutate(pods, 'default', 'p', (p) => {
        containerOf(p).resources = { requests: { cpu: '300m', memory: '32Mi' }, limits: { cpu: '400m', memory: '64Mi' } };
        return p;
      }),
    );
    expect(causes[0]?.field).toBe('spec');
  });

  it('refuses a QoS class change (a BestEffort pod cannot gain requests)', async () => {
    const { registry } = await setup([{ name: 'c', image: 'busybox' }]);
    const causes = await causesOf(resize(registry, (p) => (containerOf(p).resources = { requests: { memory: '40Mi' } })));
    expect(causes).toEqual([expect.objectContaining({ field: 'spec', message: 'Invalid value: "Burstable": Pod QOS Class may not change as a result of resizing' })]);
  });

  it('refuses removing requests or limits, and non-cpu/memory resources', async () => {
    const { registry } = await setup([burstable()]);
    const removed = await causesOf(resize(registry, (p) => (containerOf(p).resources = { requests: { cpu: '100m', memory: '32Mi' }, limits: { cpu: '200m' } })));
    expect(removed).toContainEqual(expect.objectContaining({ field: 'spec.containers[0].resources.limits', message: 'Forbidden: resource limits cannot be removed' }));
    const storage = await causesOf(
      resize(registry, (p) => (containerOf(p).resources = { requests: { cpu: '100m', memory: '32Mi', 'ephemeral-storage': '1Gi' }, limits: { cpu: '200m', memory: '64Mi' } })),
    );
    expect(storage).toContainEqual(expect.objectContaining({ field: 'spec', message: 'Forbidden: only cpu and memory resources are mutable' }));
  });

  it('refuses requests above limits and bad resize policies', async () => {
    const { registry } = await setup([burstable()]);
    const causes = await causesOf(
      resize(registry, (p) => {
        const c = containerOf(p);
        c.resources = { requests: { cpu: '500m', memory: '32Mi' }, limits: { cpu: '200m', memory: '64Mi' } };
        c.resizePolicy = [{ resourceName: 'gpu', restartPolicy: 'Sometimes' }];
      }),
    );
    expect(causes.map((c) => c.field)).toEqual(expect.arrayContaining(['spec.containers[0].resources.requests[cpu]', 'spec.containers[0].resizePolicy[0].resourceName', 'spec.containers[0].resizePolicy[0].restartPolicy']));
  });

  it('keeps regular init containers unchanged and resizes sidecars', async () => {
    const init = { name: 'init', image: 'busybox', resources: { requests: { cpu: '100m' } } };
    const sidecar = { name: 'side', image: 'busybox', restartPolicy: 'Always', resources: { requests: { cpu: '100m' } } };
    const { registry } = await setup([burstable()], { initContainers: [init, sidecar] });
    const resized = await resize(registry, (p) => {
      const inits = (p.spec as { initContainers: Container[] }).initContainers;
      inits[0]!.resources = { requests: { cpu: '150m' } };
      inits[1]!.resources = { requests: { cpu: '250m' } };
    });
    const inits = (resized.spec as { initContainers: Container[] }).initContainers;
    expect(inits[0]?.resources).toEqual({ requests: { cpu: '100m' } });
    expect(inits[1]?.resources).toEqual({ requests: { cpu: '250m' } });
  });

  it('refuses static (mirror) pods', async () => {
    const { registry } = await setup([burstable()], { annotations: { 'kubernetes.io/config.mirror': 'x' } });
    const causes = await causesOf(resize(registry, (p) => (containerOf(p).resources = { requests: { cpu: '300m', memory: '32Mi' }, limits: { cpu: '400m', memory: '64Mi' } })));
    expect(causes).toEqual([expect.objectContaining({ message: 'Forbidden: static pods cannot be resized' })]);
  });

  it('refuses a running pod whose node does not report container resources', async () => {
    const { registry } = await setup([burstable()]);
    await registry.mutate(
      pods,
      'default',
      'p',
      (p) => {
        p.status = { ...(p.status as object), containerStatuses: [{ name: 'c', state: { running: {} } }] };
        return p;
      },
      'status',
    );
    const causes = await causesOf(resize(registry, (p) => (containerOf(p).resources = { requests: { cpu: '300m', memory: '32Mi' }, limits: { cpu: '400m', memory: '64Mi' } })));
    expect(causes).toEqual([expect.objectContaining({ field: 'spec', message: 'Forbidden: Pod running on node without support for resize' })]);
  });
});

describe('pod metadata.generation (KEP-5067)', () => {
  it('starts at 1 and follows spec changes and graceful deletion, not status writes', async () => {
    const registry = new Registry(new MemoryStorage());
    await registry.create(namespaces, undefined, { metadata: { name: 'default' } });
    const created = await registry.create(pods, 'default', { metadata: { name: 'g' }, spec: { nodeName: 'n', containers: [burstable()] } });
    expect(created.metadata.generation).toBe(1);
    const image = await registry.mutate(pods, 'default', 'g', (p) => {
      containerOf(p).image = 'busybox:2';
      return p;
    });
    expect(image.metadata.generation).toBe(2);
    const status = await registry.mutate(pods, 'default', 'g', (p) => ({ ...p, status: { phase: 'Running', observedGeneration: 2 } }), 'status');
    expect(status.metadata.generation).toBe(2);
    const deleting = await registry.delete(pods, 'default', 'g', { gracePeriodSeconds: 30 });
    expect(deleting.metadata.deletionTimestamp).toBeDefined();
    expect(deleting.metadata.generation).toBe(3);
  });
});
