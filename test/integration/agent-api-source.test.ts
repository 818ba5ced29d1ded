/**
 * The API pod source against the in-process control plane: only pods bound to this node,
 * updates (deletionTimestamp) and deletions arrive as complete sets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { ApiPodSource } from '../../agent/sources/api.js';
import { createLogger } from '../../lib/log.js';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor as pollUntil } from '../helpers/wait.js';

const env = await prerequisites();

/** Polls with this file's default deadline (test/helpers/wait.ts). */
const until = <T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> =>
  pollUntil(what, probe, timeoutMs, 50);

describe.skipIf(env.skip)('agent API pod source', () => {
  let cp: TestControlPlane;
  let core: CoreV1Api;
  let source: ApiPodSource;
  let latest: V1Pod[] | undefined;

  beforeAll(async () => {
    cp = await startTestControlPlane({ controllers: false });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    source = new ApiPodSource({ kubeConfig: kc, nodeName: 'node-a', onPods: (_s, pods) => (latest = pods), log: createLogger('test', 'silent'), retryMs: 100 });
  });
  afterAll(async () => {
    await source?.stop();
    await cp?.stop();
  });

  const pod = (name: string, nodeName: string): V1Pod => ({ metadata: { name, namespace: 'default' }, spec: { nodeName, terminationGracePeriodSeconds: 5, containers: [{ name: 'c', image: 'i:1' }] } });
  const names = () => (latest ?? []).map((p) => p.metadata!.name).sort().join(',');

  it('lists and watches only the pods bound to this node', async () => {
    await core.createNamespacedPod({ namespace: 'default', body: pod('a1', 'node-a') });
    await core.createNamespacedPod({ namespace: 'default', body: pod('b1', 'node-b') });
    await source.start();
    expect(source.hasSynced).toBe(true);
    expect(names()).toBe('a1');
    await core.createNamespacedPod({ namespace: 'default', body: pod('a2', 'node-a') });
    await until('a2', () => (names() === 'a1,a2' ? true : undefined));
    await core.deleteNamespacedPod({ name: 'a1', namespace: 'default' });
    const deleting = await until('a1 deleting', () => latest?.find((p) => p.metadata!.name === 'a1' && p.metadata!.deletionTimestamp));
    expect(deleting.metadata!.deletionGracePeriodSeconds).toBe(5);
    await core.deleteNamespacedPod({ name: 'a1', namespace: 'default', body: { gracePeriodSeconds: 0 } });
    await until('a1 gone', () => (names() === 'a2' ? true : undefined));
  });
});
