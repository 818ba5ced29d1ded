/**
 * Regression tests for the pure parts of issue 25 (hostile input to the control plane), one
 * describe per numbered item.
 */
import { describe, expect, it } from 'vitest';
import { applyJsonPatch, applyMergePatch, applyPatch, applyStrategicMergePatch, PatchError, type Json } from '../../controlplane/patch.js';
import { checkDepth, decodeBody, queryBool } from '../../controlplane/http-util.js';
import { maxNestingDepth } from '../../lib/nesting.js';
import { matchesLabels, parseLabelSelector, SelectorError } from '../../controlplane/selectors.js';
import { servingNames } from '../../controlplane/security.js';
import { canonicalJson, deepClone } from '../../controlplane/util.js';
import { parseResourcePath, splitRequestTarget } from '../../controlplane/api-server.js';
import { ApiError } from '../../controlplane/status.js';
import { strategyFor } from '../../controlplane/kinds.js';

const pod = (): Json => ({ metadata: { name: 'p', finalizers: [] }, spec: { containers: [{ name: 'c', image: 'x' }] } });

describe('issue 25 item 1: patches cannot reach prototypes', () => {
  it.each([
    '/__proto__/finalizers',
    '/metadata/__proto__/polluted',
    '/constructor/prototype/polluted',
    '/metadata/constructor/x',
    '/spec/prototype',
  ])('refuses a JSON patch through %s and leaves Object.prototype alone', (path) => {
    expect(() => applyJsonPatch(pod(), [{ op: 'add', path, value: ['x'] }])).toThrow(PatchError);
    expect(() => applyJsonPatch(pod(), [{ op: 'copy', from: path, path: '/metadata/x' }])).toThrow(PatchError);
    expect(({} as Record<string, unknown>).finalizers).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  it.each(['merge', 'strategic'] as const)('refuses __proto__, constructor and prototype keys in a %s patch', (type) => {
    for (const text of ['{"__proto__":{"polluted":1}}', '{"metadata":{"__proto__":{"finalizers":["x"]}}}', '{"metadata":{"constructor":{"prototype":{"polluted":1}}}}', '{"spec":{"prototype":1}}'])
      expect(() => applyPatch(type, pod(), JSON.parse(text))).toThrow(PatchError);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).finalizers).toBeUndefined();
  });

  it('merges into own fields only (an absent "toString" is not Object.prototype.toString)', () => {
    expect(applyMergePatch({ a: 1 }, { toString: { x: 1 } })).toEqual({ a: 1, toString: { x: 1 } });
    expect(applyStrategicMergePatch({ a: 1 }, { valueOf: [1] })).toEqual({ a: 1, valueOf: [1] });
  });

  it('the RFC 6902 test op compares values, not their key order', () => {
    const doc = { metadata: { labels: { a: '1', b: '2' } } };
    expect(applyJsonPatch(doc, [{ op: 'test', path: '/metadata/labels', value: { b: '2', a: '1' } }])).toEqual(doc);
    expect(() => applyJsonPatch(doc, [{ op: 'test', path: '/metadata/labels', value: { a: '1' } }])).toThrow(PatchError);
  });

  it('decoded bodies with a __proto__ key are refused before anything uses them', () => {
    expect(() => decodeBody(Buffer.from('{"metadata":{"__proto__":{"x":1}}}'), 'application/json')).toThrow(ApiError);
    expect(() => decodeBody(Buffer.from('metadata:\n  __proto__:\n    x: 1\n'), 'application/yaml')).toThrow(ApiError);
  });
});

describe('issue 25 item 4: nesting depth below what the code survives', () => {
  const nested = (depth: number): unknown => {
    let value: unknown = 'leaf';
    for (let i = 0; i < depth; i++) value = { a: value };
    return value;
  };

  it('refuses one level more than the limit and accepts the limit', () => {
    expect(() => checkDepth(nested(maxNestingDepth + 1))).toThrow(ApiError);
    expect(() => checkDepth(nested(maxNestingDepth))).not.toThrow();
  });

  it('an object at the limit survives structuredClone, canonicalJson and patches, even deep in the stack', () => {
    const object = { metadata: { name: 'deep' }, data: nested(maxNestingDepth - 2) };
    const burn = (frames: number): string => (frames === 0 ? canonicalJson(applyMergePatch(deepClone(object) as Json, { x: 1 })) : burn(frames - 1));
    expect(burn(2_000).length).toBeGreaterThan(maxNestingDepth);
  });
});

describe('issue 25 item 7: URL paths are not normalised into another object', () => {
  it.each(['%2e%2e', '%2E%2E', '..', '.', '%2e', 'a%2fb', 'a%252f'])('refuses the name %s', (name) => {
    const { path } = splitRequestTarget(`/api/v1/namespaces/foo/configmaps/${name}?x=1`);
    expect(() => parseResourcePath(path)).toThrow(ApiError);
  });

  it('refuses dot segments as a namespace and keeps ordinary names', () => {
    expect(() => parseResourcePath(splitRequestTarget('/api/v1/namespaces/%2e%2e/configmaps/x').path)).toThrow(ApiError);
    expect(() => parseResourcePath(splitRequestTarget('/api/v1/namespaces/..').path)).toThrow(ApiError);
    const route = parseResourcePath(splitRequestTarget('/api/v1/namespaces/foo/configmaps/a.b-c?watch=1').path);
    expect(route).toMatchObject({ namespace: 'foo', name: 'a.b-c' });
  });

  it.each(['default', 'kube-system', 'kube-public', 'kube-node-lease'])('namespace %s may not be deleted', (name) => {
    expect(strategyFor('Namespace').forbidDelete?.({ metadata: { name } })).toBe('this namespace may not be deleted');
  });

  it('other namespaces may be deleted', () => {
    expect(strategyFor('Namespace').forbidDelete?.({ metadata: { name: 'foo' } })).toBeUndefined();
  });
});

describe('issue 25 item 11: query booleans as strconv.ParseBool', () => {
  it.each(['1', 't', 'T', 'TRUE', 'true', 'True'])('%s is true', (value) => expect(queryBool(new URLSearchParams({ watch: value }), 'watch')).toBe(true));
  it.each(['0', 'f', 'F', 'FALSE', 'false', 'False', ''])('%j is false', (value) => expect(queryBool(new URLSearchParams({ watch: value }), 'watch')).toBe(false));
  it('absent is false', () => expect(queryBool(new URLSearchParams(), 'watch')).toBe(false));
  it.each(['yes', 'tRUE', '2', 'on'])('%s is a 400', (value) => expect(() => queryBool(new URLSearchParams({ watch: value }), 'watch')).toThrow(ApiError));
});

describe('issue 25 item 12: selectors, serving names', () => {
  it('refuses an empty set', () => {
    expect(() => parseLabelSelector('a in ()')).toThrow(SelectorError);
    expect(() => parseLabelSelector('a notin ( )')).toThrow(SelectorError);
  });

  it('accepts gt and lt and matches integers only', () => {
    const gt = parseLabelSelector('a>1');
    const lt = parseLabelSelector('a < 1');
    expect(gt).toEqual([{ key: 'a', operator: 'gt', values: ['1'] }]);
    expect(matchesLabels(gt, { a: '2' })).toBe(true);
    expect(matchesLabels(gt, { a: '1' })).toBe(false);
    expect(matchesLabels(gt, { a: 'x' })).toBe(false);
    expect(matchesLabels(gt, {})).toBe(false);
    expect(matchesLabels(lt, { a: '-3' })).toBe(true);
    expect(() => parseLabelSelector('a>x')).toThrow(SelectorError);
  });

  it('a wildcard listen address puts the node addresses and hostname into the certificate', () => {
    const interfaces = {
      lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true, netmask: '255.0.0.0', mac: '00:00:00:00:00:00', cidr: '127.0.0.1/8' }],
      eth0: [
        { address: '192.168.5.7', family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '02:00:00:00:00:01', cidr: '192.168.5.7/24' },
        { address: 'fe80::1', family: 'IPv6', internal: false, netmask: 'ffff::', mac: '02:00:00:00:00:01', cidr: 'fe80::1/64', scopeid: 2 },
      ],
      eth1: [{ address: '10.1.2.3', family: 'IPv4', internal: false, netmask: '255.0.0.0', mac: '02:00:00:00:00:02', cidr: '10.1.2.3/8' }],
    } as const;
    const names = servingNames('0.0.0.0', structuredClone(interfaces) as unknown as NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>, 'node-a');
    expect(names).toEqual(expect.arrayContaining(['IP:127.0.0.1', 'IP:192.168.5.7', 'IP:10.1.2.3', 'DNS:node-a', 'DNS:kubernetes.default.svc']));
    expect(names).not.toContain('IP:0.0.0.0');
    expect(servingNames('10.0.0.9', {}, 'node-a')).toContain('IP:10.0.0.9');
  });
});

describe('issue 25 item 2: watch window in bytes and a shared watch buffer budget', () => {
  it('the watch cache drops the oldest events past its byte budget and reports them too old', async () => {
    const { MemoryStorage } = await import('../../controlplane/storage/memory.js');
    const { TooOldError, WatchCache } = await import('../../controlplane/watch-cache.js');
    const storage = new MemoryStorage();
    await storage.start();
    const cache = new WatchCache(storage, 10_000, 1_000_000);
    cache.start();
    for (let i = 0; i < 20; i++) await storage.update('/k', { metadata: { name: 'k' }, data: { v: 'x'.repeat(100_000) } }).catch(() => storage.create('/k', { metadata: { name: 'k' } }));
    const { events, bytes } = cache.windowSize();
    expect(bytes).toBeLessThanOrEqual(1_000_000);
    expect(events).toBeLessThan(20);
    expect(() => cache.add({ filter: { prefix: '/', matches: () => true }, send: () => undefined }, 1)).toThrow(TooOldError);
    cache.stop();
    await storage.stop();
  });

  it('over the total, the watchers holding most are closed first', async () => {
    const { WatchBudget } = await import('../../controlplane/watch-http.js');
    const budget = new WatchBudget(100);
    const closed: string[] = [];
    const member = (name: string) => ({ held: 0, close: () => closed.push(name) });
    const [a, b, c] = [member('a'), member('b'), member('c')];
    for (const m of [a, b, c]) budget.join(m);
    budget.update(a, 30);
    budget.update(b, 60);
    expect(closed).toEqual([]);
    budget.update(c, 20);
    expect(closed).toEqual(['b']);
    expect(budget.total()).toBe(50);
    budget.update(a, 0);
    budget.leave(c);
    expect(budget.total()).toBe(0);
  });
});
