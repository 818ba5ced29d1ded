/**
 * Graceful node shutdown policy (agent/node/shutdown-policy.ts, kubelet pkg/kubelet/nodeshutdown
 * migrateConfig / groupByPriority / killPodFunc status) and its configuration validation.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseKubeletConfig } from '../../lib/config/kubelet.js';
import { ConfigError } from '../../lib/errors.js';
import {
  groupPods,
  podGracePeriodSeconds,
  requestedPeriodSeconds,
  shutdownGroups,
  shutdownPodStatus,
} from '../../agent/node/shutdown-policy.js';

type ShutdownSettings = Parameters<typeof shutdownGroups>[0];
const nodeShutdownMessage = 'Pod was terminated in response to imminent node shutdown.';

const settings = (total: number, critical: number, byPriority: ShutdownSettings['shutdownGracePeriodByPodPriority'] = []): ShutdownSettings => ({
  shutdownGracePeriod: total * 1000,
  shutdownGracePeriodCriticalPods: critical * 1000,
  shutdownGracePeriodByPodPriority: byPriority,
});

function pod(name: string, extra: { priority?: number; static?: boolean; grace?: number } = {}): V1Pod {
  return {
    metadata: { name, namespace: 'default', uid: name, ...(extra.static ? { annotations: { 'kubernetes.io/config.source': 'file' } } : {}) },
    spec: { containers: [], ...(extra.priority !== undefined ? { priority: extra.priority } : {}), ...(extra.grace !== undefined ? { terminationGracePeriodSeconds: extra.grace } : {}) },
  };
}

describe('shutdownGroups (migrateConfig)', () => {
  it.each([
    { name: 'off', input: settings(0, 0), want: [] },
    { name: 'total only', input: settings(30, 0), want: [{ priority: 0, shutdownGracePeriodSeconds: 30 }, { priority: 2_000_000_000, shutdownGracePeriodSeconds: 0 }] },
    { name: 'total and critical', input: settings(30, 10), want: [{ priority: 0, shutdownGracePeriodSeconds: 20 }, { priority: 2_000_000_000, shutdownGracePeriodSeconds: 10 }] },
    { name: 'critical larger than total', input: settings(5, 10), want: [] },
    {
      name: 'by priority, sorted',
      input: settings(0, 0, [{ priority: 100000, shutdownGracePeriodSeconds: 20 }, { priority: 0, shutdownGracePeriodSeconds: 60 }, { priority: 2000000000, shutdownGracePeriodSeconds: 10 }]),
      want: [{ priority: 0, shutdownGracePeriodSeconds: 60 }, { priority: 100000, shutdownGracePeriodSeconds: 20 }, { priority: 2000000000, shutdownGracePeriodSeconds: 10 }],
    },
  ])('$name', ({ input, want }) => {
    expect(shutdownGroups(input)).toEqual(want);
    expect(requestedPeriodSeconds(shutdownGroups(input))).toBe(want.reduce((s, g) => s + g.shutdownGracePeriodSeconds, 0));
  });
});

describe('groupPods (groupByPriority)', () => {
  const groups = [
    { priority: 1, shutdownGracePeriodSeconds: 10 },
    { priority: 100, shutdownGracePeriodSeconds: 20 },
    { priority: 1000, shutdownGracePeriodSeconds: 30 },
  ];
  it.each([
    { name: 'below every group → lowest', pod: pod('a', { priority: 0 }), group: 1 },
    { name: 'no priority → 0 → lowest', pod: pod('a'), group: 1 },
    { name: 'equal to a boundary → that group', pod: pod('a', { priority: 100 }), group: 100 },
    { name: 'between → the lower group', pod: pod('a', { priority: 999 }), group: 100 },
    { name: 'above every group → highest', pod: pod('a', { priority: 5000 }), group: 1000 },
    { name: 'static pod (critical) → highest', pod: pod('a', { static: true }), group: 1000 },
  ])('$name', ({ pod: p, group }) => {
    const result = groupPods(groups, [p]);
    expect(result.map((g) => g.group.priority)).toEqual([1, 100, 1000]);
    expect(result.find((g) => g.pods.length === 1)?.group.priority).toBe(group);
  });

  it('splits the two-setting groups: non-critical first, critical (priority ≥ system-critical, static) last', () => {
    const result = groupPods(shutdownGroups(settings(30, 10)), [pod('web', { priority: 1000 }), pod('sys', { priority: 2_000_001_000 }), pod('static', { static: true }), pod('low', { priority: -5 })]);
    expect(result.map((g) => [g.group.shutdownGracePeriodSeconds, g.pods.map((p) => p.metadata!.name)])).toEqual([
      [20, ['web', 'low']],
      [10, ['sys', 'static']],
    ]);
  });

  it('no groups: nothing', () => {
    expect(groupPods([], [pod('a')])).toEqual([]);
  });
});

describe('podGracePeriodSeconds', () => {
  it.each([
    { own: undefined, group: 20, want: 20 },
    { own: 5, group: 20, want: 5 },
    { own: 30, group: 20, want: 20 },
    { own: 0, group: 20, want: 0 },
  ])('pod $own, group $group → $want', ({ own, group, want }) => {
    expect(podGracePeriodSeconds(pod('a', own !== undefined ? { grace: own } : {}), group)).toBe(want);
  });
});

describe('shutdownPodStatus', () => {
  it('Failed, Terminated, DisruptionTarget TerminationByKubelet; other conditions kept', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const status = shutdownPodStatus({ phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] }, now);
    expect(status).toMatchObject({ phase: 'Failed', reason: 'Terminated', message: 'Pod was terminated in response to imminent node shutdown.' });
    expect(status.conditions).toEqual([
      { type: 'Ready', status: 'False' },
      { type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message: nodeShutdownMessage, lastTransitionTime: now },
    ]);
    // Applied again (every later status): the transition time stays.
    expect(shutdownPodStatus(status, new Date('2026-01-02T00:00:00Z')).conditions?.[1]?.lastTransitionTime).toEqual(now);
  });
});

describe('configuration', () => {
  const parse = (fields: Record<string, unknown>) => parseKubeletConfig({ apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration', ...fields }, 'k.yaml');
  it('accepts the two settings and the priority list', () => {
    expect(parse({ shutdownGracePeriod: '30s', shutdownGracePeriodCriticalPods: '10s' }).config).toMatchObject({ shutdownGracePeriod: 30_000, shutdownGracePeriodCriticalPods: 10_000, shutdownGracePeriodByPodPriority: [] });
    expect(parse({ shutdownGracePeriodByPodPriority: [{ priority: 0, shutdownGracePeriodSeconds: 20 }] }).config.shutdownGracePeriodByPodPriority).toEqual([{ priority: 0, shutdownGracePeriodSeconds: 20 }]);
  });
  it.each([
    { name: 'critical grace larger than the total', fields: { shutdownGracePeriod: '10s', shutdownGracePeriodCriticalPods: '20s' }, error: /shutdownGracePeriodCriticalPods.*must be <= shutdownGracePeriod/ },
    { name: 'both forms', fields: { shutdownGracePeriod: '10s', shutdownGracePeriodByPodPriority: [{ priority: 0, shutdownGracePeriodSeconds: 5 }] }, error: /cannot specify both/ },
    { name: 'duplicate priority', fields: { shutdownGracePeriodByPodPriority: [{ priority: 0, shutdownGracePeriodSeconds: 5 }, { priority: 0, shutdownGracePeriodSeconds: 6 }] }, error: /only once/ },
    { name: 'negative seconds', fields: { shutdownGracePeriodByPodPriority: [{ priority: 0, shutdownGracePeriodSeconds: -1 }] }, error: /shutdownGracePeriodSeconds/ },
    { name: 'unknown key in an entry', fields: { shutdownGracePeriodByPodPriority: [{ priority: 0, shutdownGracePeriodSeconds: 5, grace: 5 }] }, error: /grace/ },
  ])('rejects $name', ({ fields, error }) => {
    expect(() => parse(fields)).toThrow(ConfigError);
    expect(() => parse(fields)).toThrow(error);
  });
});
