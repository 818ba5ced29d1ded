import { describe, expect, it } from 'vitest';
import { hostPortsConflict, nodeUsage, podHostPorts, podRequests, schedule } from '../../controlplane/controllers/scheduler-policy.js';
import { matchesNodeSelectorAndAffinity, targetNodeName } from '../../lib/k8s/node-affinity.js';
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
    expect(usage.get('a')).toEqual({ milliCpu: 1500, memory: 0, pods: 2, hostPorts: [] });
    expect(schedule(pod('600m'), [node('a')], usage)).toEqual({ unschedulable: '0/1 nodes are available: 1 Insufficient cpu.' });
    expect(schedule(pod(), [node('a', { pods: '2' })], usage)).toEqual({ unschedulable: '0/1 nodes are available: 1 Too many pods.' });
  });

  it('explains why no node fits', () => {
    const decision = schedule(pod('0', '0', { nodeSelector: { x: 'y' } }), [node('a'), node('b', { ready: false }), node('c', { unschedulable: true })], new Map());
    expect(decision).toEqual({
      unschedulable: "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable.",
    });
    expect(schedule(pod(), [], new Map())).toEqual({ unschedulable: 'no nodes available to schedule pods' });
  });

  it('takes the larger of init and app container requests', () => {
    const p: KObject = { metadata: { name: 'p' }, spec: { initContainers: [{ name: 'i', resources: { requests: { cpu: '2' } } }], containers: [{ name: 'a', resources: { requests: { cpu: '500m', memory: '1Mi' } } }, { name: 'b', resources: { requests: { cpu: '500m' } } }] } };
    expect(podRequests(p)).toEqual({ milliCpu: 2000, memory: 1024 * 1024, pods: 1 });
  });

  const affinity = (...terms: object[]) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } } });
  const expr = (key: string, operator: string, values?: string[]) => ({ matchExpressions: [{ key, operator, ...(values ? { values } : {}) }] });

  it.each<[string, object, boolean]>([
    ['In matches', affinity(expr('zone', 'In', ['a', 'b'])), true],
    ['In misses', affinity(expr('zone', 'In', ['c'])), false],
    ['NotIn', affinity(expr('zone', 'NotIn', ['c'])), true],
    ['NotIn on an absent label matches', affinity(expr('gpu', 'NotIn', ['x'])), true],
    ['Exists', affinity(expr('zone', 'Exists')), true],
    ['DoesNotExist', affinity(expr('zone', 'DoesNotExist')), false],
    ['Gt', affinity(expr('cores', 'Gt', ['3'])), true],
    ['Gt equal is false', affinity(expr('cores', 'Gt', ['4'])), false],
    ['Lt', affinity(expr('cores', 'Lt', ['5'])), true],
    ['Gt on a non-integer label', affinity(expr('zone', 'Gt', ['1'])), false],
    ['Gt with two values', affinity(expr('cores', 'Gt', ['1', '2'])), false],
    ['terms are ORed', affinity(expr('zone', 'In', ['x']), expr('zone', 'In', ['a'])), true],
    ['expressions in a term are ANDed', affinity({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }, { key: 'cores', operator: 'Lt', values: ['2'] }] }), false],
    ['matchFields metadata.name In', affinity({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] }), true],
    ['matchFields metadata.name NotIn', affinity({ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['n1'] }] }), false],
    ['matchFields on another field matches nothing', affinity({ matchFields: [{ key: 'metadata.uid', operator: 'In', values: ['n1'] }] }), false],
    ['an empty term matches nothing', affinity({}), false],
    ['no terms matches nothing', affinity(), false],
    ['nodeSelector and affinity both apply', { nodeSelector: { zone: 'b' }, ...affinity(expr('zone', 'Exists')) }, false],
  ])('node affinity: %s', (_name, spec, expected) => {
    const n1 = { metadata: { name: 'n1', labels: { zone: 'a', cores: '4' } } };
    expect(matchesNodeSelectorAndAffinity(spec, n1)).toBe(expected);
    expect(schedule(pod('0', '0', spec as Record<string, unknown>), [node('n1', { labels: n1.metadata.labels })], new Map())).toEqual(
      expected ? { node: 'n1' } : { unschedulable: "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector." },
    );
  });

  it('finds the node a daemon pod is meant for', () => {
    expect(targetNodeName({ nodeName: 'x' })).toBe('x');
    expect(targetNodeName(affinity({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n2'] }] }))).toBe('n2');
    expect(targetNodeName(affinity(expr('zone', 'In', ['a'])))).toBeUndefined();
  });

  it('keeps a host port for one pod per address and protocol', () => {
    const withPort = (port: Record<string, unknown>, nodeName?: string) => pod('0', '0', { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 80, ...port }] }] }, nodeName);
    expect(podHostPorts(withPort({ hostPort: 8080 }))).toEqual([{ hostIP: '0.0.0.0', protocol: 'TCP', port: 8080 }]);
    expect(podHostPorts(withPort({}))).toEqual([]);
    const used = [{ hostIP: '0.0.0.0', protocol: 'TCP', port: 8080 }];
    expect(hostPortsConflict([{ hostIP: '10.0.0.1', protocol: 'TCP', port: 8080 }], used)).toBe(true);
    expect(hostPortsConflict([{ hostIP: '0.0.0.0', protocol: 'UDP', port: 8080 }], used)).toBe(false);
    expect(hostPortsConflict([{ hostIP: '10.0.0.1', protocol: 'TCP', port: 8080 }], [{ hostIP: '10.0.0.2', protocol: 'TCP', port: 8080 }])).toBe(false);
    const usage = nodeUsage([withPort({ hostPort: 8080 }, 'a')]);
    expect(schedule(withPort({ hostPort: 8080 }), [node('a'), node('b')], usage)).toEqual({ node: 'b' });
    expect(schedule(withPort({ hostPort: 8080 }), [node('a')], usage)).toEqual({ unschedulable: "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports." });
    expect(schedule(withPort({ hostPort: 8080, protocol: 'UDP' }), [node('a')], usage)).toEqual({ node: 'a' });
  });

  it('lets a pod that tolerates it onto a not-ready or unschedulable node', () => {
    const tolerating = pod('0', '0', { tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoSchedule' }, { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }] });
    expect(schedule(tolerating, [node('a', { ready: false })], new Map())).toEqual({ node: 'a' });
    expect(schedule(tolerating, [node('a', { unschedulable: true })], new Map())).toEqual({ node: 'a' });
    // The DaemonSet tolerations (not-ready NoExecute) do not cover the NoSchedule taint: the pod waits, as upstream.
    expect(schedule(pod('0', '0', { tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' }] }), [node('a', { ready: false })], new Map())).toEqual({
      unschedulable: '0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.',
    });
  });

  it('names every resource a node lacks and sorts the reasons as kube-scheduler does', () => {
    const decision = schedule(pod('3', '8Gi'), [node('a'), node('b'), node('c', { taints: [{ key: 'k', value: 'v', effect: 'NoExecute' }] })], new Map());
    expect(decision).toEqual({ unschedulable: '0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu, 2 Insufficient memory.' });
  });
});
