// Table-driven tests of the pure workload decisions: ReplicaSet ranking and plans, Deployment
// rolling-update arithmetic and status, garbage-collector actions, Job accounting.
import { describe, expect, it } from 'vitest';
import type { KObject } from '../../controlplane/storage/types.js';
import { planReplicaSet, rankPodsForDeletion, replicaSetStatus } from '../../controlplane/controllers/replicaset-policy.js';
import { deploymentStatus, findNewReplicaSet, historyToDelete, newReplicaSetReplicas, resolveBounds, scaleDownOld, templateHash } from '../../controlplane/controllers/deployment-policy.js';
import { dependentAction } from '../../controlplane/controllers/gc-policy.js';
import { finalizersForDelete } from '../../controlplane/deletion-policy.js';
import { backoffMs, classifyPods, failureAction, formatIndexes, parseIndexes, planCreates, workDone } from '../../controlplane/controllers/job-policy.js';

const t0 = '2026-01-01T00:00:00Z';
function pod(name: string, opts: { node?: string; phase?: string; ready?: boolean; created?: string; readySince?: string; restarts?: number; uid?: string; finalizers?: string[]; deleting?: boolean; index?: number } = {}): KObject {
  return {
    metadata: {
      name,
      namespace: 'ns',
      uid: opts.uid ?? name,
      creationTimestamp: opts.created ?? t0,
      ...(opts.finalizers ? { finalizers: opts.finalizers } : {}),
      ...(opts.deleting ? { deletionTimestamp: t0 } : {}),
      ...(opts.index !== undefined ? { annotations: { 'batch.kubernetes.io/job-completion-index': String(opts.index) } } : {}),
    },
    spec: { ...(opts.node ? { nodeName: opts.node } : {}) },
    status: {
      phase: opts.phase ?? 'Pending',
      conditions: opts.ready ? [{ type: 'Ready', status: 'True', lastTransitionTime: opts.readySince ?? t0 }] : [],
      containerStatuses: [{ restartCount: opts.restarts ?? 0 }],
    },
  };
}

describe('ReplicaSet deletion ranking (controller.ActivePodsWithRanks)', () => {
  it.each([
    ['unscheduled before scheduled', [pod('s', { node: 'n', phase: 'Running', ready: true }), pod('u')], ['u', 's']],
    ['pending before running', [pod('r', { node: 'n', phase: 'Running' }), pod('p', { node: 'n2' })], ['p', 'r']],
    ['not ready before ready', [pod('ready', { node: 'a', phase: 'Running', ready: true }), pod('notready', { node: 'b', phase: 'Running' })], ['notready', 'ready']],
    ['more colocated first', [pod('alone', { node: 'a', phase: 'Running', ready: true }), pod('x1', { node: 'b', phase: 'Running', ready: true }), pod('x2', { node: 'b', phase: 'Running', ready: true, created: '2026-01-01T00:00:01Z' })], ['x2', 'x1', 'alone']],
    ['ready for less time first', [pod('old', { node: 'a', phase: 'Running', ready: true, readySince: t0 }), pod('new', { node: 'b', phase: 'Running', ready: true, readySince: '2026-01-01T01:00:00Z' })], ['new', 'old']],
    ['more restarts first', [pod('calm', { node: 'a', phase: 'Running', ready: true }), pod('crashy', { node: 'b', phase: 'Running', ready: true, restarts: 3 })], ['crashy', 'calm']],
    ['newest first', [pod('older', { created: t0 }), pod('newer', { created: '2026-01-02T00:00:00Z' })], ['newer', 'older']],
  ])('%s', (_name, pods, order) => {
    expect(rankPodsForDeletion(pods).map((p) => p.metadata.name)).toEqual(order);
  });

  it.each([
    [3, 1, 2, 0],
    [1, 3, 0, 2],
    [2, 2, 0, 0],
    [0, 2, 0, 2],
    [100000, 0, 500, 0],
  ])('replicas %i with %i active → create %i, delete %i', (replicas, active, create, del) => {
    const rs = { metadata: { name: 'rs' }, spec: { replicas } } as KObject;
    const plan = planReplicaSet(rs, Array.from({ length: active }, (_, i) => pod(`p${i}`)));
    expect(plan.create).toBe(create);
    expect(plan.delete).toHaveLength(del);
  });

  it('counts ready and available (minReadySeconds) replicas', () => {
    const rs = { metadata: { name: 'rs', generation: 2 }, spec: { replicas: 3, minReadySeconds: 10, template: { metadata: { labels: {} } } } } as KObject;
    const now = new Date('2026-01-01T00:00:20Z');
    const status = replicaSetStatus(rs, [pod('a', { phase: 'Running', ready: true, readySince: t0 }), pod('b', { phase: 'Running', ready: true, readySince: '2026-01-01T00:00:15Z' }), pod('c'), pod('d', { phase: 'Failed' })], now);
    expect(status).toMatchObject({ replicas: 3, readyReplicas: 2, availableReplicas: 1, observedGeneration: 2 });
  });
});

function deployment(replicas: number, strategy: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): KObject {
  return { metadata: { name: 'd', uid: 'd', generation: 1 }, spec: { replicas, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' }, ...strategy }, template: { metadata: { labels: { app: 'a' } }, spec: { containers: [{ name: 'c', image: 'i:2' }] } }, ...extra } };
}
function rs(name: string, replicas: number, available: number, opts: { revision?: number; created?: string; image?: string } = {}): KObject {
  return {
    metadata: { name, creationTimestamp: opts.created ?? t0, annotations: { 'deployment.kubernetes.io/revision': String(opts.revision ?? 1) } },
    spec: { replicas, template: { metadata: { labels: { app: 'a', 'pod-template-hash': name } }, spec: { containers: [{ name: 'c', image: opts.image ?? 'i:1' }] } } },
    status: { replicas, availableReplicas: available, readyReplicas: available },
  };
}

describe('Deployment rolling update (rolling.go)', () => {
  it.each([
    [10, { maxSurge: '25%', maxUnavailable: '25%' }, 3, 2],
    [4, { maxSurge: 1, maxUnavailable: 0 }, 1, 0],
    [3, { maxSurge: 0, maxUnavailable: 0 }, 0, 1],
    [1, { maxSurge: '0%', maxUnavailable: '100%' }, 0, 1],
  ])('replicas %i with %j → maxSurge %i, maxUnavailable %i', (replicas, ru, surge, unavailable) => {
    expect(resolveBounds(deployment(replicas, { rollingUpdate: ru }))).toEqual({ maxSurge: surge, maxUnavailable: unavailable });
  });

  it('scales the new ReplicaSet up to replicas + maxSurge in total', () => {
    const d = deployment(4, { rollingUpdate: { maxSurge: 1, maxUnavailable: 1 } });
    const old = rs('old', 4, 4);
    const fresh = rs('new', 0, 0, { image: 'i:2' });
    expect(newReplicaSetReplicas(d, [old, fresh], fresh)).toBe(1);
    expect(newReplicaSetReplicas(d, [rs('old', 3, 3), rs('new', 2, 0)], rs('new', 2, 0))).toBe(2);
  });

  it('scales old ReplicaSets down without going below replicas − maxUnavailable available', () => {
    const d = deployment(4, { rollingUpdate: { maxSurge: 1, maxUnavailable: 1 } });
    const old = rs('old', 4, 4);
    const fresh = rs('new', 1, 0);
    // 5 pods, 4 available, minAvailable 3, new one unavailable: 5 - 3 - 1 = 1 may go.
    expect(scaleDownOld(d, [old, fresh], [old], fresh)).toEqual(new Map([['old', 3]]));
    // Unhealthy old replicas go first, then nothing more when availability is at the floor.
    const sick = rs('old', 4, 2);
    expect(scaleDownOld(d, [sick, rs('new', 1, 1)], [sick], rs('new', 1, 1))).toEqual(new Map([['old', 2]]));
    expect(scaleDownOld(d, [rs('old', 0, 0), fresh], [rs('old', 0, 0)], fresh).size).toBe(0);
  });

  it('finds the new ReplicaSet by template ignoring the hash label, and keeps history within the limit', () => {
    const d = deployment(1);
    const match = rs('m', 1, 1, { image: 'i:2' });
    expect(findNewReplicaSet(d, [rs('x', 1, 1), match])?.metadata.name).toBe('m');
    const limited = deployment(1, {}, { revisionHistoryLimit: 1 });
    const old = [rs('r1', 0, 0, { revision: 1 }), rs('r2', 0, 0, { revision: 2 }), rs('r3', 0, 0, { revision: 3 }), rs('busy', 1, 1, { revision: 4 })];
    old.forEach((s) => ((s.status as Record<string, unknown>).replicas = (s.spec as Record<string, unknown>).replicas));
    expect(historyToDelete(limited, old).map((s) => s.metadata.name)).toEqual(['r1', 'r2']);
  });

  it('hashes templates stably into label-safe strings', () => {
    const a = templateHash({ spec: { b: 1, a: 2 } });
    expect(a).toBe(templateHash({ spec: { a: 2, b: 1 } }));
    expect(a).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/);
    expect(templateHash({ spec: { a: 2, b: 1 } }, 1)).not.toBe(a);
  });

  it('reports Available, Progressing and ProgressDeadlineExceeded', () => {
    const d = deployment(2, {}, { progressDeadlineSeconds: 60 });
    const fresh = rs('new', 2, 2, { image: 'i:2' });
    const done = deploymentStatus({ deployment: d, all: [fresh], newRs: fresh, now: new Date(t0) });
    expect(done).toMatchObject({ replicas: 2, updatedReplicas: 2, availableReplicas: 2, unavailableReplicas: 0 });
    expect(done.conditions).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'Available', status: 'True' }), expect.objectContaining({ type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' })]));
    const stuck = rs('new', 2, 0, { image: 'i:2' });
    const waiting = { ...d, status: { replicas: 2, updatedReplicas: 2, availableReplicas: 0, conditions: [{ type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', lastUpdateTime: t0, lastTransitionTime: t0 }] } };
    const late = deploymentStatus({ deployment: waiting, all: [stuck], newRs: stuck, now: new Date('2026-01-01T00:02:00Z') });
    expect(late.conditions).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }), expect.objectContaining({ type: 'Available', status: 'False' })]));
  });
});

describe('garbage collection', () => {
  const dep = (refs: { uid: string; block?: boolean }[], deleting = false): KObject => ({
    metadata: { name: 'x', ownerReferences: refs.map((r) => ({ apiVersion: 'v1', kind: 'K', name: r.uid, uid: r.uid, blockOwnerDeletion: r.block })), ...(deleting ? { deletionTimestamp: t0 } : {}) },
  });
  it.each([
    ['gone owner, no other → background delete', dep([{ uid: 'a' }]), 'gone', [], { action: 'delete', policy: 'Background' }],
    ['gone owner, another alive → drop dangling', dep([{ uid: 'a' }, { uid: 'b' }]), 'gone', ['b'], { action: 'removeRefs', uids: ['a'] }],
    ['foreground owner → foreground delete', dep([{ uid: 'a' }]), 'foreground', [], { action: 'delete', policy: 'Foreground' }],
    ['orphaning owner → drop reference', dep([{ uid: 'a' }]), 'orphan', [], { action: 'removeRefs', uids: ['a'] }],
    ['already deleting → keep', dep([{ uid: 'a' }], true), 'gone', [], { action: 'keep' }],
    ['not a dependent → keep', dep([{ uid: 'z' }]), 'gone', [], { action: 'keep' }],
  ] as const)('%s', (_name, dependent, state, alive, expected) => {
    expect(dependentAction(dependent, { uid: 'a', state }, new Set(alive))).toEqual(expected);
  });

  it.each([
    [[], undefined, undefined, []],
    [[], 'Foreground', undefined, ['foregroundDeletion']],
    [['x'], 'Orphan', undefined, ['x', 'orphan']],
    [[], undefined, true, ['orphan']],
    [['orphan'], 'Background', undefined, ['orphan']],
  ])('finalizers %j with policy %s (orphanDependents %s) → %j', (existing, policy, orphanDependents, expected) => {
    expect(finalizersForDelete(existing, policy, orphanDependents)).toEqual(expected);
  });

  it('rejects an unknown propagation policy', () => {
    expect(() => finalizersForDelete([], 'Sideways')).toThrow(/Unsupported value: "Sideways"/);
  });
});

describe('Job accounting', () => {
  const job = (spec: Record<string, unknown>, status: Record<string, unknown> = {}): KObject => ({ metadata: { name: 'j', uid: 'j' }, spec: { parallelism: 1, completions: 1, ...spec }, status });
  const tracked = ['batch.kubernetes.io/job-tracking'];

  it('records finished pods once: new ones with the finalizer, recorded ones to release, released ones never again', () => {
    const j = job({}, { uncountedTerminatedPods: { succeeded: ['s2'] } });
    const classes = classifyPods(j, [
      pod('a', { phase: 'Running', finalizers: tracked }),
      pod('s1', { phase: 'Succeeded', finalizers: tracked }),
      pod('s2', { phase: 'Succeeded', finalizers: tracked }),
      pod('s3', { phase: 'Succeeded' }),
      pod('f1', { phase: 'Failed', finalizers: tracked }),
      pod('t1', { phase: 'Running', finalizers: tracked, deleting: true }),
    ]);
    expect(classes.active.map((p) => p.metadata.name)).toEqual(['a']);
    expect(classes.newlySucceeded.map((p) => p.metadata.name)).toEqual(['s1']);
    expect(classes.newlyFailed.map((p) => p.metadata.name)).toEqual(['f1', 't1']);
    expect(classes.toRelease.map((p) => p.metadata.name)).toEqual(['s2']);
  });

  it.each([
    ['parallelism 3 of 6, 2 done, 1 active', { parallelism: 3, completions: 6 }, 1, 2, 2],
    ['near the end', { parallelism: 3, completions: 6 }, 1, 5, 0],
    ['huge parallelism is bounded by completions', { parallelism: 1_000_000, completions: 2 }, 0, 0, 2],
    ['work queue: no new pods after a success', { parallelism: 2, completions: null }, 1, 1, 0],
    ['parallelism 0', { parallelism: 0, completions: 3 }, 0, 0, 0],
  ])('%s', (_name, spec, active, succeeded, expected) => {
    const plan = planCreates(job(spec), Array.from({ length: active }, (_, i) => pod(`a${i}`)), succeeded, new Set());
    expect(plan.count).toBe(expected);
  });

  it('plans missing indexes for Indexed jobs and tracks completed indexes', () => {
    const j = job({ completionMode: 'Indexed', completions: 5, parallelism: 3 });
    expect(planCreates(j, [pod('x', { index: 1 })], 0, new Set([0])).indexes).toEqual([2, 3]);
    expect(formatIndexes(parseIndexes('0-2,4,7-8'))).toBe('0-2,4,7-8');
    expect(formatIndexes(new Set([3, 1, 2, 9]))).toBe('1-3,9');
    expect(workDone(j, 0, parseIndexes('0-4'), 0)).toBe(true);
    expect(workDone(j, 0, parseIndexes('0-3'), 0)).toBe(false);
  });

  it('applies podFailurePolicy rules in order', () => {
    const policy = { podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }, { action: 'FailJob', onExitCodes: { operator: 'In', values: [42] } }] } };
    const failedWith = (code: number, conditions: Record<string, unknown>[] = []): KObject => ({ metadata: { name: 'p' }, status: { phase: 'Failed', conditions, containerStatuses: [{ state: { terminated: { exitCode: code } } }] } });
    expect(failureAction(job(policy), failedWith(42))).toEqual({ action: 'FailJob', rule: 1 });
    expect(failureAction(job(policy), failedWith(1, [{ type: 'DisruptionTarget', status: 'True' }]))).toEqual({ action: 'Ignore', rule: 0 });
    expect(failureAction(job(policy), failedWith(1))).toBeUndefined();
  });

  it.each([
    [0, 0],
    [1, 10_000],
    [3, 40_000],
    [10, 360_000],
    [1000, 360_000],
  ])('back-off after %i failures is %i ms', (failures, ms) => {
    expect(backoffMs(failures)).toBe(ms);
  });
});
