import { describe, expect, it } from 'vitest';
import { desiredEndpoints, desiredSlices, resolvePorts } from '../../controlplane/controllers/endpoints-policy.js';
import type { KObject } from '../../controlplane/storage/types.js';

const service = (spec: Record<string, unknown> = {}): KObject => ({
  metadata: { name: 'web', namespace: 'ns', uid: 'svc-uid', labels: { team: 'a' } },
  spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }], ...spec },
});

const pod = (name: string, ip: string | undefined, opts: { ready?: boolean; port?: number; terminating?: boolean; phase?: string; labels?: Record<string, string> } = {}): KObject => ({
  metadata: { name, namespace: 'ns', uid: `${name}-uid`, labels: opts.labels ?? { app: 'web' }, ...(opts.terminating ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
  spec: { nodeName: 'n1', containers: [{ name: 'c', ports: [{ name: 'http', containerPort: opts.port ?? 8080, protocol: 'TCP' }] }] },
  status: { phase: opts.phase ?? 'Running', ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}), conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }] },
});

describe('endpoint slices policy', () => {
  it('resolves named, numeric and defaulted target ports', () => {
    const p = pod('a', '10.0.0.1');
    expect(resolvePorts(service(), p)).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(resolvePorts(service({ ports: [{ name: 'x', port: 80, targetPort: 9000, protocol: 'TCP' }] }), p)).toEqual([{ name: 'x', port: 9000, protocol: 'TCP' }]);
    expect(resolvePorts(service({ ports: [{ name: 'x', port: 80, targetPort: 'missing', protocol: 'TCP' }] }), p)).toEqual([]);
    expect(resolvePorts(service({ ports: [{ name: 'x', port: 80, targetPort: 'http', protocol: 'UDP' }] }), p)).toEqual([]);
  });

  it.each<[string, KObject, { ready: boolean; serving: boolean; terminating: boolean } | undefined]>([
    ['ready', pod('a', '10.0.0.1'), { ready: true, serving: true, terminating: false }],
    ['not ready', pod('a', '10.0.0.1', { ready: false }), { ready: false, serving: false, terminating: false }],
    ['terminating ready', pod('a', '10.0.0.1', { terminating: true }), { ready: false, serving: true, terminating: true }],
    ['no IP yet', pod('a', undefined), undefined],
    ['finished', pod('a', '10.0.0.1', { phase: 'Succeeded' }), undefined],
    ['not selected', pod('a', '10.0.0.1', { labels: { app: 'other' } }), undefined],
  ])('%s', (_name, p, conditions) => {
    const slices = desiredSlices(service(), [p]);
    expect(slices).toHaveLength(1);
    expect(slices[0]?.endpoints).toEqual(conditions ? [expect.objectContaining({ addresses: ['10.0.0.1'], conditions, nodeName: 'n1' })] : []);
  });

  it('publishNotReadyAddresses makes every endpoint ready', () => {
    const slices = desiredSlices(service({ publishNotReadyAddresses: true }), [pod('a', '10.0.0.1', { ready: false })]);
    expect((slices[0]?.endpoints as { conditions: object }[])[0]?.conditions).toEqual({ ready: true, serving: false, terminating: false });
  });

  it('splits by resolved ports and by 100 endpoints, with labels and owner', () => {
    const pods = Array.from({ length: 150 }, (_, i) => pod(`p${i}`, `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`)).concat([pod('other', '10.1.0.1', { port: 9090 })]);
    const slices = desiredSlices(service(), pods);
    expect(slices.map((s) => (s.endpoints as unknown[]).length).sort((a, b) => a - b)).toEqual([1, 50, 100]);
    expect(new Set(slices.map((s) => s.metadata.name)).size).toBe(3);
    for (const slice of slices) {
      expect(slice.metadata.labels).toEqual({ team: 'a', 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' });
      expect(slice.metadata.ownerReferences).toEqual([{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'svc-uid', controller: true, blockOwnerDeletion: true }]);
    }
    expect(desiredSlices(service(), pods).map((s) => s.metadata.name)).toEqual(slices.map((s) => s.metadata.name));
  });

  it('legacy Endpoints: ready and not-ready addresses, terminating left out', () => {
    const ep = desiredEndpoints(service(), [pod('b', '10.0.0.2'), pod('a', '10.0.0.1'), pod('c', '10.0.0.3', { ready: false }), pod('d', '10.0.0.4', { terminating: true })]);
    expect(ep.subsets).toEqual([
      {
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        addresses: [expect.objectContaining({ ip: '10.0.0.1' }), expect.objectContaining({ ip: '10.0.0.2' })],
        notReadyAddresses: [expect.objectContaining({ ip: '10.0.0.3' })],
      },
    ]);
  });
});
