// lib/k8s: the one implementation of each Kubernetes rule that agent, eviction, scheduler and
// control plane share (QoS, effective requests, criticality, tolerations, cgroup names).
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { podCgroupParent } from '../../lib/k8s/cgroups.js';
import { isMirrorPod, isStaticPod } from '../../lib/k8s/pod-source.js';
import { isCriticalPod } from '../../lib/k8s/priority.js';
import { oomScoreAdj, podQosClass } from '../../lib/k8s/qos.js';
import { podRequest, podResources } from '../../lib/k8s/resources.js';
import { toleratesTaint, untoleratedTaints } from '../../lib/k8s/tolerations.js';

const pod = (...resources: V1Container['resources'][]): V1Pod => ({ spec: { containers: resources.map((r, i) => ({ name: `c${i}`, image: 'i', resources: r })) } });
const gi = 2 ** 30;

describe('podQosClass (GetPodQOS)', () => {
  it.each([
    ['no resources', pod(undefined, {}), 'BestEffort'],
    ['limits only (requests default to limits)', pod({ limits: { cpu: '1', memory: '1Gi' } }), 'Guaranteed'],
    ['equal requests and limits', pod({ limits: { cpu: '500m', memory: '128Mi' }, requests: { cpu: '500m', memory: '128Mi' } }), 'Guaranteed'],
    ['equal in other spellings (1 vs 1000m, 1Gi vs 1024Mi)', pod({ limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '1000m', memory: '1024Mi' } }), 'Guaranteed'],
    ['requests below limits', pod({ limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '500m', memory: '1Gi' } }), 'Burstable'],
    ['only cpu limit', pod({ limits: { cpu: '1' } }), 'Burstable'],
    ['one guaranteed one besteffort', pod({ limits: { cpu: '1', memory: '1Gi' } }, undefined), 'Burstable'],
    ['only requests', pod({ requests: { memory: '64Mi' } }), 'Burstable'],
    ['other resources do not count', pod({ limits: { 'ephemeral-storage': '1Gi' } }), 'BestEffort'],
    ['a zero request counts as none', pod({ requests: { cpu: '0' } }), 'BestEffort'],
    ['no containers', { spec: { containers: [] } }, 'BestEffort'],
    ['an init container without limits makes it Burstable',
      { spec: { initContainers: [{ name: 'i', resources: { requests: { cpu: '1' } } }], containers: [{ name: 'c', resources: { limits: { cpu: '1', memory: '1Gi' } } }] } }, 'Burstable'],
    ['guaranteed init and app containers',
      { spec: { initContainers: [{ name: 'i', resources: { limits: { cpu: '1', memory: '1Gi' } } }], containers: [{ name: 'c', resources: { limits: { cpu: '1', memory: '1Gi' } } }] } }, 'Guaranteed'],
  ] as [string, V1Pod, string][])('%s → %s', (_name, p, qos) => expect(podQosClass(p)).toBe(qos));
});

describe('criticality and pod source', () => {
  it.each([
    ['plain pod', false, {}],
    ['static pod (config.source file)', true, { metadata: { annotations: { 'kubernetes.io/config.source': 'file' } } }],
    ['static pod (config.source http)', true, { metadata: { annotations: { 'kubernetes.io/config.source': 'http' } } }],
    ['API pod', false, { metadata: { annotations: { 'kubernetes.io/config.source': 'api' } } }],
    ['mirror pod', true, { metadata: { annotations: { 'kubernetes.io/config.mirror': 'abc' } } }],
    ['system-cluster-critical priority', true, { spec: { containers: [], priority: 2_000_000_000 } }],
    ['high but not critical priority', false, { spec: { containers: [], priority: 1_999_999_999 } }],
  ] as [string, boolean, V1Pod][])('%s: critical=%s', (_name, critical, p) => expect(isCriticalPod(p)).toBe(critical));

  it('static and mirror are told apart', () => {
    const mirror: V1Pod = { metadata: { annotations: { 'kubernetes.io/config.mirror': 'h', 'kubernetes.io/config.source': 'api' } } };
    expect(isMirrorPod(mirror)).toBe(true);
    expect(isStaticPod(mirror)).toBe(false);
  });
});

describe('oomScoreAdj (GetContainerOOMScoreAdjust)', () => {
  it('per class and memory share', () => {
    expect(oomScoreAdj(pod(), 0, 8 * gi)).toBe(1000);
    expect(oomScoreAdj(pod({ limits: { cpu: '1', memory: '1Gi' } }), gi, 8 * gi)).toBe(-997);
    expect(oomScoreAdj(pod({ requests: { memory: '1Gi' } }), gi, 8 * gi)).toBe(875);
    expect(oomScoreAdj(pod({ requests: { memory: '8Gi' } }), 8 * gi, 8 * gi)).toBe(3);
    expect(oomScoreAdj(pod({ requests: { cpu: '1' } }), 0, 8 * gi)).toBe(999);
    expect(oomScoreAdj({ ...pod(), metadata: { annotations: { 'kubernetes.io/config.source': 'file' } } }, 0, 8 * gi)).toBe(-997);
  });
});

describe('podResources (resource.PodRequests / PodLimits)', () => {
  it('sums app containers and defaults requests to limits', () => {
    const r = podResources(pod({ requests: { cpu: '250m' }, limits: { memory: '64Mi' } }, { requests: { cpu: '250m', memory: '32Mi' } }));
    expect(r.requests).toEqual({ cpu: 500, memory: 96 * 2 ** 20 });
    expect(r.limits).toEqual({ memory: 64 * 2 ** 20 });
    expect(r.limitsDeclared).toEqual({ cpu: false, memory: false });
  });

  it('takes the largest init container when bigger than the app sum', () => {
    const p: V1Pod = { spec: { initContainers: [{ name: 'i', resources: { requests: { cpu: '2', memory: '1Gi' } } }], containers: [{ name: 'c', resources: { requests: { cpu: '1', memory: '2Gi' } } }] } };
    expect(podResources(p).requests).toEqual({ cpu: 2000, memory: 2 * gi });
  });

  it('adds sidecars (restartable init containers) to the app sum and to later init steps (KEP-753)', () => {
    const p: V1Pod = {
      spec: {
        initContainers: [
          { name: 'side', restartPolicy: 'Always', resources: { requests: { cpu: '100m' } } },
          { name: 'init', resources: { requests: { cpu: '1' } } },
        ],
        containers: [{ name: 'c', resources: { requests: { cpu: '200m' } } }],
      },
    };
    expect(podRequest(p, 'cpu')).toBe(1100);
  });

  it('adds overhead to requests, and to limits only where a limit exists', () => {
    const p: V1Pod = { spec: { overhead: { cpu: '100m', memory: '10Mi' }, containers: [{ name: 'c', resources: { limits: { cpu: '1' } } }] } };
    const r = podResources(p);
    expect(r.requests).toEqual({ cpu: 1100, memory: 10 * 2 ** 20 });
    expect(r.limits).toEqual({ cpu: 1100 });
  });

  it('names the container of an invalid quantity', () => {
    expect(() => podResources(pod({ requests: { memory: '12xyz' } }))).toThrow(/container "c0": invalid memory quantity "12xyz"/);
  });
});

describe('tolerations (ToleratesTaint)', () => {
  const taint = { key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' };
  it.each([
    ['Exists with the key', { key: taint.key, operator: 'Exists' }, true],
    ['Exists with no key tolerates everything', { operator: 'Exists' }, true],
    ['other effect', { key: taint.key, operator: 'Exists', effect: 'NoSchedule' }, false],
    ['Equal (default operator) with empty value', { key: taint.key }, true],
    ['Equal with another value', { key: taint.key, value: 'x' }, false],
    ['other key', { key: 'other', operator: 'Exists' }, false],
    ['unknown operator', { key: taint.key, operator: 'Gt' }, false],
  ])('%s → %s', (_name, toleration, expected) => expect(toleratesTaint(toleration, taint)).toBe(expected));

  it('finds the untolerated NoSchedule/NoExecute taints', () => {
    const taints = [taint, { key: 'a', effect: 'PreferNoSchedule' }, { key: 'b', value: 'v', effect: 'NoSchedule' }];
    expect(untoleratedTaints(taints, [{ key: taint.key, operator: 'Exists' }])).toEqual([taints[2]]);
  });
});

describe('pod cgroup parents', () => {
  it('per QoS and driver', () => {
    expect(podCgroupParent('Guaranteed', 'ab-cd', 'cgroupfs')).toBe('/kubepods/podab-cd');
    expect(podCgroupParent('Burstable', 'ab-cd', 'cgroupfs')).toBe('/kubepods/burstable/podab-cd');
    expect(podCgroupParent('BestEffort', 'ab-cd', 'cgroupfs', '/knode')).toBe('/knode/kubepods/besteffort/podab-cd');
    expect(podCgroupParent('Burstable', 'ab-cd', 'systemd')).toBe('kubepods-burstable-podab_cd.slice');
    expect(podCgroupParent('Guaranteed', 'ab-cd', 'systemd')).toBe('kubepods-podab_cd.slice');
  });
});
