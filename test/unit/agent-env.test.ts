import { describe, expect, it } from 'vitest';
import type { V1ConfigMap, V1Container, V1Pod, V1Secret } from '@kubernetes/client-node';
import { ContainerConfigError, buildEnvironment, expandCommand, expandVars, referencedObjects } from '../../agent/pods/env.js';

describe('$(VAR) expansion', () => {
  const vars: Record<string, string> = { A: 'alpha', B: 'beta', EMPTY: '' };
  const lookup = (name: string) => vars[name];
  it.each([
    ['plain', 'plain'],
    ['$(A)', 'alpha'],
    ['x$(A)y$(B)z', 'xalphaybetaz'],
    ['$(MISSING)', '$(MISSING)'],
    ['$$(A)', '$(A)'],
    ['$$$(A)', '$alpha'],
    ['$A', '$A'],
    ['$(A', '$(A'],
    ['$()', '$()'],
    ['end$', 'end$'],
    ['$(EMPTY)x', 'x'],
    ['$(A)$(A)', 'alphaalpha'],
  ])('%s → %s', (input, output) => expect(expandVars(input, lookup)).toBe(output));
});

const configMaps: Record<string, V1ConfigMap> = {
  settings: { data: { LEVEL: 'debug', 'bad key': 'x', URL: 'http://svc' } },
};
const secrets: Record<string, V1Secret> = {
  creds: { data: { PASSWORD: Buffer.from('s3cret').toString('base64'), USER: Buffer.from('admin').toString('base64') } },
};
const objects = { configMap: (n: string) => configMaps[n], secret: (n: string) => secrets[n] };
const pod = (container: V1Container): V1Pod => ({
  metadata: { name: 'p', namespace: 'ns', uid: 'u-1', labels: { app: 'web' }, annotations: { 'a/b': 'c' } },
  spec: { nodeName: 'node-1', serviceAccountName: 'sa', containers: [container] },
});
const context = { nodeName: 'node-1', hostIP: '10.0.0.1', podIP: '10.244.0.5', podIPs: ['10.244.0.5', 'fd00::5'], allocatable: { cpu: '4', memory: '8Gi' } };

describe('container environment', () => {
  it('combines envFrom (with prefix) and env, in order, with expansion', () => {
    const container: V1Container = {
      name: 'c',
      image: 'i',
      envFrom: [{ configMapRef: { name: 'settings' } }, { secretRef: { name: 'creds' }, prefix: 'DB_' }],
      env: [
        { name: 'LEVEL', value: 'info' },
        { name: 'DSN', value: '$(DB_USER):$(DB_PASSWORD)@$(URL)/$(NOPE)' },
        { name: 'ONE', valueFrom: { configMapKeyRef: { name: 'settings', key: 'URL' } } },
        { name: 'PW', valueFrom: { secretKeyRef: { name: 'creds', key: 'PASSWORD' } } },
      ],
    };
    const { env, warnings } = buildEnvironment(pod(container), container, objects, context);
    expect(Object.fromEntries(env)).toEqual({
      LEVEL: 'info',
      URL: 'http://svc',
      DB_PASSWORD: 's3cret',
      DB_USER: 'admin',
      DSN: 'admin:s3cret@http://svc/$(NOPE)',
      ONE: 'http://svc',
      PW: 's3cret',
    });
    expect(warnings).toEqual(['skipped invalid environment variable name "bad key" from envFrom in container "c"']);
    expect(expandCommand(['echo', '$(LEVEL)', '$$(LEVEL)'], env)).toEqual(['echo', 'info', '$(LEVEL)']);
  });

  it('downward API fields and resources', () => {
    const container: V1Container = {
      name: 'c',
      image: 'i',
      resources: { limits: { memory: '256Mi' }, requests: { cpu: '250m' } },
      env: [
        ['NAME', 'metadata.name'], ['NS', 'metadata.namespace'], ['UID', 'metadata.uid'], ['NODE', 'spec.nodeName'], ['SA', 'spec.serviceAccountName'],
        ['HOST', 'status.hostIP'], ['IP', 'status.podIP'], ['IPS', 'status.podIPs'], ['APP', "metadata.labels['app']"], ['ANN', "metadata.annotations['a/b']"],
      ].map(([name, fieldPath]) => ({ name: name!, valueFrom: { fieldRef: { fieldPath: fieldPath! } } })).concat([
        { name: 'MEM', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } } as never,
        { name: 'CPU_LIMIT', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } } as never,
        { name: 'CPU_REQ_M', valueFrom: { resourceFieldRef: { resource: 'requests.cpu', divisor: '1m' } } } as never,
        { name: 'CPU_REQ', valueFrom: { resourceFieldRef: { resource: 'requests.cpu' } } } as never,
      ]),
    };
    const { env } = buildEnvironment(pod(container), container, objects, context);
    expect(Object.fromEntries(env)).toEqual({
      NAME: 'p', NS: 'ns', UID: 'u-1', NODE: 'node-1', SA: 'sa', HOST: '10.0.0.1', IP: '10.244.0.5', IPS: '10.244.0.5,fd00::5', APP: 'web', ANN: 'c',
      MEM: '256', CPU_LIMIT: '4', CPU_REQ_M: '250', CPU_REQ: '1',
    });
  });

  it.each([
    ['missing configMap', { name: 'X', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k' } } }, /configmap "nope" not found/],
    ['missing key', { name: 'X', valueFrom: { configMapKeyRef: { name: 'settings', key: 'k' } } }, /couldn't find key k in ConfigMap ns\/settings/],
    ['missing secret', { name: 'X', valueFrom: { secretKeyRef: { name: 'nope', key: 'k' } } }, /secret "nope" not found/],
    ['missing secret key', { name: 'X', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } }, /couldn't find key k in Secret ns\/creds/],
    ['bad field path', { name: 'X', valueFrom: { fieldRef: { fieldPath: 'spec.nope' } } }, /unsupported fieldRef/],
  ])('%s is a CreateContainerConfigError', (_name, variable, pattern) => {
    const container: V1Container = { name: 'c', image: 'i', env: [variable] };
    expect(() => buildEnvironment(pod(container), container, objects, context)).toThrow(ContainerConfigError);
    expect(() => buildEnvironment(pod(container), container, objects, context)).toThrow(pattern);
  });

  it('optional references are skipped', () => {
    const container: V1Container = {
      name: 'c',
      image: 'i',
      envFrom: [{ configMapRef: { name: 'nope', optional: true } }, { secretRef: { name: 'nope', optional: true } }],
      env: [
        { name: 'A', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k', optional: true } } },
        { name: 'B', valueFrom: { secretKeyRef: { name: 'creds', key: 'k', optional: true } } },
      ],
    };
    expect(Object.fromEntries(buildEnvironment(pod(container), container, objects, context).env)).toEqual({ A: '', B: '' });
  });

  it('missing non-optional envFrom fails', () => {
    const container: V1Container = { name: 'c', image: 'i', envFrom: [{ secretRef: { name: 'nope' } }] };
    expect(() => buildEnvironment(pod(container), container, objects, context)).toThrow(/secret "nope" not found/);
  });

  it('lists the objects a pod references', () => {
    const p: V1Pod = {
      spec: {
        initContainers: [{ name: 'i', image: 'i', envFrom: [{ secretRef: { name: 's1' } }] }],
        containers: [{ name: 'c', image: 'i', env: [{ name: 'A', valueFrom: { configMapKeyRef: { name: 'c1', key: 'k' } } }] }],
        volumes: [{ name: 'v', configMap: { name: 'c2' } }, { name: 'w', secret: { secretName: 's2' } }, { name: 'p', projected: { sources: [{ configMap: { name: 'c1' } }, { secret: { name: 's3' } }] } }],
      },
    };
    expect(referencedObjects(p)).toEqual({ configMaps: ['c1', 'c2'], secrets: ['s1', 's2', 's3'] });
  });
});
