/**
 * 1,000 random bad requests (seeded, so a failure reproduces): malformed JSON and YAML, random
 * bytes, wrong kinds and versions, invalid fields, broken patches, oversized bodies. Each gets
 * a 4xx Status, the stored state (every object and the revision) is unchanged, and the server
 * still answers afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';

const env = await prerequisites();

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface BadRequest {
  method: string;
  path: string;
  type: string;
  body: string | Uint8Array;
}

const validPod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'keep', namespace: 'fuzz' }, spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] } };

function generators(random: () => number): (() => BadRequest)[] {
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)] as T;
  const junk = (n: number) => Array.from({ length: n }, () => String.fromCharCode(Math.floor(random() * 128))).join('');
  const podPath = '/api/v1/namespaces/fuzz/pods';
  const text = JSON.stringify(validPod);
  const invalidFields: ((p: Record<string, any>) => void)[] = [
    (p) => (p.metadata.name = pick(['UPPER', 'under_score', '-lead', 'a'.repeat(300), '', 'sp ace'])),
    (p) => (p.spec.containers = pick([[], 'x', 5, [{}], [{ name: 'c' }], [{ image: 'i' }], null])),
    (p) => (p.spec.containers[0].ports = [{ containerPort: pick([0, -1, 70000, 'eighty', 1.5]) }]),
    (p) => (p.spec.restartPolicy = junk(6)),
    (p) => (p.spec.dnsPolicy = pick(['Nope', 7])),
    (p) => (p.spec.terminationGracePeriodSeconds = pick([-5, 'x', 1.5])),
    (p) => p.spec.containers.push({ name: 'c', image: 'dup' }),
    (p) => (p.metadata.labels = { [pick(['bad key', '/x', 'a/b/c'])]: 'v' }),
    (p) => (p.metadata.labels = { ok: pick(['has space', '-x', 'a'.repeat(64)]) }),
    (p) => (p.kind = pick(['Service', 'Node', 'Nope'])),
    (p) => (p.apiVersion = pick(['v2', 'apps/v1', 'coordination.k8s.io/v1'])),
    (p) => (p.metadata = pick(['str', 5, [1]])),
    (p) => (p.metadata.namespace = 'other'),
  ];
  return [
    () => ({ method: 'POST', path: podPath, type: 'application/json', body: text.slice(0, Math.floor(random() * (text.length - 1))) }),
    () => ({ method: 'POST', path: podPath, type: 'application/json', body: junk(1 + Math.floor(random() * 200)) }),
    () => ({ method: 'POST', path: podPath, type: 'application/yaml', body: `metadata: {name: [${junk(10)}` }),
    () => ({ method: 'POST', path: podPath, type: 'application/json', body: JSON.stringify(pick([null, 5, 'str', [validPod], true])) }),
    () => ({ method: 'POST', path: podPath, type: 'application/vnd.kubernetes.protobuf', body: new Uint8Array(Array.from({ length: 40 }, () => Math.floor(random() * 256))) }),
    () => {
      const p = structuredClone(validPod) as Record<string, any>;
      pick(invalidFields)(p);
      return { method: pick(['POST', 'PUT']), path: pick([podPath, `${podPath}/keep`]), type: 'application/json', body: JSON.stringify(p) };
    },
    () => ({
      method: 'PATCH',
      path: `${podPath}/keep`,
      type: 'application/json-patch+json',
      body: JSON.stringify(
        pick([
          [{ op: 'remove', path: '/spec/nope' }],
          [{ op: 'test', path: '/metadata/name', value: 'other' }, { op: 'add', path: '/metadata/labels', value: { a: 'b' } }],
          [{ op: 'replace', path: '/spec/containers/0/image', value: '' }],
          [{ op: junk(4), path: '/a' }],
          { op: 'add' },
          [{ op: 'add', path: '/spec/containers/9', value: {} }],
          [{ op: 'add', path: '/metadata/name', value: 'renamed' }],
        ]),
      ),
    }),
    () => ({
      method: 'PATCH',
      path: `${podPath}/keep`,
      type: pick(['application/merge-patch+json', 'application/strategic-merge-patch+json']),
      body: pick([
        JSON.stringify({ spec: { containers: [{ name: 'c', image: null }] } }),
        JSON.stringify({ spec: { restartPolicy: 'Never' } }),
        JSON.stringify({ metadata: { resourceVersion: '1' } }),
        JSON.stringify({ metadata: { labels: { 'bad key': 'x' } } }),
        JSON.stringify([1, 2]),
        junk(20),
      ]),
    }),
    () => ({ method: 'POST', path: '/api/v1/namespaces/fuzz/configmaps', type: 'application/json', body: JSON.stringify({ metadata: { name: 'big' }, data: { a: 'x'.repeat(3 * 1024 * 1024) } }) }),
    () => ({ method: pick(['POST', 'PUT', 'PATCH']), path: pick(['/api/v1/namespaces/fuzz/widgets', '/apis/apps/v1/namespaces/fuzz/deployments', '/api/v2/pods']), type: 'application/json', body: text }),
    () => ({ method: 'PUT', path: `${podPath}/other-name`, type: 'application/json', body: text }),
    () => {
      const depth = 10_001 + Math.floor(random() * 50_000);
      return pick([
        { method: 'POST', path: podPath, type: 'application/json', body: `{"metadata":{"name":"deep"},"spec":${'['.repeat(depth)}${']'.repeat(depth)}}` },
        { method: 'PATCH', path: `${podPath}/keep`, type: 'application/merge-patch+json', body: `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` },
        { method: 'POST', path: podPath, type: 'application/yaml', body: `metadata: {name: deep}\nspec: ${'['.repeat(depth)}${']'.repeat(depth)}\n` },
      ]);
    },
    () => ({ method: 'PATCH', path: `${podPath}/keep`, type: pick(['text/plain', 'application/xml', '']), body: '{}' }),
    () => ({ method: 'DELETE', path: `${podPath}/keep`, type: 'application/json', body: pick([junk(10), JSON.stringify({ gracePeriodSeconds: 'x' }), JSON.stringify({ preconditions: { uid: 'wrong' } })]) }),
    () => ({ method: 'POST', path: '/api/v1/namespaces/fuzz/services', type: 'application/json', body: JSON.stringify({ metadata: { name: 'svc' }, spec: pick([{ ports: [{ port: 80 }, { port: 81 }] }, { clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { type: 'NodePort', ports: [{ port: 80, nodePort: 1 }] }, {}]) }) }),
  ];
}

describe.skipIf(env.skip)('robustness against bad requests', () => {
  let cp: TestControlPlane;
  beforeAll(async () => {
    cp = await startTestControlPlane({ controllers: false });
    const post = (path: string, body: unknown) => fetch(cp.url + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post('/api/v1/namespaces', { metadata: { name: 'fuzz' } })).status).toBe(201);
    expect((await post('/api/v1/namespaces/fuzz/pods', validPod)).status).toBe(201);
  });
  afterAll(async () => {
    await cp?.stop();
  });

  it('1,000 random bad requests: 4xx Status each, state unchanged, server alive', async () => {
    const random = prng(20261122);
    const gens = generators(random);
    const snapshot = async () => JSON.stringify(await cp.registry.storage.list('/registry/'));
    const before = await snapshot();
    const codes = new Map<number, number>();
    for (let i = 0; i < 1000; i++) {
      const request = (gens[Math.floor(random() * gens.length)] as () => BadRequest)();
      const response = await fetch(cp.url + request.path, { method: request.method, headers: request.type ? { 'Content-Type': request.type } : {}, body: request.body });
      const text = await response.text();
      if (response.status < 400 || response.status >= 500) throw new Error(`request ${i} (${request.method} ${request.path} ${request.type}: ${String(request.body).slice(0, 200)}) got ${response.status}: ${text.slice(0, 300)}`);
      const status = JSON.parse(text) as { kind: string; code: number };
      expect(status.kind).toBe('Status');
      expect(status.code).toBe(response.status);
      codes.set(response.status, (codes.get(response.status) ?? 0) + 1);
    }
    expect(await snapshot()).toBe(before);
    expect([...codes.keys()].sort()).toEqual(expect.arrayContaining([400, 404, 409, 413, 415, 422]));
    expect((await fetch(`${cp.url}/api/v1/namespaces/fuzz/pods/keep`)).status).toBe(200);
  });
});
