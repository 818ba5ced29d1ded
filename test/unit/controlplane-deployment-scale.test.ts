import { describe, expect, it } from 'vitest';
import { isScalingEvent, scaleDeployment } from '../../controlplane/controllers/deployment-scale.js';
import type { KObject } from '../../controlplane/storage/types.js';

const deployment = (replicas: number, surge: number | string = 3, unavailable: number | string = 2, statusReplicas = 0): KObject => ({
  metadata: { name: 'd' },
  spec: { replicas, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: surge, maxUnavailable: unavailable } } },
  status: { replicas: statusReplicas },
});
const rs = (name: string, replicas: number, created: string, desired?: number, max?: number, available = 0): KObject => ({
  metadata: {
    name,
    creationTimestamp: created,
    annotations: { ...(desired !== undefined ? { 'deployment.kubernetes.io/desired-replicas': String(desired) } : {}), ...(max !== undefined ? { 'deployment.kubernetes.io/max-replicas': String(max) } : {}) },
  },
  spec: { replicas },
  status: { availableReplicas: available },
});

describe('proportional scaling (sync.go scale, GetProportion)', () => {
  it("spreads a scale-up over the rollout's ReplicaSets as the documentation's example does", () => {
    // docs "Proportional scaling": 10 replicas, maxSurge 3, maxUnavailable 2, rollout stuck at old 8 / new 5; scaled to 15.
    const d = deployment(15);
    const old = rs('old', 8, '2024-01-01T00:00:00Z', 10, 13, 8);
    const fresh = rs('new', 5, '2024-01-02T00:00:00Z', 10, 13, 0);
    expect(isScalingEvent(d, [old, fresh])).toBe(true);
    expect(scaleDeployment(d, fresh, [old])).toEqual(new Map([['old', 11], ['new', 7]]));
  });

  it('scales down proportionally, the leftover taken from the largest', () => {
    const d = deployment(5, 1, 0);
    const old = rs('old', 6, '2024-01-01T00:00:00Z', 10, 11, 6);
    const fresh = rs('new', 5, '2024-01-02T00:00:00Z', 10, 11, 0);
    const plan = scaleDeployment(d, fresh, [old]);
    // allowed 5+1 = 6 from 11: old 6*6/11 = 3.27 → 3, new 5*6/11 = 2.73 → 3.
    expect(plan).toEqual(new Map([['old', 3], ['new', 3]]));
    expect([...plan.values()].reduce((a, b) => a + b)).toBe(6);
  });

  it('scales everything to zero', () => {
    const plan = scaleDeployment(deployment(0), rs('new', 2, '2024-01-02T00:00:00Z', 4, 5), [rs('old', 3, '2024-01-01T00:00:00Z', 4, 5)]);
    expect(plan).toEqual(new Map([['old', 0], ['new', 0]]));
  });

  it('falls back to status.replicas without a max-replicas annotation', () => {
    const d = deployment(8, 0, 1, 4);
    const plan = scaleDeployment(d, rs('new', 2, '2024-01-02T00:00:00Z', 4), [rs('old', 2, '2024-01-01T00:00:00Z', 4)]);
    expect(plan).toEqual(new Map([['new', 4], ['old', 4]]));
  });

  it('gives a lone active (or the newest) ReplicaSet the full count, and scales old ones away once the new one is saturated', () => {
    expect(scaleDeployment(deployment(7), rs('new', 3, '2024-01-02T00:00:00Z', 3), [rs('old', 0, '2024-01-01T00:00:00Z')])).toEqual(new Map([['new', 7]]));
    expect(scaleDeployment(deployment(4), undefined, [rs('a', 0, '2024-01-01T00:00:00Z'), rs('b', 0, '2024-01-03T00:00:00Z')])).toEqual(new Map([['b', 4]]));
    expect(scaleDeployment(deployment(3), rs('new', 3, '2024-01-02T00:00:00Z', 3, 6, 3), [rs('old', 1, '2024-01-01T00:00:00Z', 3, 6)])).toEqual(new Map([['old', 0]]));
  });

  it('is not a scaling event when every active set already has the desired count annotated', () => {
    expect(isScalingEvent(deployment(3), [rs('a', 3, 't', 3), rs('b', 0, 't', 9)])).toBe(false);
    expect(isScalingEvent(deployment(3), [rs('a', 3, 't')])).toBe(false);
  });
});
