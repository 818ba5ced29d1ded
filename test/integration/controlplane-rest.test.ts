/**
 * REST semantics over plain HTTP, as a client library sees them: Status errors with the right
 * codes, paging, selectors, deletecollection, generation, graceful pod deletion, finalizers,
 * watch (initial state, selector transitions, bookmarks, resume).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';

const env = await prerequisites();

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

describe.skipIf(env.skip)('REST semantics', () => {
  let cp: TestControlPlane;
  const call = async (method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Reply> => {
    const response = await fetch(cp.url + path, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': contentType },
      body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const pod = (name: string, labels: Record<string, string> = {}, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels },
    spec: { containers: [{ name: 'c', image: 'busybox:1.36' }], ...extra },
  });

  beforeAll(async () => {
    cp = await startTestControlPlane({ controllers: false, bookmarkIntervalMs: 200 });
    await call('POST', '/api/v1/namespaces', { metadata: { name: 'rest' } });
  });
  afterAll(async () => {
    await cp?.stop();
  });

  it.each<[string, string, string, unknown, string | undefined, number, string]>([
    ['malformed JSON', 'POST', '/api/v1/namespaces/rest/pods', '{"metadata": ', 'application/json', 400, 'BadRequest'],
    ['malformed YAML', 'POST', '/api/v1/namespaces/rest/pods', 'metadata: [unclosed', 'application/yaml', 400, 'BadRequest'],
    ['wrong kind', 'POST', '/api/v1/namespaces/rest/pods', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' } }, 'application/json', 400, 'BadRequest'],
    ['unknown resource', 'GET', '/api/v1/namespaces/rest/widgets', undefined, undefined, 404, 'NotFound'],
    ['unknown group', 'GET', '/apis/example.com/v1/widgets', undefined, undefined, 404, 'NotFound'],
    ['missing namespace', 'POST', '/api/v1/namespaces/nope/pods', { metadata: { name: 'x' }, spec: { containers: [{ name: 'c', image: 'i' }] } }, 'application/json', 404, 'NotFound'],
    ['oversized body', 'POST', '/api/v1/namespaces/rest/configmaps', JSON.stringify({ metadata: { name: 'big' }, data: { a: 'x'.repeat(3 * 1024 * 1024 + 10) } }), 'application/json', 413, 'RequestEntityTooLarge'],
    ['bad patch type', 'PATCH', '/api/v1/namespaces/default/services/kubernetes', '{}', 'text/plain', 415, 'UnsupportedMediaType'],
    ['bad label selector', 'GET', '/api/v1/pods?labelSelector=a%20in%20(b', undefined, undefined, 400, 'BadRequest'],
    ['bad field selector', 'GET', '/api/v1/pods?fieldSelector=spec.foo%3D1', undefined, undefined, 400, 'BadRequest'],
    ['malformed path escape', 'GET', '/api/v1/namespaces/%E0%A4%A/pods', undefined, undefined, 400, 'BadRequest'],
    ['unknown subresource', 'GET', '/api/v1/namespaces/default/services/kubernetes/exec', undefined, undefined, 404, 'NotFound'],
    ['method not allowed', 'PUT', '/api/v1/namespaces/rest/pods', '{}', 'application/json', 405, 'MethodNotAllowed'],
  ])('%s -> %i Status', async (_name, method, path, body, type, code, reason) => {
    const reply = await call(method, path, body, type);
    expect(reply.status).toBe(code);
    expect(reply.body).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason });
    expect(typeof reply.body.message).toBe('string');
  });

  it('answers 422 with causes naming the fields', async () => {
    const reply = await call('POST', '/api/v1/namespaces/rest/pods', { metadata: { name: 'x' }, spec: { containers: [{ name: 'c' }, { name: 'c', image: 'i' }] } });
    expect(reply.status).toBe(422);
    expect(reply.body).toMatchObject({ reason: 'Invalid', details: { name: 'x', kind: 'Pod' } });
    const causes = (reply.body.details as { causes: { field: string; reason: string }[] }).causes;
    expect(causes).toEqual([
      { reason: 'FieldValueRequired', message: 'Required value', field: 'spec.containers[0].image' },
      { reason: 'FieldValueDuplicate', message: 'Duplicate value: "c"', field: 'spec.containers[1].name' },
    ]);
  });

  it('pages with limit/continue and filters with selectors', async () => {
    for (let i = 0; i < 7; i++) expect((await call('POST', '/api/v1/namespaces/rest/configmaps', { metadata: { name: `page-${i}`, labels: { set: i % 2 ? 'odd' : 'even' } } })).status).toBe(201);
    const names: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const reply = await call('GET', `/api/v1/namespaces/rest/configmaps?limit=3${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
      names.push(...(reply.body.items as { metadata: { name: string } }[]).map((i) => i.metadata.name));
      token = (reply.body.metadata as { continue?: string }).continue;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(names).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4', 'page-5', 'page-6']);
    const odd = await call('GET', '/api/v1/namespaces/rest/configmaps?labelSelector=set%3Dodd');
    expect((odd.body.items as unknown[]).length).toBe(3);
    const deleted = await call('DELETE', '/api/v1/namespaces/rest/configmaps?labelSelector=set%3Deven');
    expect(deleted.status).toBe(200);
    const left = await call('GET', '/api/v1/namespaces/rest/configmaps');
    expect((left.body.items as { metadata: { name: string } }[]).map((i) => i.metadata.name)).toEqual(['page-1', 'page-3', 'page-5']);
  });

  it('keeps uid/creationTimestamp, bumps generation on spec changes only, and enforces resourceVersion', async () => {
    const created = (await call('POST', '/api/v1/namespaces/rest/services', { metadata: { name: 'gen' }, spec: { ports: [{ port: 80 }] } })).body as { metadata: Record<string, unknown> };
    expect(created.metadata.generation).toBe(1);
    const forged = await call('PATCH', '/api/v1/namespaces/rest/services/gen', { metadata: { labels: { a: 'b' }, uid: 'forged' } }, 'application/merge-patch+json');
    expect(forged.status).toBe(409);
    expect(forged.body.message).toContain('Precondition failed: UID in precondition: forged');
    const labelled = await call('PATCH', '/api/v1/namespaces/rest/services/gen', { metadata: { labels: { a: 'b' }, uid: created.metadata.uid, creationTimestamp: '2000-01-01T00:00:00Z' } }, 'application/merge-patch+json');
    expect(labelled.body.metadata).toMatchObject({ generation: 1, uid: created.metadata.uid, creationTimestamp: created.metadata.creationTimestamp });
    const specChanged = await call('PATCH', '/api/v1/namespaces/rest/services/gen', { spec: { ports: [{ port: 81 }] } }, 'application/merge-patch+json');
    expect((specChanged.body.metadata as { generation: number }).generation).toBe(2);
    const stale = await call('PUT', '/api/v1/namespaces/rest/services/gen', labelled.body);
    expect(stale.status).toBe(409);
    expect(stale.body.message).toBe('Operation cannot be fulfilled on services "gen": the object has been modified; please apply your changes to the latest version and try again');
    const precondition = await call('PATCH', '/api/v1/namespaces/rest/services/gen', { metadata: { resourceVersion: '1' } }, 'application/merge-patch+json');
    expect(precondition.status).toBe(409);
  });

  it('deletes a bound pod gracefully, an unbound one at once', async () => {
    expect((await call('POST', '/api/v1/namespaces/rest/pods', pod('unbound'))).status).toBe(201);
    expect((await call('DELETE', '/api/v1/namespaces/rest/pods/unbound')).status).toBe(200);
    expect((await call('GET', '/api/v1/namespaces/rest/pods/unbound')).status).toBe(404);

    expect((await call('POST', '/api/v1/namespaces/rest/pods', pod('bound', {}, { nodeName: 'n1', terminationGracePeriodSeconds: 20 }))).status).toBe(201);
    const first = await call('DELETE', '/api/v1/namespaces/rest/pods/bound');
    expect(first.status).toBe(202);
    expect(first.body.metadata).toMatchObject({ deletionGracePeriodSeconds: 20 });
    expect((first.body.metadata as { deletionTimestamp?: string }).deletionTimestamp).toBeTruthy();
    const shorter = await call('DELETE', '/api/v1/namespaces/rest/pods/bound', { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 5 });
    expect(shorter.body.metadata).toMatchObject({ deletionGracePeriodSeconds: 5 });
    expect((await call('GET', '/api/v1/namespaces/rest/pods/bound')).status).toBe(200);
    const wrongUid = await call('DELETE', '/api/v1/namespaces/rest/pods/bound', { preconditions: { uid: 'other' }, gracePeriodSeconds: 0 });
    expect(wrongUid.status).toBe(409);
    expect((await call('DELETE', '/api/v1/namespaces/rest/pods/bound?gracePeriodSeconds=0')).status).toBe(200);
    expect((await call('GET', '/api/v1/namespaces/rest/pods/bound')).status).toBe(404);
  });

  it('holds objects with finalizers until the last one is removed', async () => {
    await call('POST', '/api/v1/namespaces/rest/configmaps', { metadata: { name: 'fin', finalizers: ['example.com/hold'] } });
    const deleting = await call('DELETE', '/api/v1/namespaces/rest/configmaps/fin');
    expect(deleting.status).toBe(202);
    expect((deleting.body.metadata as { deletionTimestamp?: string }).deletionTimestamp).toBeTruthy();
    expect((await call('GET', '/api/v1/namespaces/rest/configmaps/fin')).status).toBe(200);
    await call('PATCH', '/api/v1/namespaces/rest/configmaps/fin', [{ op: 'remove', path: '/metadata/finalizers' }], 'application/json-patch+json');
    expect((await call('GET', '/api/v1/namespaces/rest/configmaps/fin')).status).toBe(404);
    await call('POST', '/api/v1/namespaces/rest/configmaps', { metadata: { name: 'plain' } });
    const plain = await call('DELETE', '/api/v1/namespaces/rest/configmaps/plain');
    expect(plain.status).toBe(200);
    expect(plain.body).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'plain', kind: 'configmaps' } });
  });

  it('streams watch events: initial state, selector transitions, bookmarks, resume', async () => {
    await call('POST', '/api/v1/namespaces/rest/configmaps', { metadata: { name: 'w1', labels: { watch: 'yes' } } });
    const controller = new AbortController();
    const response = await fetch(`${cp.url}/api/v1/namespaces/rest/configmaps?watch=1&labelSelector=watch%3Dyes&allowWatchBookmarks=true`, { signal: controller.signal });
    const reader = response.body!.getReader();
    const events: { type: string; object: { metadata: { name?: string; resourceVersion: string } } }[] = [];
    let buffer = '';
    const readUntil = async (check: () => boolean) => {
      const deadline = Date.now() + 15_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out; events so far: ${JSON.stringify(events.map((e) => [e.type, e.object.metadata.name]))}`);
        const { value, done } = await reader.read();
        if (done) throw new Error('watch ended');
        buffer += Buffer.from(value).toString();
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buffer.slice(0, newline)) as (typeof events)[number]);
          buffer = buffer.slice(newline + 1);
        }
      }
    };
    try {
      await readUntil(() => events.some((e) => e.type === 'ADDED' && e.object.metadata.name === 'w1'));
      await call('POST', '/api/v1/namespaces/rest/configmaps', { metadata: { name: 'w2' } });
      await call('PATCH', '/api/v1/namespaces/rest/configmaps/w2', { metadata: { labels: { watch: 'yes' } } }, 'application/merge-patch+json');
      await call('PATCH', '/api/v1/namespaces/rest/configmaps/w1', { metadata: { labels: { watch: 'no' } } }, 'application/merge-patch+json');
      await readUntil(() => events.some((e) => e.type === 'DELETED' && e.object.metadata.name === 'w1'));
      const changes = events.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type} ${e.object.metadata.name}`);
      expect(changes).toEqual(['ADDED w1', 'ADDED w2', 'DELETED w1']);
      await readUntil(() => events.some((e) => e.type === 'BOOKMARK'));
      const bookmark = events.find((e) => e.type === 'BOOKMARK')!;
      expect(Number(bookmark.object.metadata.resourceVersion)).toBeGreaterThan(0);
    } finally {
      controller.abort();
    }
    // Resume from the ADDED w2 revision: exactly the later change comes again.
    const resumeFrom = events.find((e) => e.type === 'ADDED' && e.object.metadata.name === 'w2')!.object.metadata.resourceVersion;
    const resumed = await fetch(`${cp.url}/api/v1/namespaces/rest/configmaps?watch=1&labelSelector=watch%3Dyes&resourceVersion=${resumeFrom}&timeoutSeconds=1`);
    const lines = (await resumed.text()).trim().split('\n').map((l) => JSON.parse(l) as (typeof events)[number]);
    expect(lines.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['DELETED w1']);
  });

  it('serves health and discovery', async () => {
    for (const path of ['/healthz', '/readyz', '/livez']) expect((await fetch(cp.url + path)).status).toBe(200);
    expect((await call('GET', '/version')).body).toMatchObject({ major: '1', minor: '32' });
    expect((await call('GET', '/api')).body).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
    const groups = (await call('GET', '/apis')).body.groups as { name: string }[];
    expect(groups.map((g) => g.name).sort()).toEqual(['apps', 'batch', 'certificates.k8s.io', 'coordination.k8s.io', 'discovery.k8s.io']);
    const core = (await call('GET', '/api/v1')).body.resources as { name: string }[];
    expect(core.map((r) => r.name)).toEqual(expect.arrayContaining(['pods', 'pods/status', 'pods/binding', 'nodes/status', 'services', 'endpoints', 'events', 'configmaps', 'secrets', 'serviceaccounts', 'namespaces']));
  });
});
