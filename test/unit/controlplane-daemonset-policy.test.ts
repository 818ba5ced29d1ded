// DaemonSet placement and rolling update decisions.
import { describe, expect, it } from 'vitest';
import type { KObject } from '../../controlplane/storage/types.js';
import { daemonSetStatus, planDaemonSet, shouldRun } from '../../controlplane/controllers/daemonset-policy.js';

const t0 = '2026-01-01T00:00:00Z';
const node = (name: string, labels: Record<string, string> = {}, taints: Record<string, unknown>[] = []): KObject => ({ metadata: { name, labels }, spec: { taints } });
const ds = (podSpec: Record<string, unknown> = {}, strategy: Record<string, unknown> = {}): KObject => ({
  metadata: { name: 'd', uid: 'd', generation: 1 },
  spec: { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 }, ...strategy }, template: { spec: { containers: [{ name: 'c', image: 'i' }], ...podSpec } } },
});
const pod = (name: string, nodeName: string, hash: string, ready = true): KObject => ({
  metadata: { name, creationTimestamp: t0, labels: { 'controller-revision-hash': hash } },
  spec: { nodeName },
  status: { phase: 'Running', conditions: ready ? [{ type: 'Ready', status: 'True', lastTransitionTime: t0 }] : [] },
});
const now = new Date('2026-01-01T01:00:00Z');

describe('DaemonSet placement', () => {
  it.each([
    ['plain node', ds(), node('n'), true],
    ['nodeSelector mismatch', ds({ nodeSelector: { disk: 'ssd' } }), node('n', { disk: 'hdd' }), false],
    ['untolerated NoSchedule taint', ds(), node('n', {}, [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }]), false],
    ['tolerated taint', ds({ tolerations: [{ key: 'dedicated', operator: 'Exists' }] }), node('n', {}, [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }]), true],
    ['not-ready node (automatic toleration)', ds(), node('n', {}, [{ key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' }]), true],
    ['unschedulable node (automatic toleration)', ds(), node('n', {}, [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }]), true],
    ['network-unavailable without hostNetwork', ds(), node('n', {}, [{ key: 'node.kubernetes.io/network-unavailable', effect: 'NoSchedule' }]), false],
    ['PreferNoSchedule is no obstacle', ds(), node('n', {}, [{ key: 'x', effect: 'PreferNoSchedule' }]), true],
    ['required affinity In', ds({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } } } }), node('n', { zone: 'a' }), true],
    ['required affinity NotIn', ds({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }] } } } }), node('n', { zone: 'a' }), false],
    ['required affinity matchFields', ds({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['m'] }] }] } } } }), node('n'), false],
  ])('%s', (_name, set, n, expected) => {
    expect(shouldRun(set, n)).toBe(expected);
  });
});

describe('DaemonSet plans', () => {
  const nodes = [node('a'), node('b'), node('c')];
  it('creates missing pods, removes pods from nodes that should not run one, and extra pods', () => {
    const plan = planDaemonSet(ds(), [node('a'), node('b')], [pod('pa1', 'a', 'h'), pod('pa2', 'a', 'h'), pod('gone', 'z', 'h')], 'h', now);
    expect(plan.create).toEqual(['b']);
    expect(plan.delete.sort()).toEqual(['gone', 'pa2']);
  });

  it('replaces at most maxUnavailable available old pods at a time, unavailable ones first', () => {
    const plan = planDaemonSet(ds(), nodes, [pod('pa', 'a', 'old'), pod('pb', 'b', 'old', false), pod('pc', 'c', 'old')], 'new', now);
    expect(plan.delete).toEqual(['pb']);
    const next = planDaemonSet(ds(), nodes, [pod('pa', 'a', 'old'), pod('pc', 'c', 'old'), pod('nb', 'b', 'new')], 'new', now);
    expect(next.delete).toEqual(['pa']);
  });

  it('surges a new pod beside the old one and removes the old once the new is available', () => {
    const surge = ds({}, { rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    expect(planDaemonSet(surge, nodes, [pod('pa', 'a', 'old'), pod('pb', 'b', 'old'), pod('pc', 'c', 'old')], 'new', now)).toEqual({ create: ['a'], delete: [] });
    expect(planDaemonSet(surge, nodes, [pod('pa', 'a', 'old'), pod('na', 'a', 'new'), pod('pb', 'b', 'old'), pod('pc', 'c', 'old')], 'new', now)).toEqual({ create: ['b'], delete: ['pa'] });
  });

  it('counts a daemon pod the scheduler has not bound yet on the node its affinity names', () => {
    const pending = (name: string, target: string): KObject => ({
      metadata: { name, creationTimestamp: t0, labels: { 'controller-revision-hash': 'h' } },
      spec: { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [target] }] }] } } } },
      status: { phase: 'Pending' },
    });
    // No second pod for a node whose pod waits for the scheduler; a node that no longer qualifies loses its pending pod.
    expect(planDaemonSet(ds(), [node('a'), node('b')], [pending('pa', 'a'), pending('pz', 'z')], 'h', now)).toEqual({ create: ['b'], delete: ['pz'] });
    expect(daemonSetStatus(ds(), [node('a')], [pending('pa', 'a')], 'h', now)).toMatchObject({ desiredNumberScheduled: 1, currentNumberScheduled: 1, numberReady: 0, updatedNumberScheduled: 1 });
  });

  it('leaves old pods alone with OnDelete', () => {
    expect(planDaemonSet(ds({}, { type: 'OnDelete' }), nodes, [pod('pa', 'a', 'old'), pod('pb', 'b', 'old')], 'new', now)).toEqual({ create: ['c'], delete: [] });
  });

  it('reports status counts', () => {
    expect(daemonSetStatus(ds(), nodes, [pod('pa', 'a', 'new'), pod('pb', 'b', 'old', false), pod('px', 'x', 'new')], 'new', now)).toMatchObject({
      desiredNumberScheduled: 3,
      currentNumberScheduled: 2,
      numberMisscheduled: 1,
      numberReady: 1,
      numberAvailable: 1,
      updatedNumberScheduled: 1,
      numberUnavailable: 2,
    });
  });
});
