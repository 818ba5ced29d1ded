/**
 * The in-process controllers against the API, through client-node: node IPAM, scheduler,
 * EndpointSlice/Endpoints, node lifecycle (with a short grace period).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PatchStrategy, setHeaderOptions, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { createKubeClients, type KubeClients } from '../helpers/kube-client.js';

const env = await prerequisites();

async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await read();
      if (check(last)) return last;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 600)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const readyCondition = () => [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ready', lastHeartbeatTime: new Date(), lastTransitionTime: new Date() }];

describe.skipIf(env.skip)('controllers', () => {
  let cp: TestControlPlane;
  let k: KubeClients;
  beforeAll(async () => {
    cp = await startTestControlPlane({ nodeMonitorGracePeriodMs: 3_000, resyncMs: 300, clusterCidr: '10.244.0.0/22', eventTtlMs: 3_000 });
    k = await createKubeClients(cp.kubeconfigPath);
  });
  afterAll(async () => {
    await cp?.stop();
  });

  const makeNode = async (name: string, extra: Partial<V1Node> = {}, ready = true) => {
    await k.core.createNode({ body: { metadata: { name, labels: { 'kubernetes.io/hostname': name, ...(extra.metadata?.labels ?? {}) } }, spec: extra.spec, status: { capacity: { cpu: '1', memory: '1Gi', pods: '10' }, allocatable: { cpu: '1', memory: '1Gi', pods: '10' } } } });
    if (ready) await k.core.patchNodeStatus({ name, body: { status: { conditions: readyCondition() } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  };

  it('node IPAM gives each node its own /24 and reuses a deleted node\'s block', async () => {
    for (const name of ['ipam-a', 'ipam-b', 'ipam-c']) await makeNode(name, {}, false);
    const cidrs = await Promise.all(
      ['ipam-a', 'ipam-b', 'ipam-c'].map((name) => eventually(() => k.core.readNode({ name }), (n) => !!n.spec?.podCIDR, `podCIDR of ${name}`).then((n) => n.spec!.podCIDR!)),
    );
    expect(new Set(cidrs).size).toBe(3);
    for (const cidr of cidrs) expect(cidr).toMatch(/^10\.244\.[0-3]\.0\/24$/);
    const node = await k.core.readNode({ name: 'ipam-b' });
    expect(node.spec?.podCIDRs).toEqual([node.spec?.podCIDR]);
    await k.core.deleteNode({ name: 'ipam-b' });
    await makeNode('ipam-d', {}, false);
    const d = await eventually(() => k.core.readNode({ name: 'ipam-d' }), (n) => !!n.spec?.podCIDR, 'podCIDR of ipam-d');
    expect(d.spec?.podCIDR).toBe(node.spec?.podCIDR);
    // The /22 holds four /24s: a fifth node gets none.
    await makeNode('ipam-e', {}, false);
    await makeNode('ipam-f', {}, false);
    await new Promise((r) => setTimeout(r, 500));
    const all = (await k.core.listNode()).items.map((n) => n.spec?.podCIDR).filter((c): c is string => !!c);
    expect(new Set(all).size).toBe(all.length);
    expect(all.length).toBe(4);
    for (const name of ['ipam-a', 'ipam-c', 'ipam-d', 'ipam-e', 'ipam-f']) await k.core.deleteNode({ name });
  });

  it('schedules onto a fitting node and reports unschedulable pods', async () => {
    await makeNode('sched-ok');
    await makeNode('sched-tainted', { spec: { taints: [{ key: 'dedicated', value: 'x', effect: 'NoSchedule' }] }, metadata: { labels: { pool: 'special' } } });
    await makeNode('sched-notready', {}, false);
    await k.core.createNamespace({ body: { metadata: { name: 'sched' } } });
    const pod = (name: string, cpu: string, extra: Partial<V1Pod['spec']> = {}): V1Pod => ({
      metadata: { name },
      spec: { containers: [{ name: 'c', image: 'busybox:1.36', resources: { requests: { cpu } } }], ...extra },
    });
    await k.core.createNamespacedPod({ namespace: 'sched', body: pod('small', '600m') });
    const small = await eventually(() => k.core.readNamespacedPod({ namespace: 'sched', name: 'small' }), (p) => !!p.spec?.nodeName, 'small bound');
    expect(small.spec?.nodeName).toBe('sched-ok');
    expect(small.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status).toBe('True');
    await k.core.createNamespacedPod({ namespace: 'sched', body: pod('big', '600m') });
    const big = await eventually(
      () => k.core.readNamespacedPod({ namespace: 'sched', name: 'big' }),
      (p) => p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False') ?? false,
      'big unschedulable',
    );
    const condition = big.status!.conditions!.find((c) => c.type === 'PodScheduled')!;
    expect(condition.reason).toBe('Unschedulable');
    expect(condition.message).toMatch(/^0\/3 nodes are available: 1 Insufficient cpu, 1 node\(s\) had untolerated taint \{dedicated: x\}, 1 node\(s\) had untolerated taint \{node.kubernetes.io\/not-ready: \}\.$/);
    await k.core.createNamespacedPod({
      namespace: 'sched',
      body: pod('special', '100m', { nodeSelector: { pool: 'special' }, tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'x', effect: 'NoSchedule' }] }),
    });
    const special = await eventually(() => k.core.readNamespacedPod({ namespace: 'sched', name: 'special' }), (p) => !!p.spec?.nodeName, 'special bound');
    expect(special.spec?.nodeName).toBe('sched-tainted');
    // Room frees up: the unschedulable pod is retried and bound.
    await k.core.deleteNamespacedPod({ namespace: 'sched', name: 'small', gracePeriodSeconds: 0 });
    const later = await eventually(() => k.core.readNamespacedPod({ namespace: 'sched', name: 'big' }), (p) => !!p.spec?.nodeName, 'big bound after room freed');
    expect(later.spec?.nodeName).toBe('sched-ok');
    await k.core.deleteNamespace({ name: 'sched' });
    for (const name of ['sched-ok', 'sched-tainted', 'sched-notready']) await k.core.deleteNode({ name });
  });

  it('maintains EndpointSlices and Endpoints from Services and Pods', async () => {
    await k.core.createNamespace({ body: { metadata: { name: 'eps' } } });
    const mkPod = async (name: string, ip: string, ready: boolean, port = 8080) => {
      await k.core.createNamespacedPod({
        namespace: 'eps',
        body: { metadata: { name, labels: { app: 'web' } }, spec: { nodeName: 'eps-node', containers: [{ name: 'c', image: 'busybox:1.36', ports: [{ name: 'http', containerPort: port }] }] } },
      });
      const current = await k.core.readNamespacedPod({ namespace: 'eps', name });
      current.status = { ...current.status, phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] };
      await k.core.replaceNamespacedPodStatus({ namespace: 'eps', name, body: current });
    };
    await mkPod('a', '10.244.1.10', true);
    await mkPod('b', '10.244.1.11', false);
    await mkPod('c', '10.244.1.12', true, 9090);
    await k.core.createNamespacedService({ namespace: 'eps', body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } } });
    const sliceList = await eventually(
      () => k.discovery.listNamespacedEndpointSlice({ namespace: 'eps', labelSelector: 'kubernetes.io/service-name=web' }),
      (l) => l.items.reduce((n, s) => n + (s.endpoints?.length ?? 0), 0) === 3,
      'slices for web',
    );
    expect(sliceList.items).toHaveLength(2); // two resolved port sets: 8080 and 9090
    for (const slice of sliceList.items) {
      expect(slice.metadata?.labels?.['endpointslice.kubernetes.io/managed-by']).toBe('endpointslice-controller.k8s.io');
      expect(slice.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Service', name: 'web', controller: true });
      expect(slice.addressType).toBe('IPv4');
    }
    const byIp = new Map(sliceList.items.flatMap((s) => (s.endpoints ?? []).map((e) => [e.addresses[0], { ...e, port: s.ports?.[0]?.port }])));
    expect(byIp.get('10.244.1.10')).toMatchObject({ conditions: { ready: true, serving: true, terminating: false }, nodeName: 'eps-node', port: 8080, targetRef: { kind: 'Pod', name: 'a' } });
    expect(byIp.get('10.244.1.11')).toMatchObject({ conditions: { ready: false, serving: false, terminating: false } });
    expect(byIp.get('10.244.1.12')).toMatchObject({ port: 9090 });
    const ep = await k.core.readNamespacedEndpoints({ namespace: 'eps', name: 'web' });
    const subset8080 = ep.subsets?.find((s) => s.ports?.[0]?.port === 8080);
    expect(subset8080?.addresses?.map((a) => a.ip)).toEqual(['10.244.1.10']);
    expect(subset8080?.notReadyAddresses?.map((a) => a.ip)).toEqual(['10.244.1.11']);

    // Terminating: serving stays, ready goes.
    await k.core.deleteNamespacedPod({ namespace: 'eps', name: 'a', gracePeriodSeconds: 30 });
    await eventually(
      () => k.discovery.listNamespacedEndpointSlice({ namespace: 'eps', labelSelector: 'kubernetes.io/service-name=web' }),
      (l) => l.items.some((s) => s.endpoints?.some((e) => e.addresses[0] === '10.244.1.10' && e.conditions?.terminating === true && e.conditions.ready === false && e.conditions.serving === true)),
      'terminating endpoint',
    );
    // publishNotReadyAddresses makes not-ready pods ready endpoints.
    await k.core.patchNamespacedService({ namespace: 'eps', name: 'web', body: { spec: { publishNotReadyAddresses: true } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await eventually(
      () => k.discovery.listNamespacedEndpointSlice({ namespace: 'eps', labelSelector: 'kubernetes.io/service-name=web' }),
      (l) => l.items.some((s) => s.endpoints?.some((e) => e.addresses[0] === '10.244.1.11' && e.conditions?.ready === true)),
      'publishNotReadyAddresses',
    );
    // Deleting the Service removes its slices and Endpoints.
    await k.core.deleteNamespacedService({ namespace: 'eps', name: 'web' });
    await eventually(() => k.discovery.listNamespacedEndpointSlice({ namespace: 'eps' }), (l) => l.items.length === 0, 'slices removed');
    await eventually(() => k.core.listNamespacedEndpoints({ namespace: 'eps' }), (l) => l.items.length === 0, 'endpoints removed');
    await k.core.deleteNamespace({ name: 'eps' });
  });

  it('expires events a TTL after their last occurrence', async () => {
    const event = (name: string) => ({ metadata: { name }, involvedObject: { kind: 'Pod', name: 'x', namespace: 'default' }, reason: 'Test', message: name, type: 'Normal', lastTimestamp: new Date() });
    await k.core.createNamespacedEvent({ namespace: 'default', body: event('once') });
    await k.core.createNamespacedEvent({ namespace: 'default', body: event('repeating') });
    // 'repeating' keeps occurring (lastTimestamp renewed, as the kubelet's event recorder does).
    const names = async () => (await k.core.listNamespacedEvent({ namespace: 'default' })).items.map((e) => e.metadata?.name);
    const deadline = Date.now() + 20_000;
    while ((await names()).includes('once')) {
      if (Date.now() > deadline) throw new Error('event "once" did not expire');
      await k.core.patchNamespacedEvent({ namespace: 'default', name: 'repeating', body: { lastTimestamp: new Date() } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await names()).toContain('repeating');
  });

  it('marks a node whose lease is not renewed Unknown, taints it and its pods not ready', async () => {
    await makeNode('life');
    const lease = await k.coordination.createNamespacedLease({ namespace: 'kube-node-lease', body: { metadata: { name: 'life' }, spec: { holderIdentity: 'life', leaseDurationSeconds: 2, renewTime: new Date() } } });
    await k.core.createNamespacedPod({ namespace: 'default', body: { metadata: { name: 'life-pod' }, spec: { nodeName: 'life', containers: [{ name: 'c', image: 'busybox:1.36' }] } } });
    const pod = await k.core.readNamespacedPod({ namespace: 'default', name: 'life-pod' });
    pod.status = { ...pod.status, phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };
    await k.core.replaceNamespacedPodStatus({ namespace: 'default', name: 'life-pod', body: pod });
    // Renewing keeps it Ready beyond the grace period.
    let current = lease;
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 500));
      current = await k.coordination.replaceNamespacedLease({ namespace: 'kube-node-lease', name: 'life', body: { ...current, spec: { ...current.spec, renewTime: new Date() } } });
    }
    expect((await k.core.readNode({ name: 'life' })).status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    // Stop renewing.
    const node = await eventually(
      () => k.core.readNode({ name: 'life' }),
      (n) => n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'Unknown' && (n.spec?.taints?.length ?? 0) === 2,
      'node Unknown and tainted',
    );
    expect(node.status?.conditions?.find((c) => c.type === 'Ready')?.message).toBe('Kubelet stopped posting node status.');
    expect(node.spec?.taints?.map((t) => `${t.key}:${t.effect}`).sort()).toEqual(['node.kubernetes.io/unreachable:NoExecute', 'node.kubernetes.io/unreachable:NoSchedule']);
    await eventually(
      () => k.core.readNamespacedPod({ namespace: 'default', name: 'life-pod' }),
      (p) => p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'False',
      'pod not ready',
    );
    // The kubelet comes back: Ready=True and a fresh lease remove the taints.
    await k.coordination.replaceNamespacedLease({ namespace: 'kube-node-lease', name: 'life', body: { ...(await k.coordination.readNamespacedLease({ namespace: 'kube-node-lease', name: 'life' })), spec: { ...current.spec, renewTime: new Date() } } });
    await k.core.patchNodeStatus({ name: 'life', body: { status: { conditions: readyCondition() } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    await eventually(() => k.core.readNode({ name: 'life' }), (n) => !n.spec?.taints?.length, 'taints removed');
  });
});
