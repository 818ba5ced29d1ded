/**
 * Pod-level cgroup resources (agent/cgroups/pod-resources.ts), table-driven against the kubelet's
 * ResourceConfigForPod / PodRequests / PodLimits results for the same specs.
 */
import { describe, expect, it } from 'vitest';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import {
  aggregatePodResources,
  cgroupWrites,
  milliCpuToQuota,
  milliCpuToShares,
  podResourceConfig,
  qosTierCpuShares,
  sharesToWeight,
  type PodResourceConfig,
} from '../../agent/cgroups/pod-resources.js';

const Mi = 2 ** 20;
type Res = Record<string, string>;
const c = (name: string, requests?: Res, limits?: Res, more: Partial<V1Container> = {}): V1Container => ({
  name,
  image: 'busybox',
  ...(requests || limits ? { resources: { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) } } : {}),
  ...more,
});
const pod = (containers: V1Container[], initContainers: V1Container[] = [], overhead?: Res): V1Pod => ({
  metadata: { name: 'p', namespace: 'default', uid: 'u1' },
  spec: { containers, ...(initContainers.length ? { initContainers } : {}), ...(overhead ? { overhead } : {}) },
});
const sidecar = (name: string, requests?: Res, limits?: Res): V1Container => c(name, requests, limits, { restartPolicy: 'Always' });
const defaults = { cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: -1 };

describe('MilliCPUToShares / MilliCPUToQuota / CpuSharesToCpuWeight', () => {
  it.each([
    [0, 2],
    [1, 2],
    [2, 2],
    [100, 102],
    [250, 256],
    [1000, 1024],
    [1500, 1536],
    [10_000_000, 262_144],
  ])('%d millicores → %d shares', (milli, shares) => expect(milliCpuToShares(milli)).toBe(shares));

  it.each([
    [0, 100_000, undefined],
    [5, 100_000, 1000],
    [100, 100_000, 10_000],
    [1500, 100_000, 150_000],
    [250, 50_000, 12_500],
  ])('%d millicores over %d µs → quota %s', (milli, period, quota) => expect(milliCpuToQuota(milli, period)).toBe(quota));

  it.each([
    [2, 1],
    [1024, 39],
    [262_144, 10_000],
  ])('%d shares → weight %d', (shares, weight) => expect(sharesToWeight(shares)).toBe(weight));
});

describe('pod requests and limits (init containers, sidecars, overhead)', () => {
  it.each<[string, V1Pod, { req: [number, number]; lim: [number, number]; cpuDecl: boolean; memDecl: boolean }]>([
    ['sum of app containers', pod([c('a', { cpu: '100m', memory: '10Mi' }, { cpu: '200m', memory: '20Mi' }), c('b', { cpu: '50m' }, { cpu: '300m', memory: '30Mi' })]), { req: [150, 40 * Mi], lim: [500, 50 * Mi], cpuDecl: true, memDecl: true }],
    ['requests default to limits', pod([c('a', undefined, { cpu: '1', memory: '64Mi' })]), { req: [1000, 64 * Mi], lim: [1000, 64 * Mi], cpuDecl: true, memDecl: true }],
    ['one container without limits', pod([c('a', { cpu: '100m' }, { cpu: '200m', memory: '20Mi' }), c('b', { cpu: '100m' })]), { req: [200, 20 * Mi], lim: [200, 20 * Mi], cpuDecl: false, memDecl: false }],
    ['init bigger than apps: max', pod([c('a', undefined, { cpu: '100m', memory: '10Mi' })], [c('i', undefined, { cpu: '2', memory: '5Mi' })]), { req: [2000, 10 * Mi], lim: [2000, 10 * Mi], cpuDecl: true, memDecl: true }],
    ['init without limits: not declared', pod([c('a', undefined, { cpu: '100m', memory: '10Mi' })], [c('i')]), { req: [100, 10 * Mi], lim: [100, 10 * Mi], cpuDecl: false, memDecl: false }],
    [
      'sidecars add to apps and to the init containers after them',
      pod([c('a', undefined, { cpu: '100m', memory: '10Mi' })], [sidecar('s', undefined, { cpu: '200m', memory: '20Mi' }), c('i', undefined, { cpu: '250m', memory: '5Mi' })]),
      { req: [450, 30 * Mi], lim: [450, 30 * Mi], cpuDecl: true, memDecl: true },
    ],
    [
      'init before the sidecar does not see it',
      pod([c('a', undefined, { cpu: '100m', memory: '10Mi' })], [c('i', undefined, { cpu: '250m', memory: '5Mi' }), sidecar('s', undefined, { cpu: '200m', memory: '20Mi' })]),
      { req: [300, 30 * Mi], lim: [300, 30 * Mi], cpuDecl: true, memDecl: true },
    ],
    ['overhead adds to requests, and to limits only where set', pod([c('a', { cpu: '100m' }, { memory: '10Mi' })], [], { cpu: '250m', memory: '120Mi' }), { req: [350, 130 * Mi], lim: [0, 130 * Mi], cpuDecl: false, memDecl: true }],
  ])('%s', (_name, p, want) => {
    const got = aggregatePodResources(p);
    expect([got.requests.cpuMilli, got.requests.memoryBytes]).toEqual(want.req);
    expect([got.limits.cpuMilli, got.limits.memoryBytes]).toEqual(want.lim);
    expect([got.cpuLimitsDeclared, got.memoryLimitsDeclared]).toEqual([want.cpuDecl, want.memDecl]);
  });

  it('names the container of an invalid quantity', () => {
    expect(() => aggregatePodResources(pod([c('bad', undefined, { memory: '12 apples' })]))).toThrow(/container "bad": invalid memory quantity "12 apples"/);
  });
});

describe('ResourceConfigForPod', () => {
  it.each<[string, V1Pod, Partial<typeof defaults>, PodResourceConfig]>([
    ['BestEffort: 2 shares, nothing else', pod([c('a'), c('b')]), {}, { cpuShares: 2 }],
    ['BestEffort with podPidsLimit', pod([c('a')]), { podPidsLimit: 100 }, { cpuShares: 2, pidsLimit: 100 }],
    [
      'Guaranteed: shares, quota and memory',
      pod([c('a', undefined, { cpu: '250m', memory: '32Mi' }), c('b', undefined, { cpu: '250m', memory: '32Mi' })]),
      {},
      { cpuShares: 512, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, memoryLimitBytes: 64 * Mi },
    ],
    [
      'Burstable with every limit: the sums',
      pod([c('a', { cpu: '50m', memory: '8Mi' }, { cpu: '100m', memory: '32Mi' }), c('b', { cpu: '100m' }, { cpu: '200m', memory: '32Mi' })]),
      {},
      { cpuShares: 153, cpuQuotaUs: 30_000, cpuPeriodUs: 100_000, memoryLimitBytes: 64 * Mi },
    ],
    ['Burstable, a container without CPU limit: no quota', pod([c('a', { cpu: '100m' }, { memory: '32Mi' }), c('b', undefined, { cpu: '1', memory: '32Mi' })]), {}, { cpuShares: 1126, memoryLimitBytes: 64 * Mi }],
    ['Burstable, a container without memory limit: no memory limit', pod([c('a', { cpu: '100m' }, { cpu: '200m' }), c('b', undefined, { cpu: '1', memory: '32Mi' })]), {}, { cpuShares: 1126, cpuQuotaUs: 120_000, cpuPeriodUs: 100_000 }],
    ['Burstable with requests only', pod([c('a', { cpu: '1500m', memory: '1Gi' })]), {}, { cpuShares: 1536 }],
    ['cpuCFSQuota false: no quota', pod([c('a', undefined, { cpu: '1', memory: '1Gi' })]), { cpuCFSQuota: false }, { cpuShares: 1024, memoryLimitBytes: 2 ** 30 }],
    ['custom CFS period', pod([c('a', undefined, { cpu: '500m', memory: '1Gi' })]), { cpuCFSQuotaPeriodMs: 50 }, { cpuShares: 512, cpuQuotaUs: 25_000, cpuPeriodUs: 50_000, memoryLimitBytes: 2 ** 30 }],
    [
      'init container dominates (Burstable)',
      pod([c('a', { cpu: '100m' }, { cpu: '200m', memory: '16Mi' })], [c('i', { cpu: '1' }, { cpu: '2', memory: '8Mi' })]),
      {},
      { cpuShares: 1024, cpuQuotaUs: 200_000, cpuPeriodUs: 100_000, memoryLimitBytes: 16 * Mi },
    ],
  ])('%s', (_name, p, options, want) => {
    expect(podResourceConfig(p, { ...defaults, ...options })).toEqual(want);
  });
});

describe('QoS tiers and cgroup files', () => {
  it('burstable tier: shares of the summed requests of Burstable pods only; besteffort 2', () => {
    const burstable = pod([c('a', { cpu: '300m' })]);
    const guaranteed = pod([c('a', undefined, { cpu: '1', memory: '1Gi' })]);
    const invalid = pod([c('a', { cpu: 'lots' })]);
    expect(qosTierCpuShares([burstable, burstable, guaranteed, pod([c('x')]), invalid])).toEqual({ burstable: 614, besteffort: 2 });
    expect(qosTierCpuShares([])).toEqual({ burstable: 2, besteffort: 2 });
  });

  it.each<[string, PodResourceConfig, 1 | 2, string[]]>([
    ['v1 limited', { cpuShares: 153, cpuQuotaUs: 30_000, cpuPeriodUs: 100_000, memoryLimitBytes: 64 * Mi, pidsLimit: 50 }, 1, ['cpu/cpu.shares=153', 'cpu/cpu.cfs_period_us=100000', 'cpu/cpu.cfs_quota_us=30000', 'memory/memory.limit_in_bytes=67108864', 'pids/pids.max=50']],
    ['v1 unlimited', { cpuShares: 2 }, 1, ['cpu/cpu.shares=2', 'cpu/cpu.cfs_quota_us=-1', 'memory/memory.limit_in_bytes=-1', 'pids/pids.max=max']],
    ['v2 limited', { cpuShares: 1024, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, memoryLimitBytes: 64 * Mi }, 2, ['cpu/cpu.weight=39', 'cpu/cpu.max=50000 100000', 'memory/memory.max=67108864', 'pids/pids.max=max']],
    ['v2 unlimited', { cpuShares: 2, pidsLimit: 10 }, 2, ['cpu/cpu.weight=1', 'cpu/cpu.max=max 100000', 'memory/memory.max=max', 'pids/pids.max=10']],
  ])('%s', (_name, config, version, want) => {
    expect(cgroupWrites(config, version).map((w) => `${w.controller}/${w.file}=${w.value}`)).toEqual(want);
  });
});
