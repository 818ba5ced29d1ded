/**
 * A control-plane restart in the middle of a Job and of a rollout (file storage kept across
 * the restart): the Job's finished pods are counted exactly once (finalizer-based tracking) and
 * no pod is created twice; the rollout resumes and finishes with one ReplicaSet per template.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';
import { resources, type ResourceInfo } from '../../controlplane/resources.js';
import type { KObject } from '../../controlplane/storage/types.js';

const info = (name: string) => resources.find((r) => r.name === name) as ResourceInfo;
const o = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});
const ns = 'default';

describe('workloads across a control-plane restart', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'knode-wl-restart-'));
  let cp: TestControlPlane | undefined;
  afterAll(async () => {
    await cp?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const start = async () => (cp = await startTestControlPlane({ storage: 'file', dataDir, resyncMs: 500 }));
  const pods = async (prefix: string) => (await (cp as TestControlPlane).registry.list(info('pods'), ns)).items.filter((p) => p.metadata.name?.startsWith(prefix));
  const setPhase = async (pod: KObject, status: Record<string, unknown>) =>
    (cp as TestControlPlane).registry.mutate(info('pods'), ns, pod.metadata.name as string, (p) => ({ ...p, status: { ...o(p.status), ...status } }), 'status');

  it('counts a Job exactly once and finishes a rollout after a restart', async () => {
    await start();
    const registry = () => (cp as TestControlPlane).registry;
    await registry().create(info('jobs'), ns, {
      metadata: { name: 'work' },
      spec: { parallelism: 2, completions: 4, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'i' }] } } },
    } as unknown as KObject);
    await registry().create(info('deployments'), ns, {
      metadata: { name: 'web' },
      spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'i:1' }] } } },
    } as unknown as KObject);
    const ready = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }] };
    const first = await waitFor('two job pods', async () => ((await pods('work-')).length === 2 ? await pods('work-') : undefined));
    await waitFor('three web pods', async () => (await pods('web-')).length === 3);
    for (const pod of await pods('web-')) await setPhase(pod, ready);
    await waitFor('web available', async () => o((await registry().get(info('deployments'), ns, 'web')).status).availableReplicas === 3);
    // Finish both job pods and start a rollout, then stop at once: the controllers are mid-work.
    for (const pod of first) await setPhase(pod, { phase: 'Succeeded' });
    await registry().mutate(info('deployments'), ns, 'web', (d) => {
      (o(o(o(d.spec).template).spec).containers as Record<string, unknown>[])[0]!.image = 'i:2';
      return d;
    });
    await (cp as TestControlPlane).stop();
    cp = undefined;

    await start();
    const done = await waitFor('two more job pods, then all finished', async () => {
      const current = (await pods('work-')).filter((p) => o(p.status).phase !== 'Succeeded');
      for (const pod of current) await setPhase(pod, { phase: 'Succeeded' });
      const job = await registry().get(info('jobs'), ns, 'work');
      return (o(job.status).conditions as Record<string, unknown>[] | undefined)?.some((c) => c.type === 'Complete') ? job : undefined;
    }, 60_000, 200);
    expect(o(done.status)).toMatchObject({ succeeded: 4, failed: 0 });
    expect(o(done.status).uncountedTerminatedPods).toBeUndefined();
    expect(await pods('work-')).toHaveLength(4);
    for (const pod of await pods('work-')) expect(pod.metadata.finalizers ?? []).toEqual([]);

    const rolled = await waitFor('rollout finished after the restart', async () => {
      for (const pod of await pods('web-')) if (o(pod.status).phase !== 'Running') await setPhase(pod, { ...ready, conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }] });
      const d = await registry().get(info('deployments'), ns, 'web');
      const s = o(d.status);
      return s.updatedReplicas === 3 && s.availableReplicas === 3 && s.replicas === 3 ? d : undefined;
    }, 60_000, 200);
    expect(rolled.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('2');
    expect((await registry().list(info('replicasets'), ns)).items).toHaveLength(2);
    const live = (await pods('web-')).filter((p) => !p.metadata.deletionTimestamp);
    expect(live).toHaveLength(3);
    for (const pod of live) expect(JSON.stringify(o(pod.spec).containers)).toContain('i:2');
  });
});
