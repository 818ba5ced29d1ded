import { describe, expect, it } from 'vitest';
import { defaultPod, defaultPullPolicy, validatePod, validatePodUpdate } from '../../controlplane/kinds-pod.js';
import { allocateForService, defaultService, validateService } from '../../controlplane/kinds-service.js';
import { strategies } from '../../controlplane/kinds.js';
import { checkName } from '../../controlplane/validation.js';
import { parseCidr4 } from '../../controlplane/ipalloc.js';
import type { KObject } from '../../controlplane/storage/types.js';

const fields = (causes: { field?: string }[]) => causes.map((c) => c.field);

describe('names', () => {
  it.each<[string, 'subdomain' | 'label' | 'dns1035', boolean]>([
    ['web', 'subdomain', true],
    ['web.example.com', 'subdomain', true],
    ['Web', 'subdomain', false],
    ['-web', 'subdomain', false],
    ['web_1', 'subdomain', false],
    ['a'.repeat(254), 'subdomain', false],
    ['a.b', 'label', false],
    ['1abc', 'label', true],
    ['1abc', 'dns1035', false],
    ['abc-1', 'dns1035', true],
    ['a'.repeat(64), 'label', false],
  ])('%s as %s -> %s', (name, rule, ok) => {
    expect(checkName('metadata.name', name, rule).length === 0).toBe(ok);
  });
});

describe('pod defaulting', () => {
  it.each([
    ['busybox', 'Always'],
    ['busybox:latest', 'Always'],
    ['busybox:1.36', 'IfNotPresent'],
    ['registry:5000/busybox', 'Always'],
    ['registry:5000/busybox:1', 'IfNotPresent'],
    ['busybox@sha256:abc', 'IfNotPresent'],
  ])('imagePullPolicy for %s is %s', (image, policy) => {
    expect(defaultPullPolicy(image)).toBe(policy);
  });

  it('fills the documented defaults', () => {
    const pod: KObject = { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'x:1', ports: [{ containerPort: 80 }] }] } };
    defaultPod(pod);
    expect(pod.spec).toMatchObject({
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
      terminationGracePeriodSeconds: 30,
      schedulerName: 'default-scheduler',
      containers: [{ imagePullPolicy: 'IfNotPresent', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', ports: [{ protocol: 'TCP' }] }],
    });
  });
});

const container = (p: KObject) => (p.spec as { containers: Record<string, unknown>[] }).containers[0]!;

describe('pod validation', () => {
  const valid = (): KObject => {
    const pod: KObject = { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'x' }] } };
    defaultPod(pod);
    return pod;
  };
  it('accepts a minimal pod', () => expect(validatePod(valid())).toEqual([]));
  it.each<[string, (pod: KObject) => void, string[]]>([
    ['no containers', (p) => ((p.spec as { containers: unknown[] }).containers = []), ['spec.containers']],
    ['no image', (p) => delete (p.spec as { containers: { image?: string }[] }).containers[0]!.image, ['spec.containers[0].image']],
    ['no name', (p) => delete (p.spec as { containers: { name?: string }[] }).containers[0]!.name, ['spec.containers[0].name']],
    ['duplicate names', (p) => (p.spec as { containers: unknown[] }).containers.push({ name: 'c', image: 'y' }), ['spec.containers[1].name']],
    ['port out of range', (p) => ((p.spec as { containers: { ports?: unknown[] }[] }).containers[0]!.ports = [{ containerPort: 0, protocol: 'TCP' }]), ['spec.containers[0].ports[0].containerPort']],
    ['bad protocol', (p) => ((p.spec as { containers: { ports?: unknown[] }[] }).containers[0]!.ports = [{ containerPort: 80, protocol: 'XYZ' }]), ['spec.containers[0].ports[0].protocol']],
    ['bad restartPolicy', (p) => ((p.spec as { restartPolicy: string }).restartPolicy = 'Sometimes'), ['spec.restartPolicy']],
    ['bad name', (p) => (p.metadata.name = 'UPPER'), ['metadata.name']],
    ['bad label', (p) => (p.metadata.labels = { 'a b': 'c' }), ['metadata.labels']],
    ['negative preStop sleep', (p) => (container(p).lifecycle = { preStop: { sleep: { seconds: -1 } } }), ['spec.containers[0].lifecycle.preStop.sleep']],
    ['sleep beyond the grace period', (p) => (container(p).lifecycle = { postStart: { sleep: { seconds: 31 } } }), ['spec.containers[0].lifecycle.postStart.sleep']],
    ['two handler types', (p) => (container(p).lifecycle = { preStop: { exec: { command: ['true'] }, sleep: { seconds: 1 } } }), ['spec.containers[0].lifecycle.preStop.sleep']],
    ['no handler type', (p) => (container(p).lifecycle = { preStop: {} }), ['spec.containers[0].lifecycle.preStop']],
  ])('%s', (_name, mutate, expected) => {
    const pod = valid();
    mutate(pod);
    expect(fields(validatePod(pod))).toEqual(expected);
  });

  it('accepts a sleep action of 0 seconds (PodLifecycleSleepActionAllowZero, GA in 1.34) and up to the grace period', () => {
    const pod = valid();
    container(pod).lifecycle = { preStop: { sleep: { seconds: 0 } }, postStart: { sleep: { seconds: 30 } } };
    expect(validatePod(pod)).toEqual([]);
    container(pod).lifecycle = { preStop: { sleep: { seconds: -1 } } };
    expect(validatePod(pod)[0]!.message).toBe('Invalid value: -1: must be non-negative and less than terminationGracePeriodSeconds (30)');
  });

  it('allows image updates but not other spec changes', () => {
    const old = valid();
    const imageOnly = structuredClone(old);
    (imageOnly.spec as { containers: { image: string }[] }).containers[0]!.image = 'y';
    expect(validatePodUpdate(imageOnly, old)).toEqual([]);
    const other = structuredClone(old);
    (other.spec as { restartPolicy: string }).restartPolicy = 'Never';
    expect(fields(validatePodUpdate(other, old))).toEqual(['spec']);
  });
});

describe('services', () => {
  const cidr = parseCidr4('10.96.0.0/12');
  const make = (spec: Record<string, unknown>): KObject => {
    const svc: KObject = { metadata: { name: 's' }, spec };
    defaultService(svc);
    return svc;
  };
  it('defaults type, affinity, protocol and targetPort', () => {
    const svc = make({ ports: [{ port: 80 }] });
    expect(svc.spec).toMatchObject({ type: 'ClusterIP', sessionAffinity: 'None', ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }] });
    expect(validateService(svc)).toEqual([]);
  });
  it.each<[string, Record<string, unknown>, string[]]>([
    ['no ports', {}, ['spec.ports']],
    ['two unnamed ports', { ports: [{ port: 80 }, { port: 81 }] }, ['spec.ports[0].name', 'spec.ports[1].name']],
    ['port 0', { ports: [{ port: 0 }] }, ['spec.ports[0].port', 'spec.ports[0].targetPort']],
    ['bad type', { type: 'Weird', ports: [{ port: 80 }] }, ['spec.type']],
    ['nodePort on ClusterIP', { ports: [{ port: 80, nodePort: 30001 }] }, ['spec.ports[0].nodePort']],
  ])('%s', (_name, spec, expected) => {
    expect(fields(validateService(make(spec)))).toEqual(expected);
  });
  it('allocates a ClusterIP and rejects a taken one', () => {
    const a = make({ ports: [{ port: 80 }] });
    expect(allocateForService(a, undefined, { serviceCidr: cidr, usedIps: new Set(), usedNodePorts: new Set() })).toEqual([]);
    expect((a.spec as { clusterIP: string }).clusterIP).toMatch(/^10\./);
    const b = make({ clusterIP: '10.96.0.10', ports: [{ port: 80 }] });
    const causes = allocateForService(b, undefined, { serviceCidr: cidr, usedIps: new Set(['10.96.0.10']), usedNodePorts: new Set() });
    expect(causes[0]?.message).toContain('provided IP is already allocated');
    const outside = make({ clusterIP: '192.168.0.1', ports: [{ port: 80 }] });
    expect(fields(allocateForService(outside, undefined, { serviceCidr: cidr, usedIps: new Set(), usedNodePorts: new Set() }))).toEqual(['spec.clusterIPs']);
  });
  it('allocates NodePorts and rejects a taken one', () => {
    const a = make({ type: 'NodePort', ports: [{ port: 80 }] });
    allocateForService(a, undefined, { serviceCidr: cidr, usedIps: new Set(), usedNodePorts: new Set() });
    const port = (a.spec as { ports: { nodePort: number }[] }).ports[0]!.nodePort;
    expect(port).toBeGreaterThanOrEqual(30000);
    expect(port).toBeLessThanOrEqual(32767);
    const b = make({ type: 'NodePort', ports: [{ port: 80, nodePort: port }] });
    const causes = allocateForService(b, undefined, { serviceCidr: cidr, usedIps: new Set(), usedNodePorts: new Set([port]) });
    expect(causes.map((c) => c.field)).toEqual(['spec.ports[0].nodePort']);
  });
});

describe('other kinds', () => {
  it('secrets: stringData becomes base64 data; bad base64 is invalid', () => {
    const secret: KObject = { metadata: { name: 's' }, stringData: { a: 'hello' } };
    strategies.Secret!.defaults!(secret);
    expect(secret).toMatchObject({ type: 'Opaque', data: { a: 'aGVsbG8=' } });
    expect(strategies.Secret!.validate({ metadata: { name: 's' }, data: { a: '***' } }, undefined).map((c) => c.field)).toEqual(['data[a]']);
  });
  it('configmaps: keys must be valid', () => {
    expect(strategies.ConfigMap!.validate({ metadata: { name: 'c' }, data: { 'bad key': 'x' } }, undefined).length).toBe(1);
  });
  it('namespaces get the metadata.name label and Active phase', () => {
    const ns: KObject = { metadata: { name: 'team' } };
    strategies.Namespace!.defaults!(ns);
    expect(ns).toMatchObject({ metadata: { labels: { 'kubernetes.io/metadata.name': 'team' } }, status: { phase: 'Active' } });
  });
});
