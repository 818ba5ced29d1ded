/**
 * The control plane on the real etcd (Debian etcd-server on loopback): CRUD, conflicts, watch
 * from etcd revisions through client-node informers, and a restart that keeps objects and
 * resourceVersions (they are etcd's mod_revisions).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeInformer, type V1ConfigMap } from '@kubernetes/client-node';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { createKubeClients } from '../helpers/kube-client.js';
import { startTestEtcd, type TestEtcd } from './controlplane-etcd.js';

const env = await prerequisites('command:etcd');

describe.skipIf(env.skip)('control plane on etcd', () => {
  let etcd: TestEtcd;
  let cp: TestControlPlane | undefined;
  const prefix = `/knode-etcd-test-${process.pid}`;
  beforeAll(async () => {
    etcd = await startTestEtcd();
  });
  afterAll(async () => {
    await cp?.stop();
    await etcd?.stop();
  });

  it('serves CRUD and informers from etcd and survives a restart', async () => {
    cp = await startTestControlPlane({ storage: 'etcd', etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix, controllers: false });
    let k = await createKubeClients(cp.kubeconfigPath);
    const informer = makeInformer(k.kubeConfig, '/api/v1/namespaces/default/configmaps', () => k.core.listNamespacedConfigMap({ namespace: 'default' }));
    const seen = new Map<string, string | undefined>();
    informer.on('add', (cm: V1ConfigMap) => seen.set(cm.metadata!.name!, cm.metadata?.resourceVersion));
    informer.on('update', (cm: V1ConfigMap) => seen.set(cm.metadata!.name!, cm.metadata?.resourceVersion));
    informer.on('delete', (cm: V1ConfigMap) => seen.delete(cm.metadata!.name!));
    await informer.start();
    try {
      const a = await k.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'a' }, data: { v: '1' } } });
      const b = await k.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'b' } } });
      expect(Number(b.metadata?.resourceVersion)).toBeGreaterThan(Number(a.metadata?.resourceVersion));
      const a2 = await k.core.replaceNamespacedConfigMap({ namespace: 'default', name: 'a', body: { ...a, data: { v: '2' } } });
      await expect(k.core.replaceNamespacedConfigMap({ namespace: 'default', name: 'a', body: { ...a, data: { v: '3' } } })).rejects.toSatisfy((e) => (e as { code?: number }).code === 409);
      await k.core.deleteNamespacedConfigMap({ namespace: 'default', name: 'b' });
      const deadline = Date.now() + 15_000;
      while (!(seen.get('a') === a2.metadata?.resourceVersion && !seen.has('b')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(seen.get('a')).toBe(a2.metadata?.resourceVersion);
      expect(seen.has('b')).toBe(false);
    } finally {
      await informer.stop();
    }
    const before = await k.core.listNamespacedConfigMap({ namespace: 'default' });
    await cp.stop();
    cp = await startTestControlPlane({ storage: 'etcd', etcdEndpoints: [etcd.endpoint], etcdPrefix: prefix, controllers: false });
    k = await createKubeClients(cp.kubeconfigPath);
    const after = await k.core.listNamespacedConfigMap({ namespace: 'default' });
    expect(after.items.map((i) => [i.metadata?.name, i.metadata?.resourceVersion, i.metadata?.uid])).toEqual(before.items.map((i) => [i.metadata?.name, i.metadata?.resourceVersion, i.metadata?.uid]));
    const ns = await k.core.listNamespace();
    expect(ns.items.map((n) => n.metadata?.name).sort()).toEqual(['default', 'kube-node-lease', 'kube-public', 'kube-system']);
  });
});
