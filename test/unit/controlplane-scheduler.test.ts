import { describe, expect, it } from 'vitest';
import { nodeUsage, podRequests, schedule } from '../../controlplane/controllers/scheduler-policy.js';
import type { KObject } from '../../controlplane/storage/types.js';

const node = (name: string, opts: { cpu?: string; memory?: string; pods?: string; ready?: boolean; unschedulable?: boolean; taints?: object[]; labels?: Record<string, string> } = {}): KObject => ({
  metadata: { name, labels: opts.labels ?? {} },
  spec: { unschedulable: opts.unschedulable, taints: opts.taints },
  status: {
    allocatable: { cpu: opts.cpu ?? '2', memory: opts.memory ?? '4Gi', pods: opts.pods ?? '110' },
    conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }],
  },
});

const pod = (cpu = '0', memory = '0', spec: Record<string, unknown> = {}, nodeName?: string): KObject => ({
  metadata: { name: 'p' },
  spec: { nodeName, containers: [{ name: 'c', image: 'i', resources: { requests: { cpu, memory } } }], ...spec },
});

describe('scheduler policy', () => {
  it.each<[string, KObject, KObject[], string]>([
    ['only ready node', pod(), [node('a', { ready: false }), node('b')], 'b'],
    ['skips unschedulable', pod(), [node('a', { unschedulable: true }), node('b')], 'b'],
    ['skips untolerated NoSchedule', pod(), [node('a', { taints: [{ key: 'k', value: 'v', effect: 'NoSchedule' }] }), node('b')], 'b'],
    ['PreferNoSchedule does not filter', pod(), [node('a', { taints: [{ key: 'k', effect: 'PreferNoSchedule' }] })], 'a'],
    ['tolerated taint', pod('0', '0', { tolerations: [{ key: 'k', operator: 'Exists' }] }), [node('a', { taints: [{ key: 'k', value: 'v', effect: 'NoSchedule' }] })], 'a'],
    ['nodeSelector', pod('0', '0', { nodeSelector: { disk: 'ssd' } }), [node('a'), node('b', { labels: { disk: 'ssd' } })], 'b'],
    ['fits cpu', pod('1500m'), [node('a', { cpu: '1' }), node('b', { cpu: '2' })], 'b'],
    ['fits memory', pod('0', '3Gi'), [node('a', { memory: '2Gi' }), node('b')], 'b'],
    ['least allocated wins', pod('100m'), [node('a', { cpu: '1' }), node('b', { cpu: '4' })], 'b'],
    ['ties by name', pod(), [node('b'), node('a')], 'a'],
  ])('%s', (_name, p, nodes, expected) => {
    expect(schedule(p, nodes, new Map())).toEqual({ node: expected });
  });

  it('counts pods already bound to the node', () => {
    const bound = [pod('1', '0', {}, 'a'), pod('500m', '0', {}, 'a'), { ...pod('1', '0', {}, 'a'), status: { phase: 'Succeeded' } }];
    const usage = nodeUsage(bound);
    expect(usage.get('a')).toEqual({ milliCpu: 1500, memory: 0, pods: 2 });
    expect(schedule(pod('600m'), [node('a')], usage)).toEqual({ unschedulable: '0/1 nodes are available: 1 Insufficient cpu.' });
    expect(schedule(pod(), [node('a', { pods: '2' })], usage)).toEqual({ unschedulable: '0/1 nodes are available: 1 Too many pods.' });
  });

  it('explains why no node fits', () => {
    const decision = schedule(pod('0', '0', { nodeSelector: { x: 'y' } }), [node('a'), node('b', { ready: false }), node('c', { unschedulable: true })], new Map());
    expect(decision).toEqual({
      unschedulable: "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable.",
    });
    expect(schedule(pod(), [], new Map())).toEqual({ unschedulable: '0/0 nodes are available.' });
  });

  it('takes the larger of init and app container requests', () => {
    const p: KObject = { metadata: { name: 'p' }, spec: { initContainers: [{ name: 'i', resources: { requests: { cpu: '2' } } }], containers: [{ name: 'a', resources: { requests: { cpu: '500m', memory: '1Mi' } } }, { name: 'b', resources: { requests: { cpu: '500m' } } }] } };
    expect(podRequests(p)).toEqual({ milliCpu: 2000, memory: 1024 * 1024, pods: 1 });
  });

});
