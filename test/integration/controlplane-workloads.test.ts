/**
 * Workload controllers driven by the real kubectl against an in-process control plane. No
 * agent runs here: a small "kubelet" in the test marks bound pods Running/Ready (or Succeeded/Failed)
 * through the pods/status subresource, as a kubelet would, after each pod has existed a moment,
 * so a rollout can be watched pod by pod.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
const ns = 'wl';

type Obj = Record<string, unknown>;
const o = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});

/** A Node as a kubelet registers it: Ready, with allocatable room. */
const readyNode = (name: string, labels: Record<string, string>, maxPods = '110') =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
    status: { allocatable: { cpu: '2', memory: '4Gi', pods: maxPods }, conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] },
  });

describe.skipIf(env.skip)('workload controllers with kubectl', () => {
  let cp: TestControlPlane;
  let dir: string;
  let kubelet: NodeJS.Timeout | undefined;
  /** Pods (by name) the fake kubelet should finish instead of running: phase to set. */
  const outcome = new Map<string, 'Succeeded' | 'Failed'>();
  const kubectl = async (args: string[], input?: string) => run(['kubectl', '--kubeconfig', cp.kubeconfigPath, '-n', ns, ...args], { allowFailure: true, timeoutMs: 60_000, input });
  const list = async (resource: string, selector?: string) => (await cp.registry.list(info(resource), ns, { labelSelector: selector })).items;

  /** Marks pods older than 150 ms Ready (or finishes Job pods), like a kubelet reporting status. */
  const tick = async () => {
    for (const pod of await list('pods')) {
      // A bound pod being deleted: its kubelet stops it and finishes the deletion.
      if (pod.metadata.deletionTimestamp && o(pod.spec).nodeName) {
        await cp.registry.delete(pods, ns, pod.metadata.name as string, { gracePeriodSeconds: 0 }).catch(() => undefined);
        continue;
      }
      // Like a kubelet, only pods bound to a node are run.
      if (!o(pod.spec).nodeName || pod.metadata.deletionTimestamp || Date.now() - Date.parse(pod.metadata.creationTimestamp ?? '') < 150) continue;
      const status = o(pod.status);
      const jobName = pod.metadata.labels?.['batch.kubernetes.io/job-name'];
      if (jobName) {
        const phase = [...outcome.entries()].find(([prefix]) => pod.metadata.name?.startsWith(prefix))?.[1];
        if (!phase || status.phase === phase) continue;
        await cp.registry.mutate(pods, ns, pod.metadata.name as string, (p) => ({ ...p, status: { ...o(p.status), phase } }), 'status').catch(() => undefined);
        continue;
      }
      if (status.phase === 'Running') continue;
      const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      await cp.registry
        .mutate(pods, ns, pod.metadata.name as string, (p) => ({ ...p, status: { ...o(p.status), phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }] } }), 'status')
        .catch(() => undefined);
    }
  };

  beforeAll(async () => {
    cp = await startTestControlPlane({ resyncMs: 500 });
    dir = dirname(cp.kubeconfigPath);
    expect((await kubectl(['create', 'namespace', ns])).stdout).toContain('created');
    // A node for the scheduler to bind every pod to (the pods of the other tests have no constraints).
    expect((await kubectl(['apply', '-f', '-'], readyNode('wn0', {}, '1000'))).code).toBe(0);
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

  it('lists the workload kinds in api-resources and rejects invalid specs with field paths', async () => {
    const apiResources = await kubectl(['api-resources']);
    for (const line of [/deployments\s+deploy\s+apps\/v1\s+true\s+Deployment/, /replicasets\s+rs\s+apps\/v1/, /daemonsets\s+ds\s+apps\/v1/, /controllerrevisions\s+apps\/v1/, /jobs\s+batch\/v1\s+true\s+Job/, /cronjobs\s+cj\s+batch\/v1/])
      expect(apiResources.stdout).toMatch(line);
    const bad = `apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: one}}
  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: two}}
    spec: {containers: [{name: c}]}
`;
    const result = await kubectl(['apply', '-f', '-'], bad);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('The Deployment "bad" is invalid');
    expect(result.stderr).toContain('spec.template.metadata.labels: Invalid value');
    expect(result.stderr).toContain('`selector` does not match template `labels`');
    expect(result.stderr).toContain('spec.template.spec.containers[0].image: Required value');
    expect(result.stderr).toContain('spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0');
    const noSelector = await kubectl(['apply', '-f', '-'], 'apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: nosel}\nspec:\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n');
    expect(noSelector.stderr).toContain('spec.selector: Required value');
    const job = await kubectl(['apply', '-f', '-'], 'apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec: {restartPolicy: Always, containers: [{name: c, image: i}]}\n');
    expect(job.stderr).toContain('spec.template.spec.restartPolicy: Unsupported value: "Always"');
    const cron = await kubectl(['create', 'cronjob', 'c', '--image=i', '--schedule=not a cron']);
    expect(cron.stderr).toContain('spec.schedule: Invalid value');
  });

  it('creates a Deployment with defaults, scales it, and rolls out a new image within maxSurge/maxUnavailable', async () => {
    const created = await kubectl(['create', 'deployment', 'web', '--image=knode.local/busybox:1', '--replicas=4', '--', 'httpd', '-f', '-p', '8080']);
    expect(created.stdout.trim()).toBe('deployment.apps/web created');
    const d = JSON.parse((await kubectl(['get', 'deploy', 'web', '-o', 'json'])).stdout) as { spec: Obj };
    expect(d.spec).toMatchObject({ revisionHistoryLimit: 10, progressDeadlineSeconds: 600, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } } });
    expect((await kubectl(['rollout', 'status', 'deploy/web', '--timeout=60s'])).stdout).toContain('successfully rolled out');
    const rs = await list('replicasets');
    expect(rs).toHaveLength(1);
    const hash = rs[0]?.metadata.labels?.['pod-template-hash'];
    expect(rs[0]?.metadata.name).toBe(`web-${hash}`);
    const webPods = await list('pods', 'app=web');
    expect(webPods).toHaveLength(4);
    for (const pod of webPods) expect(pod.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'ReplicaSet', name: `web-${hash}`, controller: true, blockOwnerDeletion: true });

    expect((await kubectl(['scale', 'deploy/web', '--replicas=6'])).stdout.trim()).toBe('deployment.apps/web scaled');
    expect((await kubectl(['rollout', 'status', 'deploy/web', '--timeout=60s'])).code).toBe(0);
    expect(await list('pods', 'app=web')).toHaveLength(6);

    // maxSurge 25% of 6 → 2 (rounded up), maxUnavailable 25% of 6 → 1 (rounded down).
    let maxPods = 0;
    let minReady = Infinity;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const current = (await list('pods', 'app=web')).filter((p) => !p.metadata.deletionTimestamp);
        maxPods = Math.max(maxPods, current.length);
        minReady = Math.min(minReady, current.filter((p) => o(p.status).conditions !== undefined).length);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    expect((await kubectl(['set', 'image', 'deploy/web', 'busybox=knode.local/busybox:2'])).stdout).toContain('image updated');
    const status = await kubectl(['rollout', 'status', 'deploy/web', '--timeout=60s']);
    sampling = false;
    await sampler;
    expect(status.stdout).toContain('successfully rolled out');
    expect(maxPods).toBeLessThanOrEqual(8);
    expect(maxPods).toBeGreaterThan(6);
    expect(minReady).toBeGreaterThanOrEqual(5);
    const after = await list('pods', 'app=web');
    expect(after.filter((p) => !p.metadata.deletionTimestamp).every((p) => JSON.stringify(o(p.spec).containers).includes('knode.local/busybox:2'))).toBe(true);
    expect((await kubectl(['get', 'deploy', 'web'])).stdout).toMatch(/^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\nweb\s+6\/6\s+6\s+6\s+\d+s\n/);
    expect((await kubectl(['get', 'rs'])).stdout).toMatch(/^NAME\s+DESIRED\s+CURRENT\s+READY\s+AGE\n/);
    const events = await kubectl(['get', 'events', '-o', 'json']);
    expect(events.stdout).toContain('ScalingReplicaSet');
    expect(events.stdout).toContain('SuccessfulCreate');
    expect(events.stdout).toContain('SuccessfulDelete');
  });

  it('keeps revision history, rolls back with rollout undo, and honours pause/resume', async () => {
    const history = await kubectl(['rollout', 'history', 'deploy/web']);
    expect(history.stdout).toMatch(/REVISION\s+CHANGE-CAUSE\n1\s+<none>\n2\s+<none>/);
    const setsBefore = await list('replicasets');
    const undo = await kubectl(['rollout', 'undo', 'deploy/web']);
    expect(undo.stdout.trim()).toBe('deployment.apps/web rolled back');
    expect((await kubectl(['rollout', 'status', 'deploy/web', '--timeout=60s'])).code).toBe(0);
    // The first ReplicaSet is the new one again, now at revision 3; no third ReplicaSet appears.
    const sets = await list('replicasets');
    expect(sets.map((s) => s.metadata.name).sort()).toEqual(setsBefore.map((s) => s.metadata.name).sort());
    const current = sets.find((s) => o(s.spec).replicas === 6) as KObject;
    expect(current.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('3');
    expect(JSON.stringify(o(current.spec).template)).toContain('knode.local/busybox:1');

    expect((await kubectl(['rollout', 'pause', 'deploy/web'])).stdout.trim()).toBe('deployment.apps/web paused');
    await kubectl(['set', 'image', 'deploy/web', 'busybox=knode.local/busybox:3']);
    await new Promise((r) => setTimeout(r, 500));
    expect(await list('replicasets')).toHaveLength(2);
    const paused = JSON.parse((await kubectl(['get', 'deploy', 'web', '-o', 'json'])).stdout) as { status: { conditions: Obj[] } };
    expect(paused.status.conditions.find((c) => c.type === 'Progressing')).toMatchObject({ status: 'Unknown', reason: 'DeploymentPaused' });
    expect((await kubectl(['rollout', 'resume', 'deploy/web'])).stdout.trim()).toBe('deployment.apps/web resumed');
    expect((await kubectl(['rollout', 'status', 'deploy/web', '--timeout=60s'])).code).toBe(0);
    expect(await list('replicasets')).toHaveLength(3);
  });

  it('deletes with background, foreground and orphan propagation', async () => {
    for (const name of ['bg', 'fg', 'or']) expect((await kubectl(['create', 'deployment', name, '--image=i:1', '--replicas=2'])).code).toBe(0);
    await waitFor('pods of bg, fg, or', async () => (await list('pods')).filter((p) => /^(bg|fg|or)-/.test(p.metadata.name ?? '')).length === 6);
    expect((await kubectl(['delete', 'deploy', 'bg'])).code).toBe(0);
    expect((await kubectl(['delete', 'deploy', 'fg', '--cascade=foreground'])).code).toBe(0);
    expect((await kubectl(['delete', 'deploy', 'or', '--cascade=orphan'])).code).toBe(0);
    await waitFor('bg and fg dependents gone', async () => (await list('pods')).filter((p) => /^(bg|fg)-/.test(p.metadata.name ?? '')).length === 0 && (await list('replicasets')).filter((r) => /^(bg|fg)-/.test(r.metadata.name ?? '')).length === 0);
    expect((await kubectl(['get', 'deploy', 'fg'])).stderr).toContain('not found');
    const orphanSets = (await list('replicasets')).filter((r) => r.metadata.name?.startsWith('or-'));
    expect(orphanSets).toHaveLength(1);
    expect(orphanSets[0]?.metadata.ownerReferences).toBeUndefined();
    expect((await list('pods')).filter((p) => p.metadata.name?.startsWith('or-'))).toHaveLength(2);
    const bad = await kubectl(['delete', 'rs', orphanSets[0]?.metadata.name as string, '--cascade=sideways']);
    expect(bad.code).not.toBe(0);
  });

  it('runs a Job with parallelism 3 and completions 6 to completion', async () => {
    outcome.set('par-', 'Succeeded');
    const manifest = 'apiVersion: batch/v1\nkind: Job\nmetadata: {name: par}\nspec:\n  parallelism: 3\n  completions: 6\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: i, command: ["true"]}]\n';
    writeFileSync(join(dir, 'job.yaml'), manifest);
    expect((await kubectl(['apply', '-f', join(dir, 'job.yaml')])).stdout.trim()).toBe('job.batch/par created');
    let maxActive = 0;
    const done = await waitFor('job par complete', async () => {
      const job = await cp.registry.get(info('jobs'), ns, 'par');
      maxActive = Math.max(maxActive, Number(o(job.status).active ?? 0));
      return (o(job.status).conditions as Obj[] | undefined)?.some((c) => c.type === 'Complete') ? job : undefined;
    }, 60_000, 20);
    expect(o(done.status)).toMatchObject({ succeeded: 6, failed: 0, active: 0 });
    expect(maxActive).toBeLessThanOrEqual(3);
    const jobPods = await list('pods', 'batch.kubernetes.io/job-name=par');
    expect(jobPods).toHaveLength(6);
    for (const pod of jobPods) expect(pod.metadata.finalizers ?? []).not.toContain('batch.kubernetes.io/job-tracking');
    expect((await kubectl(['wait', '--for=condition=complete', 'job/par', '--timeout=10s'])).code).toBe(0);
    expect((await kubectl(['get', 'job', 'par'])).stdout).toMatch(/^NAME\s+STATUS\s+COMPLETIONS\s+DURATION\s+AGE\npar\s+Complete\s+6\/6\s+\d+s\s+\d+s\n/);
    const events = (await kubectl(['get', 'events', '-o', 'json'])).stdout;
    expect(events).toContain('"reason": "Completed"');
  });

  it('fails a Job at its backoffLimit and completes an Indexed Job', async () => {
    outcome.set('bad-', 'Failed');
    outcome.set('idx-', 'Succeeded');
    await kubectl(['apply', '-f', '-'], 'apiVersion: batch/v1\nkind: Job\nmetadata: {name: bad}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: i, command: ["false"]}]\n');
    await kubectl(['apply', '-f', '-'], 'apiVersion: batch/v1\nkind: Job\nmetadata: {name: idx}\nspec:\n  completionMode: Indexed\n  completions: 3\n  parallelism: 3\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: i}]\n');
    const failed = await waitFor('job bad failed', async () => {
      const job = await cp.registry.get(info('jobs'), ns, 'bad');
      return (o(job.status).conditions as Obj[] | undefined)?.find((c) => c.type === 'Failed');
    }, 30_000);
    expect(failed).toMatchObject({ status: 'True', reason: 'BackoffLimitExceeded' });
    const indexed = await waitFor('job idx complete', async () => {
      const job = await cp.registry.get(info('jobs'), ns, 'idx');
      return o(job.status).completedIndexes === '0-2' ? job : undefined;
    }, 30_000);
    expect(o(indexed.status).succeeded).toBe(3);
    const idxPods = await list('pods', 'batch.kubernetes.io/job-name=idx');
    expect(idxPods.map((p) => p.metadata.annotations?.['batch.kubernetes.io/job-completion-index']).sort()).toEqual(['0', '1', '2']);
    for (const pod of idxPods) {
      const index = pod.metadata.annotations?.['batch.kubernetes.io/job-completion-index'];
      expect(o(pod.spec).hostname).toBe(`idx-${index}`);
      expect(JSON.stringify(o(pod.spec).containers)).toContain('JOB_COMPLETION_INDEX');
    }
  });

  it('runs a CronJob on */1 with Forbid, and never fires 30 February', async () => {
    expect((await kubectl(['create', 'cronjob', 'every', '--image=i', '--schedule=*/1 * * * *', '--', 'true'])).code).toBe(0);
    expect((await kubectl(['patch', 'cj', 'every', '--type=merge', '-p', '{"spec":{"concurrencyPolicy":"Forbid"}}'])).code).toBe(0);
    expect((await kubectl(['create', 'cronjob', 'never', '--image=i', '--schedule=0 0 30 2 *', '--', 'true'])).code).toBe(0);
    // As if the controller had been away for three minutes: the latest missed time runs once.
    const past = new Date(Date.now() - 180_000).toISOString().replace(/\.\d+Z$/, 'Z');
    for (const name of ['every', 'never']) expect((await kubectl(['patch', 'cj', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { lastScheduleTime: past } })])).code).toBe(0);
    const first = await waitFor('a job of cronjob every', async () => (await list('jobs')).find((j) => j.metadata.name?.startsWith('every-')));
    expect(first.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'CronJob', name: 'every', controller: true });
    expect(first.metadata.annotations?.['batch.kubernetes.io/cronjob-scheduled-timestamp']).toMatch(/:00Z$/);
    const cj = await waitFor('active job in status', async () => {
      const current = await cp.registry.get(info('cronjobs'), ns, 'every');
      return Array.isArray(o(current.status).active) ? current : undefined;
    });
    expect(o(cj.status).lastScheduleTime).toBe(first.metadata.annotations?.['batch.kubernetes.io/cronjob-scheduled-timestamp']);
    // Forbid: with the job still running, an earlier missed time starts nothing new.
    expect((await kubectl(['patch', 'cj', 'every', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { lastScheduleTime: past } })])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    expect((await list('jobs')).filter((j) => j.metadata.name?.startsWith('every-'))).toHaveLength(1);
    expect((await list('jobs')).filter((j) => j.metadata.name?.startsWith('never-'))).toHaveLength(0);
    // The job finishes: the CronJob records it.
    outcome.set(`${String(first.metadata.name)}-`, 'Succeeded');
    await waitFor('SawCompletedJob', async () => (await kubectl(['get', 'events', '-o', 'json'])).stdout.includes('SawCompletedJob'), 30_000, 250);
  });

  it('runs a DaemonSet on every eligible node, a later node included, and rolls it out, back and forth', async () => {
    for (const node of ['dn1', 'dn2', 'dn3']) expect((await kubectl(['apply', '-f', '-'], readyNode(node, { pool: node === 'dn3' ? 'other' : 'main' }))).code).toBe(0);
    expect((await kubectl(['taint', 'node', 'dn2', 'dedicated=db:NoSchedule'])).code).toBe(0);
    const manifest = (image: string) => `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  updateStrategy: {rollingUpdate: {maxUnavailable: 1}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {pool: main}
      containers: [{name: c, image: ${image}}]
`;
    expect((await kubectl(['apply', '-f', '-'], manifest('i:1'))).stdout.trim()).toBe('daemonset.apps/agent created');
    const nodesOf = async () => (await list('pods', 'app=agent')).filter((p) => !p.metadata.deletionTimestamp).map((p) => String(o(p.spec).nodeName)).sort();
    // dn2's taint is not tolerated and dn3 is not in the pool: one pod, on dn1.
    await waitFor('daemon pod on dn1', async () => (await nodesOf()).join() === 'dn1');
    expect((await kubectl(['apply', '-f', '-'], readyNode('dn4', { pool: 'main' }))).code).toBe(0);
    await waitFor('daemon pod on the node that joined later', async () => (await nodesOf()).join() === 'dn1,dn4');
    const pod = (await list('pods', 'app=agent'))[0] as KObject;
    expect(JSON.stringify(o(pod.spec).tolerations)).toContain('node.kubernetes.io/unreachable');
    // The daemon pod was bound by the scheduler, through its node affinity (upstream since 1.12).
    expect(JSON.stringify(o(o(pod.spec).affinity))).toContain('"matchFields":[{"key":"metadata.name","operator":"In","values":["dn');
    const described = (await kubectl(['describe', 'pod', String(pod.metadata.name)])).stdout;
    expect(described).toMatch(new RegExp(`Normal\\s+Scheduled\\s+.*default-scheduler\\s+Successfully assigned ${ns}/${String(pod.metadata.name)} to dn[14]`));
    expect((await kubectl(['rollout', 'status', 'ds/agent', '--timeout=60s'])).stdout).toContain('successfully rolled out');
    expect((await kubectl(['apply', '-f', '-'], manifest('i:2'))).stdout.trim()).toBe('daemonset.apps/agent configured');
    expect((await kubectl(['rollout', 'status', 'ds/agent', '--timeout=60s'])).stdout).toContain('successfully rolled out');
    const images = async () => (await list('pods', 'app=agent')).filter((p) => !p.metadata.deletionTimestamp).map((p) => JSON.stringify(o(p.spec).containers));
    expect((await images()).every((c) => c.includes('i:2'))).toBe(true);
    expect(await list('controllerrevisions')).toHaveLength(2);
    expect((await kubectl(['rollout', 'history', 'ds/agent'])).stdout).toMatch(/REVISION\s+CHANGE-CAUSE\n1\s+<none>\n2\s+<none>/);
    expect((await kubectl(['rollout', 'undo', 'ds/agent'])).stdout.trim()).toBe('daemonset.apps/agent rolled back');
    await waitFor('daemon pods back on i:1', async () => {
      const now = await images();
      return now.length === 2 && now.every((c) => c.includes('i:1'));
    }, 30_000);
    const revisionsNow = await list('controllerrevisions');
    expect(revisionsNow.map((r) => r.revision).sort()).toEqual([2, 3]);
  });

  it('schedules by node affinity and host ports, says why a pod waits, and retries when a node changes', async () => {
    for (const node of ['sn1', 'sn2']) expect((await kubectl(['apply', '-f', '-'], readyNode(node, { rack: node === 'sn1' ? 'r1' : 'r2' }))).code).toBe(0);
    const podYaml = (name: string, rack: string, hostPort: number) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: rack, operator: In, values: [${rack}]}]
  containers: [{name: c, image: i, ports: [{containerPort: 80, hostPort: ${hostPort}}]}]
`;
    const nodeOf = async (name: string) => String(o((await cp.registry.get(pods, ns, name)).spec).nodeName ?? '');
    expect((await kubectl(['apply', '-f', '-'], podYaml('hp1', 'r1', 9001))).code).toBe(0);
    await waitFor('hp1 bound to sn1', async () => (await nodeOf('hp1')) === 'sn1');
    // Same host port, same rack: no node fits; kubectl describe tells why, as kube-scheduler words it.
    expect((await kubectl(['apply', '-f', '-'], podYaml('hp2', 'r1', 9001))).code).toBe(0);
    const why = await waitFor('FailedScheduling for hp2', async () => {
      const out = (await kubectl(['describe', 'pod', 'hp2'])).stdout;
      return /Warning\s+FailedScheduling/.test(out) ? out : undefined;
    });
    const nodeCount = (await cp.registry.list(info('nodes'), undefined)).items.length;
    expect(why).toContain(`0/${nodeCount} nodes are available:`);
    expect(why).toContain("1 node(s) didn't have free ports for the requested pod ports");
    expect(why).toMatch(/\d+ node\(s\) didn't match Pod's node affinity\/selector/);
    expect(why).toMatch(/PodScheduled\s+False/);
    // Another node joins rack r1: the waiting pod is tried again and lands there.
    expect((await kubectl(['label', 'node', 'sn2', 'rack=r1', '--overwrite'])).code).toBe(0);
    await waitFor('hp2 bound to sn2', async () => (await nodeOf('hp2')) === 'sn2');
    expect((await kubectl(['describe', 'pod', 'hp2'])).stdout).toContain(`Successfully assigned ${ns}/hp2 to sn2`);
    await kubectl(['delete', 'pod', 'hp1', 'hp2', '--wait=false']);
    // A waiting pod whose spec changes (a toleration added) is tried again at once.
    expect((await kubectl(['taint', 'node', 'sn1', 'sn2', 'only=x:NoSchedule'])).code).toBe(0);
    expect((await kubectl(['apply', '-f', '-'], 'apiVersion: v1\nkind: Pod\nmetadata: {name: tol}\nspec:\n  nodeSelector: {rack: r1}\n  containers: [{name: c, image: i}]\n')).code).toBe(0);
    await waitFor('tol waits', async () => /untolerated taint \{only: x\}/.test((await kubectl(['describe', 'pod', 'tol'])).stdout));
    expect((await kubectl(['patch', 'pod', 'tol', '--type=json', '-p', JSON.stringify([{ op: 'add', path: '/spec/tolerations/-', value: { key: 'only', operator: 'Equal', value: 'x', effect: 'NoSchedule' } }])])).code).toBe(0);
    await waitFor('tol bound once it tolerates the taint', async () => ['sn1', 'sn2'].includes(await nodeOf('tol')), 20_000);
    await kubectl(['delete', 'pod', 'tol', '--wait=false']);
  });

  it('survives odd objects: 0 replicas, huge parallelism', async () => {
    await kubectl(['create', 'deployment', 'zero', '--image=i:1', '--replicas=0']);
    outcome.set('huge-', 'Succeeded');
    await kubectl(['apply', '-f', '-'], 'apiVersion: batch/v1\nkind: Job\nmetadata: {name: huge}\nspec:\n  parallelism: 1000000\n  completions: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: i}]\n');
    await waitFor('job huge complete', async () => o((await cp.registry.get(info('jobs'), ns, 'huge')).status).succeeded === 2, 30_000);
    const zero = await waitFor('deployment zero observed', async () => {
      const d = await cp.registry.get(info('deployments'), ns, 'zero');
      return o(d.status).observedGeneration === 1 ? d : undefined;
    });
    expect(o(zero.status)).toMatchObject({ replicas: 0, availableReplicas: 0 });
    expect((await list('pods')).filter((p) => p.metadata.name?.startsWith('zero-'))).toHaveLength(0);
    // The controllers still answer after all of it.
    expect((await kubectl(['scale', 'deploy/zero', '--replicas=1'])).code).toBe(0);
    await waitFor('zero scaled to 1', async () => (await list('pods')).filter((p) => p.metadata.name?.startsWith('zero-')).length === 1);
  });
});
