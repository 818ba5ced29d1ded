/**
 * The control plane against @kubernetes/client-node 1.3.0, as agent/proxy/overlay use it:
 * typed CRUD, node and pod status writes (merge and strategic merge patches), binding, leases,
 * endpointslices, informers (list + watch) and the 410 relist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeInformer, PatchStrategy, setHeaderOptions, type V1Pod, type V1Node } from '@kubernetes/client-node';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { createKubeClients, type KubeClients } from '../helpers/kube-client.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites();


function apiErrorCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

describe.skipIf(env.skip)('control plane with client-node', () => {
  let cp: TestControlPlane;
  let k: KubeClients;
  beforeAll(async () => {
    cp = await startTestControlPlane({ controllers: false, watchHistory: 50 });
    k = await createKubeClients(cp.kubeconfigPath);
  });
  afterAll(async () => {
    await cp?.stop();
  });

  it('registers a node and patches its status (merge and strategic merge)', async () => {
    const node: V1Node = { metadata: { name: 'node-a', labels: { 'kubernetes.io/hostname': 'node-a' } }, status: { capacity: { cpu: '2', memory: '4Gi', pods: '110' } } };
    const created = await k.core.createNode({ body: node });
    expect(created.metadata?.uid).toBeTruthy();
    expect(created.status?.capacity?.cpu).toBe('2');
    const conditions = [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ok', lastHeartbeatTime: new Date(), lastTransitionTime: new Date() }];
    const merged = await k.core.patchNodeStatus(
      { name: 'node-a', body: { status: { conditions, addresses: [{ type: 'InternalIP', address: '10.0.0.5' }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(merged.status?.conditions?.[0]?.status).toBe('True');
    const smp = await k.core.patchNodeStatus(
      { name: 'node-a', body: { status: { conditions: [{ type: 'MemoryPressure', status: 'False' }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    expect(smp.status?.conditions?.map((c) => c.type).sort()).toEqual(['MemoryPressure', 'Ready']);
    expect(Number(smp.metadata?.resourceVersion)).toBeGreaterThan(Number(merged.metadata?.resourceVersion));
    // Spec changes through /status are ignored, as kube-apiserver does.
    const jsonPatched = await k.core.patchNodeStatus(
      { name: 'node-a', body: [{ op: 'add', path: '/spec/unschedulable', value: true }] },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    expect(jsonPatched.spec?.unschedulable).toBeUndefined();
  });

  it('creates pods, binds them and replaces their status; optimistic concurrency gives 409', async () => {
    const pod: V1Pod = { metadata: { name: 'p1', labels: { app: 'a' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } };
    const created = await k.core.createNamespacedPod({ namespace: 'default', body: pod });
    expect(created.spec?.restartPolicy).toBe('Always');
    expect(created.spec?.containers[0]?.imagePullPolicy).toBe('Always');
    expect(created.status?.phase).toBe('Pending');
    await k.core.createNamespacedBinding({ namespace: 'default', body: { metadata: { name: 'p1' }, target: { kind: 'Node', name: 'node-a' } } });
    const bound = await k.core.readNamespacedPod({ namespace: 'default', name: 'p1' });
    expect(bound.spec?.nodeName).toBe('node-a');
    // The kubelet's status patch: strategic merge with the pod uid as precondition.
    const kubeletPatch = {
      metadata: { uid: bound.metadata?.uid },
      status: { '$setElementOrder/conditions': [{ type: 'PodScheduled' }, { type: 'Ready' }], conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ name: 'c', ready: true, restartCount: 0, image: 'busybox', imageID: '', state: { running: {} } }] },
    };
    const patched = await k.core.patchNamespacedPodStatus({ namespace: 'default', name: 'p1', body: kubeletPatch }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    expect(patched.status?.conditions?.map((c) => `${c.type}=${c.status}`).sort()).toEqual(['PodScheduled=True', 'Ready=True']);
    expect(patched.status?.containerStatuses?.[0]?.ready).toBe(true);
    await expect(
      k.core.patchNamespacedPodStatus({ namespace: 'default', name: 'p1', body: { ...kubeletPatch, metadata: { uid: 'other' } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)),
    ).rejects.toSatisfy((e) => apiErrorCode(e) === 409);
    bound.metadata = { ...bound.metadata, resourceVersion: patched.metadata?.resourceVersion };
    bound.status = { ...patched.status, phase: 'Running', podIP: '10.244.0.5', podIPs: [{ ip: '10.244.0.5' }] };
    const updated2 = await k.core.replaceNamespacedPodStatus({ namespace: 'default', name: 'p1', body: bound });
    expect(updated2.status?.podIP).toBe('10.244.0.5');
    // A stale resourceVersion is a Conflict.
    await expect(k.core.replaceNamespacedPodStatus({ namespace: 'default', name: 'p1', body: bound })).rejects.toSatisfy((e) => apiErrorCode(e) === 409);
    const onNode = await k.core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=node-a' });
    expect(onNode.items.map((p) => p.metadata?.name)).toEqual(['p1']);
    // Graceful delete of a bound pod: deletionTimestamp first, gone after the kubelet confirms with grace 0.
    const deleting = await k.core.deleteNamespacedPod({ namespace: 'default', name: 'p1' });
    expect((deleting as V1Pod).metadata?.deletionTimestamp).toBeTruthy();
    await k.core.deleteNamespacedPod({ namespace: 'default', name: 'p1', gracePeriodSeconds: 0 });
    await expect(k.core.readNamespacedPod({ namespace: 'default', name: 'p1' })).rejects.toSatisfy((e) => apiErrorCode(e) === 404);
  });

  it('serves leases and endpointslices', async () => {
    const lease = await k.coordination.createNamespacedLease({
      namespace: 'kube-node-lease',
      body: { metadata: { name: 'node-a' }, spec: { holderIdentity: 'node-a', leaseDurationSeconds: 40, renewTime: new Date() } },
    });
    lease.spec = { ...lease.spec, renewTime: new Date() };
    const renewed = await k.coordination.replaceNamespacedLease({ namespace: 'kube-node-lease', name: 'node-a', body: lease });
    expect(renewed.spec?.holderIdentity).toBe('node-a');
    await k.discovery.createNamespacedEndpointSlice({
      namespace: 'default',
      body: {
        metadata: { name: 's-1', labels: { 'kubernetes.io/service-name': 's' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.244.0.5'], conditions: { ready: true } }],
        ports: [{ port: 80, protocol: 'TCP' }],
      },
    });
    const slices = await k.discovery.listNamespacedEndpointSlice({ namespace: 'default', labelSelector: 'kubernetes.io/service-name=s' });
    expect(slices.items).toHaveLength(1);
    // The `kubernetes` Service points at this API server, in Endpoints and in an EndpointSlice.
    const api = await k.discovery.readNamespacedEndpointSlice({ namespace: 'default', name: 'kubernetes' });
    expect(api.endpoints[0]?.addresses).toEqual(['127.0.0.1']);
    expect(api.ports?.[0]).toMatchObject({ name: 'https', port: cp.port, protocol: 'TCP' });
    const svc = await k.core.readNamespacedService({ namespace: 'default', name: 'kubernetes' });
    expect(svc.spec?.clusterIP).toBe('10.96.0.1');
  });

  it('feeds an informer (list + watch) and relists after 410 Gone', async () => {
    const informer = makeInformer(k.kubeConfig, '/api/v1/namespaces/default/configmaps', () => k.core.listNamespacedConfigMap({ namespace: 'default' }));
    const seen = new Map<string, string | undefined>();
    informer.on('add', (cm) => seen.set(cm.metadata?.name ?? '', cm.data?.v));
    informer.on('update', (cm) => seen.set(cm.metadata?.name ?? '', cm.data?.v));
    informer.on('delete', (cm) => seen.delete(cm.metadata?.name ?? ''));
    informer.on('error', () => setTimeout(() => void informer.start().catch(() => undefined), 200));
    await k.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'before' }, data: { v: '1' } } });
    await informer.start();
    try {
      await waitFor('initial list', () => seen.get('before') === '1');
      await k.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'after' }, data: { v: '1' } } });
      await k.core.patchNamespacedConfigMap({ namespace: 'default', name: 'before', body: { data: { v: '2' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      await k.core.deleteNamespacedConfigMap({ namespace: 'default', name: 'after' });
      await waitFor('watch events', () => seen.get('before') === '2' && !seen.has('after'));
      // Stopped informer resumes from a resourceVersion the window (50 events) no longer covers:
      // the server answers 410 in an ERROR event, the informer relists and notices the deletion.
      await informer.stop();
      await k.core.deleteNamespacedConfigMap({ namespace: 'default', name: 'before' });
      for (let i = 0; i < 60; i++) await k.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: `bulk-${i}` } } });
      await informer.start();
      await waitFor('relist after 410', () => seen.has('bulk-59') && !seen.has('before'));
    } finally {
      await informer.stop();
    }
  });

  it('answers a watch from a too old resourceVersion with a 410 Expired Status event', async () => {
    for (let i = 0; i < 60; i++) await k.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: `old-${i}` } } });
    const response = await fetch(`${cp.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1`);
    expect(response.status).toBe(200);
    const text = await response.text();
    const event = JSON.parse(text.trim().split('\n')[0] as string) as { type: string; object: { code: number; reason: string; message: string } };
    expect(event.type).toBe('ERROR');
    expect(event.object.code).toBe(410);
    expect(event.object.reason).toBe('Expired');
    expect(event.object.message).toMatch(/too old resource version/);
  });
});
