/**
 * Issue 25 item 6: the agent notices the server's view of its Node, against the real control
 * plane. The status used to be sent only when the agent's own view changed or every
 * nodeStatusReportFrequency (5 min), so a Ready=Unknown written by the node lifecycle
 * controller stayed for minutes while the lease was renewing, and a deleted Node stayed
 * missing. Now each round (nodeStatusUpdateFrequency) reads the Node: both are corrected within
 * one or two rounds. The round here is 2 s (the kubelet's default is 10 s); the report period
 * stays at its 5 min default, so the old behaviour fails this test.
 * Also the lease renewal as the kubelet's lease controller does it: from the copy the last
 * update returned, read again only after a conflict.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CoordinationV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Node } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { NodeManager, gatherNodeFacts } from '../../agent/node/manager.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';

const nodeName = `knt-view-${randomBytes(4).toString('hex')}`;
const roundMs = 2000;

const ready = (node: V1Node | undefined): string | undefined => node?.status?.conditions?.find((c) => c.type === 'Ready')?.status;

describe('issue 25 item 6: the agent corrects the server view of its Node within a status round', () => {
  let cp: TestControlPlane;
  let core: CoreV1Api;
  let manager: NodeManager;
  let dir: string;
  let leases: CoordinationV1Api;
  const leaseCalls: string[] = [];

  beforeAll(async () => {
    cp = await startTestControlPlane({ controllers: false });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    leases = kc.makeApiClient(CoordinationV1Api);
    dir = await mkdtemp(join(tmpdir(), 'knode-node-view-'));
    const runtime = new FakeRuntime();
    const coordination = kc.makeApiClient(CoordinationV1Api);
    // Counts the lease calls the manager makes (the real client underneath).
    const counted = new Proxy(coordination, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function' || typeof property !== 'string') return value;
        return (...args: unknown[]) => {
          leaseCalls.push(property);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const facts = await gatherNodeFacts({ nodeName, rootDir: dir, maxPods: 110, kubeletPort: 10250, runtime, nodeIP: '127.0.0.1' });
    manager = new NodeManager({
      core,
      coordination: counted,
      runtime,
      facts,
      config: { nodeLabels: {}, registerWithTaints: [], kubeReserved: {}, systemReserved: {}, evictionHard: {} },
      statusUpdateMs: roundMs,
      statusReportMs: 300_000,
      leaseDurationSeconds: 40,
      log: createLogger('node', 'silent'),
    });
    await manager.start();
  }, 60_000);

  afterAll(async () => {
    manager?.stop();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('registers Ready', async () => {
    expect(ready(await core.readNode({ name: nodeName }))).toBe('True');
  });

  it('puts Ready=True back after the node lifecycle controller wrote Ready=Unknown', async () => {
    const node = await core.readNode({ name: nodeName });
    const conditions = node.status!.conditions!.map((c) =>
      c.type === 'Ready' ? { ...c, status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.' } : c,
    );
    await core.patchNodeStatus({ name: nodeName, body: { status: { conditions } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    expect(ready(await core.readNode({ name: nodeName }))).toBe('Unknown');
    const started = Date.now();
    await waitFor('Ready=True again', async () => ready(await core.readNode({ name: nodeName })) === 'True', 3 * roundMs, 100);
    expect(Date.now() - started).toBeLessThanOrEqual(3 * roundMs);
  });

  it('registers the Node again after it was deleted', async () => {
    const before = await core.readNode({ name: nodeName });
    await core.deleteNode({ name: nodeName });
    const again = await waitFor(
      'the Node registered again',
      async () => {
        const node = await core.readNode({ name: nodeName }).catch(() => undefined);
        return node && node.metadata?.uid !== before.metadata?.uid ? node : undefined;
      },
      3 * roundMs,
      100,
    );
    await waitFor('the new Node Ready', async () => ready(await core.readNode({ name: nodeName })) === 'True', 2 * roundMs, 100);
    expect(manager.identity?.uid).toBe(again.metadata?.uid);
  });

  it('renews the lease from the copy its last update returned; reads it again only after a conflict or when it is gone', async () => {
    const namespace = 'kube-node-lease';
    // The rounds stop (a round renews too): only the calls below count.
    manager.stop();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await manager.renewLease();
    leaseCalls.length = 0;
    const before = await leases.readNamespacedLease({ name: nodeName, namespace });
    await manager.renewLease();
    await manager.renewLease();
    // kubelet lease controller: no GET before each renewal.
    expect(leaseCalls).toEqual(['replaceNamespacedLease', 'replaceNamespacedLease']);
    const renewed = await leases.readNamespacedLease({ name: nodeName, namespace });
    expect(Number(renewed.metadata!.resourceVersion)).toBeGreaterThan(Number(before.metadata!.resourceVersion));
    // Someone else changes it: the replace from the old copy conflicts, the lease is read again and renewed.
    await leases.replaceNamespacedLease({ name: nodeName, namespace, body: { ...renewed, spec: { ...renewed.spec, leaseDurationSeconds: 99 } } });
    leaseCalls.length = 0;
    await manager.renewLease();
    expect(leaseCalls).toEqual(['replaceNamespacedLease', 'readNamespacedLease', 'replaceNamespacedLease']);
    expect((await leases.readNamespacedLease({ name: nodeName, namespace })).spec!.leaseDurationSeconds).toBe(40);
    // Gone: created again.
    await leases.deleteNamespacedLease({ name: nodeName, namespace });
    leaseCalls.length = 0;
    await manager.renewLease();
    expect(leaseCalls).toEqual(['replaceNamespacedLease', 'readNamespacedLease', 'createNamespacedLease']);
    expect((await leases.readNamespacedLease({ name: nodeName, namespace })).spec!.holderIdentity).toBe(nodeName);
  });
});
