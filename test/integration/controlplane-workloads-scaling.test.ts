/**
 * Deployment scaling during a rollout (proportional scaling, the max-replicas annotation) and
 * the ControllerRefManager (adoption of orphans, release of relabelled pods), driven by the
 * real kubectl against an in-process control plane with one Ready node; a small "kubelet" in
 * the test marks bound pods Running/Ready as a kubelet would. Pods whose template asks for a
 * node that does not exist stay Pending: that is how a rollout is held half-way, as a bad
 * image holds one on a real cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';
import { resources, type ResourceInfo } from '../../controlplane/resources.js';
import type { KObject } from '../../controlplane/storage/types.js';

const env = await prerequisites('command:kubectl');
const info = (name: string) => resources.find((r) => r.name === name) as ResourceInfo;
const pods = info('pods');
const ns = 'scaling';

type Obj = Record<string, unknown>;
const o = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});

describe.skipIf(env.skip)('deployment scaling and controller references with kubectl', () => {
  let cp: TestControlPlane;
  let kubelet: NodeJS.Timeout | undefined;
  const kubectl = async (args: string[], input?: string) => run(['kubectl', '--kubeconfig', cp.kubeconfigPath, '-n', ns, ...args], { allowFailure: true, timeoutMs: 60_000, input });
  const list = async (resource: string, selector?: string) => (await cp.registry.list(info(resource), ns, { labelSelector: selector })).items;
  const live = (items: KObject[]) => items.filter((p) => !p.metadata.deletionTimestamp);

  const tick = async () => {
    for (const pod of await list('pods')) {
      if (pod.metadata.deletionTimestamp && o(pod.spec).nodeName) {
        await cp.registry.delete(pods, ns, pod.metadata.name as string, { gracePeriodSeconds: 0 }).catch(() => undefined);
        continue;
      }
      if (!o(pod.spec).nodeName || pod.metadata.deletionTimestamp || o(pod.status).phase === 'Running') continue;
      const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      await cp.registry
        .mutate(pods, ns, pod.metadata.name as string, (p) => ({ ...p, status: { ...o(p.status), phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }] } }), 'status')
        .catch(() => undefined);
    }
  };

  beforeAll(async () => {
    cp = await startTestControlPlane({ resyncMs: 500 });
    expect((await kubectl(['create', 'namespace', ns])).code).toBe(0);
    const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'sc1' }, status: { allocatable: { cpu: '8', memory: '8Gi', pods: '500' }, conditions: [{ type: 'Ready', status: 'True' }] } };
    expect((await kubectl(['apply', '-f', '-'], JSON.stringify(node))).code).toBe(0);
    let busy = false;
    kubelet = setInterval(() => {
      if (busy) return;
      busy = true;
      void tick()
        .catch(() => undefined)
        .finally(() => (busy = false));
    }, 50);
  });
  afterAll(async () => {
    if (kubelet) clearInterval(kubelet);
    await cp?.stop();
  });

  it('spreads a scale-up during a stuck rollout over both ReplicaSets, as the documentation example', async () => {
    expect((await kubectl(['create', 'deployment', 'web', '--image=i:1', '--replicas=10'])).code).toBe(0);
    expect((await kubectl(['patch', 'deploy/web', '--type=merge', '-p', JSON.stringify({ spec: { strategy: { rollingUpdate: { maxSurge: 3, maxUnavailable: 2 } } } })])).code).toBe(0);
    expect((await kubectl(['rollout', 'status', 'deploy/web', '--timeout=60s'])).stdout).toContain('successfully rolled out');
    // A template no node can take: the new pods stay Pending and the rollout stops at old 8 / new 5.
    expect((await kubectl(['patch', 'deploy/web', '--type=merge', '-p', JSON.stringify({ spec: { template: { spec: { nodeSelector: { missing: 'yes' } } } } })])).code).toBe(0);
    const sizes = async () => {
      const sets = await list('replicasets');
      const byNew = (isNew: boolean) => sets.filter((rs) => JSON.stringify(o(o(o(rs.spec).template).spec).nodeSelector ?? {}).includes('missing') === isNew).map((rs) => o(rs.spec).replicas);
      return `${byNew(false).join()}/${byNew(true).join()}`;
    };
    await waitFor('rollout stuck at old 8 / new 5', async () => (await sizes()) === '8/5', 30_000);
    expect((await kubectl(['scale', 'deploy/web', '--replicas=15'])).code).toBe(0);
    // 5 more replicas (15 + 3 - 13): 3 to the old set (8 → 11), 2 to the new (5 → 7).
    await waitFor('proportional scale-up to old 11 / new 7', async () => (await sizes()) === '11/7', 30_000);
    const sets = await list('replicasets');
    for (const rs of sets) expect(rs.metadata.annotations).toMatchObject({ 'deployment.kubernetes.io/desired-replicas': '15', 'deployment.kubernetes.io/max-replicas': '18' });
    const events = (await kubectl(['describe', 'deploy/web'])).stdout;
    expect(events).toMatch(/Scaled up replica set web-\w+ from 8 to 11/);
    expect(events).toMatch(/Scaled up replica set web-\w+ from 5 to 7/);
    await kubectl(['delete', 'deploy/web']);
  });

  it('adopts orphans and releases relabelled pods; a re-created Deployment adopts its orphaned ReplicaSet', async () => {
    expect((await kubectl(['create', 'deployment', 'app', '--image=i:1', '--replicas=2'])).code).toBe(0);
    expect((await kubectl(['rollout', 'status', 'deploy/app', '--timeout=60s'])).stdout).toContain('successfully rolled out');
    const [rs] = await list('replicasets', 'app=app');
    const [first] = live(await list('pods', 'app=app'));
    // Relabelled out of the selector: released (no controller reference) and replaced.
    expect((await kubectl(['label', 'pod', String(first?.metadata.name), 'app=elsewhere', '--overwrite'])).code).toBe(0);
    await waitFor('relabelled pod released', async () => ((await cp.registry.get(pods, ns, String(first?.metadata.name))).metadata.ownerReferences ?? []).length === 0);
    await waitFor('replacement pod', async () => live(await list('pods', 'app=app')).length === 2);
    // Labelled back: an orphan the ReplicaSet selects again; adopted, and the surplus pod deleted.
    expect((await kubectl(['label', 'pod', String(first?.metadata.name), 'app=app', `pod-template-hash=${String(rs?.metadata.labels?.['pod-template-hash'])}`, '--overwrite'])).code).toBe(0);
    await waitFor('two pods again, all owned by the ReplicaSet', async () => {
      const now = live(await list('pods', 'app=app'));
      return now.length === 2 && now.every((p) => JSON.stringify(p.metadata.ownerReferences ?? []).includes(String(rs?.metadata.uid)));
    });
    // Orphaned ReplicaSet, then the same Deployment again: adopted, no new ReplicaSet, no new pods.
    expect((await kubectl(['delete', 'deploy/app', '--cascade=orphan'])).code).toBe(0);
    await waitFor('replicaset orphaned', async () => ((await cp.registry.get(info('replicasets'), ns, String(rs?.metadata.name))).metadata.ownerReferences ?? []).length === 0);
    const podsBefore = live(await list('pods', 'app=app')).map((p) => p.metadata.uid).sort();
    expect((await kubectl(['create', 'deployment', 'app', '--image=i:1', '--replicas=2'])).code).toBe(0);
    const d = await cp.registry.get(info('deployments'), ns, 'app');
    await waitFor('replicaset adopted by the new deployment', async () => JSON.stringify((await cp.registry.get(info('replicasets'), ns, String(rs?.metadata.name))).metadata.ownerReferences ?? []).includes(String(d.metadata.uid)));
    expect((await kubectl(['rollout', 'status', 'deploy/app', '--timeout=60s'])).stdout).toContain('successfully rolled out');
    expect(await list('replicasets', 'app=app')).toHaveLength(1);
    expect(live(await list('pods', 'app=app')).map((p) => p.metadata.uid).sort()).toEqual(podsBefore);
  });
});
