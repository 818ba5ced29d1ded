import { describe, expect, it } from 'vitest';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, PatchError, patchTypeOf, type Json } from '../../controlplane/patch.js';

describe('JSON merge patch (RFC 7386 examples)', () => {
  it.each<[Json, Json, Json]>([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ])('%j + %j', (target, patch, expected) => {
    expect(applyMergePatch(target, patch)).toEqual(expected);
  });
});

describe('JSON patch (RFC 6902)', () => {
  const doc = { metadata: { labels: { a: '1' } }, spec: { containers: [{ name: 'c', image: 'x' }] } };
  it.each<[string, unknown, Json]>([
    ['add', [{ op: 'add', path: '/metadata/labels/b', value: '2' }], { metadata: { labels: { a: '1', b: '2' } }, spec: doc.spec }],
    ['remove', [{ op: 'remove', path: '/metadata/labels/a' }], { metadata: { labels: {} }, spec: doc.spec }],
    ['replace in array', [{ op: 'replace', path: '/spec/containers/0/image', value: 'y' }], { metadata: doc.metadata, spec: { containers: [{ name: 'c', image: 'y' }] } }],
    ['append', [{ op: 'add', path: '/spec/containers/-', value: { name: 'd' } }], { metadata: doc.metadata, spec: { containers: [{ name: 'c', image: 'x' }, { name: 'd' }] } }],
    ['escaped key', [{ op: 'add', path: '/metadata/labels/x~1y', value: 'z' }], { metadata: { labels: { a: '1', 'x/y': 'z' } }, spec: doc.spec }],
    ['move', [{ op: 'move', from: '/metadata/labels/a', path: '/metadata/labels/c' }], { metadata: { labels: { c: '1' } }, spec: doc.spec }],
    ['copy', [{ op: 'copy', from: '/metadata/labels/a', path: '/metadata/labels/c' }], { metadata: { labels: { a: '1', c: '1' } }, spec: doc.spec }],
    ['test ok', [{ op: 'test', path: '/metadata/labels/a', value: '1' }], doc],
  ])('%s', (_name, ops, expected) => {
    expect(applyJsonPatch(doc, ops)).toEqual(expected);
  });

  it.each<[string, unknown]>([
    ['not an array', { op: 'add' }],
    ['missing path', [{ op: 'remove', path: '/nope' }]],
    ['bad op', [{ op: 'frob', path: '/a' }]],
    ['failed test', [{ op: 'test', path: '/metadata/labels/a', value: '2' }]],
    ['index out of range', [{ op: 'replace', path: '/spec/containers/5', value: 1 }]],
    ['replace missing', [{ op: 'replace', path: '/metadata/x', value: 1 }]],
    ['no value', [{ op: 'add', path: '/a' }]],
  ])('rejects %s', (_name, ops) => {
    expect(() => applyJsonPatch(doc, ops)).toThrow(PatchError);
  });

  it('does not modify its input', () => {
    const copy = structuredClone(doc);
    applyJsonPatch(doc, [{ op: 'remove', path: '/metadata/labels/a' }]);
    expect(doc).toEqual(copy);
  });
});

describe('strategic merge patch', () => {
  const pod = {
    metadata: { labels: { a: '1' }, finalizers: ['x'] },
    spec: {
      containers: [
        { name: 'a', image: 'a:1', ports: [{ containerPort: 80 }], env: [{ name: 'X', value: '1' }] },
        { name: 'b', image: 'b:1' },
      ],
    },
    status: { conditions: [{ type: 'Ready', status: 'False' }, { type: 'PodScheduled', status: 'True' }] },
  };
  it.each<[string, Json, (r: typeof pod) => unknown, unknown]>([
    ['labels merge', { metadata: { labels: { b: '2' } } }, (r) => r.metadata.labels, { a: '1', b: '2' }],
    ['label delete', { metadata: { labels: { a: null } } }, (r) => r.metadata.labels, {}],
    ['container by name', { spec: { containers: [{ name: 'b', image: 'b:2' }] } }, (r) => r.spec.containers.map((c) => c.image), ['a:1', 'b:2']],
    ['new container appended', { spec: { containers: [{ name: 'c', image: 'c:1' }] } }, (r) => r.spec.containers.map((c) => c.name), ['a', 'b', 'c']],
    ['container delete', { spec: { containers: [{ name: 'a', $patch: 'delete' }] } }, (r) => r.spec.containers.map((c) => c.name), ['b']],
    ['containers replace', { spec: { containers: [{ name: 'z', image: 'z' }, { $patch: 'replace' }] } }, (r) => r.spec.containers.map((c) => c.name), ['z']],
    ['env by name inside container', { spec: { containers: [{ name: 'a', env: [{ name: 'Y', value: '2' }] }] } }, (r) => r.spec.containers[0]?.env, [{ name: 'X', value: '1' }, { name: 'Y', value: '2' }]],
    ['condition by type', { status: { conditions: [{ type: 'Ready', status: 'True' }] } }, (r) => r.status.conditions, [{ type: 'Ready', status: 'True' }, { type: 'PodScheduled', status: 'True' }]],
    ['finalizers merge as set', { metadata: { finalizers: ['y', 'x'] } }, (r) => r.metadata.finalizers, ['x', 'y']],
    ['deleteFromPrimitiveList', { metadata: { '$deleteFromPrimitiveList/finalizers': ['x'] } }, (r) => r.metadata.finalizers, []],
    ['setElementOrder ignored', { spec: { '$setElementOrder/containers': [{ name: 'b' }, { name: 'a' }], containers: [{ name: 'a', image: 'a:3' }] } }, (r) => r.spec.containers.map((c) => c.image), ['a:3', 'b:1']],
  ])('%s', (_name, patch, pick, expected) => {
    expect(pick(applyStrategicMergePatch(pod as unknown as Json, patch) as unknown as typeof pod)).toEqual(expected);
  });
});

describe('patch content types', () => {
  it.each([
    ['application/json-patch+json', 'json'],
    ['application/merge-patch+json; charset=utf-8', 'merge'],
    ['application/strategic-merge-patch+json', 'strategic'],
    ['application/apply-patch+yaml', 'apply'],
    ['application/json', undefined],
  ])('%s', (type, expected) => {
    expect(patchTypeOf(type)).toBe(expected);
  });
});
