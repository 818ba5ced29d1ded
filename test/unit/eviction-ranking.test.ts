import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { makePod } from '../helpers/eviction-fakes.js';
import { admitPod, chooseEviction, evictionGracePeriod, evictionMessage, formatAmount } from '../../eviction/policy.js';
import { rankPods } from '../../eviction/ranking.js';
import { isCriticalPod } from '../../lib/k8s/priority.js';
import { podQosClass } from '../../lib/k8s/qos.js';
import type { Observations, PodUsage, Signal, StarvedResource, Threshold } from '../../eviction/types.js';

const Mi = 2 ** 20;
const Gi = 2 ** 30;

const bestEffort = (name: string, priority?: number) => makePod({ name, priority });
const burstable = (name: string, memoryRequest: string, priority?: number) => makePod({ name, priority, containers: [{ name: 'c', requests: { memory: memoryRequest } }] });
const guaranteed = (name: string, memory: string) => makePod({ name, containers: [{ name: 'c', requests: { cpu: '100m', memory }, limits: { cpu: '100m', memory } }] });
const memUse = (bytes: number): PodUsage => ({ containers: [{ name: 'c', memoryWorkingSetBytes: bytes }] });

function rank(signal: Signal, resource: StarvedResource, pods: ReturnType<typeof makePod>[], usage: Record<string, PodUsage>, dedicatedImageFs = false): string[] {
  return rankPods(pods, { signal, resource, usage: new Map(Object.entries(usage)), dedicatedImageFs }).map((p) => p.metadata!.name!);
}

describe('QoS class and critical pods', () => {
  it.each([
    ['no resources', 'BestEffort', makePod({ name: 'a' })],
    ['only ephemeral-storage', 'BestEffort', makePod({ name: 'a', containers: [{ name: 'c', requests: { 'ephemeral-storage': '1Gi' } }] })],
    ['memory request only', 'Burstable', burstable('a', '100Mi')],
    ['requests equal limits', 'Guaranteed', guaranteed('a', '100Mi')],
    ['limits only (defaulted requests)', 'Guaranteed', makePod({ name: 'a', containers: [{ name: 'c', limits: { cpu: '1', memory: '1Gi' } }] })],
    ['one container without limits', 'Burstable', makePod({ name: 'a', containers: [{ name: 'x', limits: { cpu: '1', memory: '1Gi' } }, { name: 'y' }] })],
  ])('%s → %s', (_name, qos, pod) => {
    expect(podQosClass(pod)).toBe(qos);
  });

  it.each([
    ['plain pod', false, makePod({ name: 'a' })],
    ['static pod (config.source file)', true, makePod({ name: 'a', annotations: { 'kubernetes.io/config.source': 'file' } })],
    ['API pod', false, makePod({ name: 'a', annotations: { 'kubernetes.io/config.source': 'api' } })],
    ['mirror pod', true, makePod({ name: 'a', annotations: { 'kubernetes.io/config.mirror': 'abc' } })],
    ['system-cluster-critical priority', true, makePod({ name: 'a', priority: 2_000_000_000 })],
    ['high but not critical priority', false, makePod({ name: 'a', priority: 1_999_999_999 })],
  ])('%s: critical=%s', (_name, critical, pod) => {
    expect(isCriticalPod(pod)).toBe(critical);
  });
});

interface RankCase {
  name: string;
  pods: V1Pod[];
  usage: Record<string, PodUsage>;
  expected: string[];
}

describe('rankPods', () => {
  it.each<RankCase>([
    {
      name: 'memory: usage above requests first, even over higher priority',
      pods: [burstable('under', '1Gi', -10), bestEffort('over', 1000)],
      usage: { under: memUse(500 * Mi), over: memUse(10 * Mi) },
      expected: ['over', 'under'],
    },
    {
      name: 'memory: then lower priority first',
      pods: [bestEffort('high', 100), bestEffort('low', 1)],
      usage: { high: memUse(900 * Mi), low: memUse(10 * Mi) },
      expected: ['low', 'high'],
    },
    {
      name: 'memory: then larger usage above requests first',
      pods: [burstable('small', '100Mi'), burstable('big', '100Mi'), bestEffort('mid')],
      usage: { small: memUse(150 * Mi), big: memUse(400 * Mi), mid: memUse(200 * Mi) },
      expected: ['big', 'mid', 'small'],
    },
    {
      name: 'memory: guaranteed pod under its requests last',
      pods: [guaranteed('g', '1Gi'), bestEffort('be')],
      usage: { g: memUse(900 * Mi), be: memUse(50 * Mi) },
      expected: ['be', 'g'],
    },
    {
      name: 'memory: a pod without stats first',
      pods: [bestEffort('known'), bestEffort('unknown')],
      usage: { known: memUse(900 * Mi) },
      expected: ['unknown', 'known'],
    },
  ])('$name', ({ pods, usage, expected }) => {
    expect(rank('memory.available', 'memory', pods, usage)).toEqual(expected);
  });

  it('disk (nodefs, shared imagefs): over ephemeral-storage requests, priority, then usage of rootfs+logs+volumes', () => {
    const pods = [
      makePod({ name: 'requested', containers: [{ name: 'c', requests: { 'ephemeral-storage': '1Gi' } }] }),
      makePod({ name: 'writer' }),
      makePod({ name: 'logger' }),
    ];
    const usage = {
      requested: { containers: [{ name: 'c', rootfsUsedBytes: 500 * Mi }] },
      writer: { containers: [{ name: 'c', rootfsUsedBytes: 10 * Mi }], localVolumesUsedBytes: 300 * Mi },
      logger: { containers: [{ name: 'c', logsUsedBytes: 200 * Mi }] },
    };
    expect(rank('nodefs.available', 'ephemeral-storage', pods, usage)).toEqual(['writer', 'logger', 'requested']);
    // With a dedicated imagefs, imagefs ranks by container rootfs only (requested: 500Mi − 1Gi < logger: 0).
    expect(rank('imagefs.available', 'ephemeral-storage', pods, usage, true)).toEqual(['writer', 'logger', 'requested']);
    // … and nodefs by logs + volumes only.
    expect(rank('nodefs.available', 'ephemeral-storage', pods, usage, true)).toEqual(['writer', 'logger', 'requested']);
  });

  it('inodes: any usage exceeds the zero request; then priority; then inodes used', () => {
    const pods = [makePod({ name: 'a', priority: 5 }), makePod({ name: 'b', priority: 1 }), makePod({ name: 'c', priority: 1 })];
    const usage = {
      a: { containers: [{ name: 'c', rootfsInodesUsed: 100_000 }] },
      b: { containers: [{ name: 'c', rootfsInodesUsed: 10 }] },
      c: { containers: [{ name: 'c', rootfsInodesUsed: 20 }] },
    };
    expect(rank('nodefs.inodesFree', 'inodes', pods, usage)).toEqual(['c', 'b', 'a']);
  });

  it('pids: priority first, then process count', () => {
    const pods = [makePod({ name: 'many', priority: 10 }), makePod({ name: 'few', priority: 0 }), makePod({ name: 'more', priority: 0 })];
    const usage = { many: { containers: [], processCount: 5000 }, few: { containers: [], processCount: 3 }, more: { containers: [], processCount: 30 } };
    expect(rank('pid.available', 'pids', pods, usage)).toEqual(['more', 'few', 'many']);
  });
});

describe('eviction decision', () => {
  const hard: Threshold = { signal: 'memory.available', value: { quantity: 100 * Mi }, gracePeriodMs: 0, hard: true };
  const soft: Threshold = { signal: 'memory.available', value: { quantity: 1 * Gi }, gracePeriodMs: 30_000, hard: false };
  const observations: Observations = { 'memory.available': { available: 80 * Mi, capacity: 8 * Gi, time: 0 } };

  it('evicts the BestEffort pod over the Guaranteed one, with the kubelet message', () => {
    const pods = [guaranteed('g', '512Mi'), makePod({ name: 'be', containers: [{ name: 'x' }] })];
    const usage = new Map([
      ['g', memUse(400 * Mi)],
      ['be', { containers: [{ name: 'x', memoryWorkingSetBytes: 300 * Mi }] }],
    ]);
    const decision = chooseEviction({ pods, usage, threshold: hard, observations, maxPodGracePeriodSeconds: 30, dedicatedImageFs: false, now: 5000 })!;
    expect(decision.pod.metadata!.name).toBe('be');
    const message = 'The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi. Container x was using 300Mi, request is 0, has larger consumption of memory. ';
    expect(decision.status).toEqual({
      phase: 'Failed',
      reason: 'Evicted',
      message,
      conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message, lastTransitionTime: new Date(5000) }],
    });
    expect(decision.event).toEqual({
      type: 'Warning',
      reason: 'Evicted',
      message,
      annotations: { offending_containers: 'x', offending_containers_usage: '300Mi', starved_resource: 'memory' },
    });
    expect(decision.gracePeriodSeconds).toBe(1);
  });

  it('names only containers above their request, with the request as written', () => {
    const pod = makePod({ name: 'p', containers: [{ name: 'a', requests: { memory: '100Mi' } }, { name: 'b', requests: { memory: '1Gi' } }] });
    const usage = new Map([['p', { containers: [{ name: 'a', memoryWorkingSetBytes: 150 * Mi + 1 }, { name: 'b', memoryWorkingSetBytes: 10 * Mi }] }]]);
    expect(evictionMessage(pod, hard, observations, usage, false).message).toBe(
      'The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi. Container a was using 157286401, request is 100Mi, has larger consumption of memory. ',
    );
  });

  it('disk and inode messages use the starved resource and percentage thresholds resolved against capacity', () => {
    const nodefs: Threshold = { signal: 'nodefs.available', value: { percentage: 0.1 }, gracePeriodMs: 0, hard: true };
    const inodes: Threshold = { signal: 'nodefs.inodesFree', value: { percentage: 0.05 }, gracePeriodMs: 0, hard: true };
    const obs: Observations = {
      'nodefs.available': { available: 50 * Mi, capacity: 1 * Gi, time: 0 },
      'nodefs.inodesFree': { available: 3000, capacity: 100_000, time: 0 },
    };
    const pod = makePod({ name: 'p', containers: [{ name: 'w' }] });
    const usage = new Map([['p', { containers: [{ name: 'w', rootfsUsedBytes: 20 * Mi, logsUsedBytes: 4 * Mi }], localVolumesUsedBytes: 500 * Mi }]]);
    expect(evictionMessage(pod, nodefs, obs, usage, false).message).toBe(
      'The node was low on resource: ephemeral-storage. Threshold quantity: 107374182, available: 50Mi. Container w was using 24Mi, request is 0, has larger consumption of ephemeral-storage. ',
    );
    expect(evictionMessage(pod, inodes, obs, usage, false).message).toBe('The node was low on resource: inodes. Threshold quantity: 5k, available: 3k. ');
  });

  it('never evicts critical pods; nothing else left → no decision', () => {
    const pods = [makePod({ name: 'static', annotations: { 'kubernetes.io/config.source': 'file' } }), makePod({ name: 'crit', priority: 2_000_001_000 })];
    const usage = new Map([
      ['static', memUse(2 * Gi)],
      ['crit', memUse(2 * Gi)],
    ]);
    expect(chooseEviction({ pods, usage, threshold: hard, observations, maxPodGracePeriodSeconds: 0, dedicatedImageFs: false, now: 0 })).toBeUndefined();
    const withUser = [...pods, guaranteed('g', '1Gi')];
    usage.set('g', memUse(100 * Mi));
    expect(chooseEviction({ pods: withUser, usage, threshold: hard, observations, maxPodGracePeriodSeconds: 0, dedicatedImageFs: false, now: 0 })?.pod.metadata?.name).toBe('g');
  });

  it.each([
    ['hard threshold: immediate (1 s)', hard, undefined, 60, 1],
    ['soft, pod grace larger than max', soft, 120, 60, 60],
    ['soft, pod grace smaller than max', soft, 10, 60, 10],
    ['soft, pod without grace: max', soft, undefined, 45, 45],
  ])('grace period: %s', (_name, threshold, podGrace, max, expected) => {
    expect(evictionGracePeriod(makePod({ name: 'p', terminationGracePeriodSeconds: podGrace }), threshold, max)).toBe(expected);
  });

  it.each([
    [0, 'memory', '0'],
    [100 * Mi, 'memory', '100Mi'],
    [1536, 'memory', '1536'],
    [1000, 'ephemeral-storage', '1000'],
    [5000, 'inodes', '5k'],
    [16_357_194, 'inodes', '16357194'],
    [32_000, 'pids', '32k'],
  ] as const)('formatAmount(%s, %s) = %s', (amount, resource, text) => {
    expect(formatAmount(amount, resource)).toBe(text);
  });
});

describe('admission under pressure', () => {
  it.each([
    ['no pressure admits BestEffort', bestEffort('a'), [], true],
    ['memory pressure rejects BestEffort', bestEffort('a'), ['MemoryPressure'], false],
    ['memory pressure admits Burstable', burstable('a', '10Mi'), ['MemoryPressure'], true],
    ['memory pressure admits Guaranteed', guaranteed('a', '10Mi'), ['MemoryPressure'], true],
    ['memory pressure admits critical BestEffort', bestEffort('a', 2_000_000_000), ['MemoryPressure'], true],
    ['disk pressure rejects Guaranteed', guaranteed('a', '10Mi'), ['DiskPressure'], false],
    ['memory and disk pressure reject Burstable', burstable('a', '10Mi'), ['MemoryPressure', 'DiskPressure'], false],
  ] as const)('%s', (_name, pod, conditions, admitted) => {
    expect(admitPod(pod, new Set(conditions)).admit).toBe(admitted);
  });

  it('rejects with reason Evicted and the kubelet message; tolerating the taint admits', () => {
    expect(admitPod(bestEffort('a'), new Set(['MemoryPressure']))).toEqual({ admit: false, reason: 'Evicted', message: 'The node had condition: [MemoryPressure]. ' });
    expect(admitPod(guaranteed('a', '1Mi'), new Set(['DiskPressure', 'MemoryPressure']))).toEqual({
      admit: false,
      reason: 'Evicted',
      message: 'The node had condition: [MemoryPressure DiskPressure]. ',
    });
    const tolerating = bestEffort('t');
    tolerating.spec!.tolerations = [{ key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' }];
    expect(admitPod(tolerating, new Set(['MemoryPressure'])).admit).toBe(true);
  });
});
