/**
 * A bounded corpus of bad API requests (issue 25): bodies (malformed JSON and YAML, deep
 * nesting, huge, wrong kinds), patches of all three types (including prototype paths),
 * selectors, and URLs (dot segments, encoded characters, overlong) against a real
 * `knode controlplane` process on loopback, once with the memory and once with the file store.
 * Every request gets a Status object with the expected code, the process never exits, and
 * create/list/delete work afterwards. dist/ must be built.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isStatus, rawRequest, type RawRequest } from '../helpers/raw-http.js';

const knode = fileURLToPath(new URL('../../bin/knode', import.meta.url));
if (!existsSync(fileURLToPath(new URL('../../dist/bin/knode.js', import.meta.url)))) throw new Error('dist/ is missing: run "npm run build" first');

interface Case extends RawRequest {
  name: string;
  code: number;
}

const ns = 'chaos';
const cms = `/api/v1/namespaces/${ns}/configmaps`;
const deep = (levels: number) => `${'['.repeat(levels)}1${']'.repeat(levels)}`;
const deepObject = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
const cm = (name: string, extra = '') => `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"${name}"}${extra}}`;

function bodies(): Case[] {
  const post = (name: string, body: string | Uint8Array, code: number, contentType = 'application/json'): Case => ({ name: `body: ${name}`, method: 'POST', path: cms, body, contentType, code });
  const malformed = ['{', '{"metadata":', '{"metadata":{"name":"x"}', 'nul', '[1,2', '{"a":1,}', "{'a':1}", '\u0000\u0001', '{"a":"\\u12"}', '{"a":01}', ' ', '{"metadata":{"name":"x"}}}'];
  return [
    ...malformed.map((text, i) => post(`malformed JSON #${i}`, text, 400)),
    post('empty', '', 400),
    post('YAML that does not parse', 'metadata: {name: [x', 400, 'application/yaml'),
    post('YAML alias bomb', `a: &a [x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n`, 400, 'application/yaml'),
    post('random protobuf bytes', new Uint8Array(Array.from({ length: 64 }, (_, i) => (i * 37) % 256)), 400, 'application/vnd.kubernetes.protobuf'),
    post('CBOR', '\xa1', 415, 'application/cbor'),
    post('JSON null', 'null', 400),
    post('JSON array', '[{"metadata":{"name":"x"}}]', 400),
    post('JSON string', '"configmap"', 400),
    post('nested arrays 1,001 deep', cm('d1', `,"data":{"a":"b"},"x":${deep(1_001)}`), 400),
    post('nested objects 2,500 deep', cm('d2', `,"x":${deepObject(2_500)}`), 400),
    post('nested objects 9,999 deep', cm('d3', `,"x":${deepObject(9_999)}`), 400),
    post('nested arrays 100,000 deep', deep(100_000), 400),
    post('YAML nested 2,000 deep', `${'['.repeat(2_000)}1${']'.repeat(2_000)}`, 400, 'application/yaml'),
    post('object over 1.5 MiB', cm('huge', `,"data":{"v":"${'x'.repeat(1_600_000)}"}`), 413),
    post('body over 3 MiB', cm('huger', `,"data":{"v":"${'x'.repeat(3_200_000)}"}`), 413),
    post('__proto__ key', '{"metadata":{"name":"p","__proto__":{"finalizers":["x"]}}}', 400),
    post('__proto__ at the top', '{"__proto__":{"metadata":{"name":"q"}}}', 400),
    post('kind Pod to configmaps', '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"k"}}', 400),
    post('apiVersion apps/v1', '{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"k"}}', 400),
    post('metadata a string', '{"metadata":"x"}', 400),
    post('no name', '{"metadata":{}}', 422),
    post('bad name', cm('UPPER_case'), 422),
    post('name "."', cm('.'), 422),
    post('name ".."', cm('..'), 422),
    post('data not a map', cm('nd', ',"data":[1]'), 422),
    post('data value a number', cm('nv', ',"data":{"a":1}'), 422),
    post('namespace mismatch', '{"metadata":{"name":"m","namespace":"other"}}', 400),
    { name: 'body: pod with containers a string', method: 'POST', path: `/api/v1/namespaces/${ns}/pods`, body: '{"metadata":{"name":"p"},"spec":{"containers":"x"}}', contentType: 'application/json', code: 422 },
    { name: 'body: PUT name mismatch', method: 'PUT', path: `${cms}/keep`, body: cm('other'), contentType: 'application/json', code: 400 },
    { name: 'body: PUT missing object', method: 'PUT', path: `${cms}/absent`, body: cm('absent'), contentType: 'application/json', code: 404 },
    { name: 'body: PUT stale resourceVersion', method: 'PUT', path: `${cms}/keep`, body: '{"metadata":{"name":"keep","resourceVersion":"1"}}', contentType: 'application/json', code: 409 },
    { name: 'body: DeleteOptions malformed', method: 'DELETE', path: `${cms}/keep`, body: '{"gracePeriodSeconds":"x"}', contentType: 'application/json', code: 400 },
  ];
}

function patches(): Case[] {
  const patch = (name: string, type: string, body: string, code: number): Case => ({ name: `patch (${type}): ${name}`, method: 'PATCH', path: `${cms}/keep`, body, contentType: `application/${type}+json`, code });
  const cases: Case[] = [];
  for (const path of ['/__proto__/finalizers', '/metadata/__proto__/x', '/constructor/prototype/finalizers', '/metadata/constructor', '/prototype']) {
    cases.push(patch(`add ${path}`, 'json-patch', JSON.stringify([{ op: 'add', path, value: ['x'] }]), 422));
    cases.push(patch(`copy from ${path}`, 'json-patch', JSON.stringify([{ op: 'copy', from: path, path: '/data' }]), 422));
    cases.push(patch(`move to ${path}`, 'json-patch', JSON.stringify([{ op: 'move', from: '/metadata/labels', path }]), 422));
  }
  cases.push(
    patch('not an array', 'json-patch', '{"op":"add"}', 422),
    patch('unknown op', 'json-patch', '[{"op":"frob","path":"/a"}]', 422),
    patch('no path', 'json-patch', '[{"op":"add","value":1}]', 422),
    patch('remove missing', 'json-patch', '[{"op":"remove","path":"/spec/nope"}]', 422),
    patch('replace missing', 'json-patch', '[{"op":"replace","path":"/nope/x","value":1}]', 422),
    patch('index out of range', 'json-patch', '[{"op":"add","path":"/metadata/finalizers/7","value":"x"}]', 422),
    patch('failing test op', 'json-patch', '[{"op":"test","path":"/metadata/name","value":"other"}]', 422),
    patch('pointer without slash', 'json-patch', '[{"op":"add","path":"metadata","value":1}]', 422),
    patch('replace the whole document with a string', 'json-patch', '[{"op":"replace","path":"","value":"x"}]', 400),
    patch('rename', 'json-patch', '[{"op":"replace","path":"/metadata/name","value":"renamed"}]', 400),
    patch('malformed', 'json-patch', '[{"op":', 400),
    patch('deepen past the limit', 'json-patch', JSON.stringify([{ op: 'add', path: '/data', value: JSON.parse(deepObject(999)) }]), 400),
  );
  for (const type of ['merge-patch', 'strategic-merge-patch']) {
    cases.push(
      patch('__proto__ key', type, '{"metadata":{"__proto__":{"finalizers":["x"]}}}', 400),
      patch('constructor.prototype', type, '{"metadata":{"constructor":{"prototype":{"x":1}}}}', 400),
      patch('prototype key', type, '{"prototype":1}', 400),
      patch('not an object', type, '[1]', 400),
      patch('a string', type, '"x"', 400),
      patch('malformed', type, '{"metadata":', 400),
      patch('data not a map', type, '{"data":[1]}', 422),
      patch('deep', type, `{"x":${deepObject(5_000)}}`, 400),
    );
  }
  cases.push(
    patch('strategic list of scalars in a merge-keyed list', 'strategic-merge-patch', '{"spec":{"containers":[1]}}', 400),
    { name: 'patch: unknown patch type', method: 'PATCH', path: `${cms}/keep`, body: '{}', contentType: 'application/xml', code: 415 },
    { name: 'patch: missing object', method: 'PATCH', path: `${cms}/absent`, body: '{"data":{"a":"b"}}', contentType: 'application/merge-patch+json', code: 404 },
  );
  return cases;
}

function selectors(): Case[] {
  const get = (name: string, query: string, code: number): Case => ({ name: `selector: ${name}`, method: 'GET', path: `${cms}?${query}`, code });
  const labels = ['a in ()', 'a notin ( )', 'a in (b', 'a=(', '!!a', 'a b', '=x', 'a!=b!=c', `${'k'.repeat(400)}=v`, 'a=' + 'v'.repeat(100), 'a>x', 'a<', ',', 'a,,b', '/x'];
  const badQueries = ['watch=yes', 'watch=1&allowWatchBookmarks=maybe', 'limit=-1', 'limit=x', 'watch=1&timeoutSeconds=x', 'limit=1&continue=%%%'];
  const fields = ['nope=1', 'metadata.name', '=x', 'metadata.uid=1', 'spec.nodeName~x'];
  return [
    ...labels.map((s) => get(`labelSelector ${JSON.stringify(s.slice(0, 30))}`, `labelSelector=${encodeURIComponent(s)}`, 400)),
    ...fields.map((s) => get(`fieldSelector ${JSON.stringify(s)}`, `fieldSelector=${encodeURIComponent(s)}`, 400)),
    ...labels.slice(0, 4).map((s) => get(`watch with labelSelector ${JSON.stringify(s)}`, `watch=true&labelSelector=${encodeURIComponent(s)}`, 400)),
    ...badQueries.map((query) => get(query, query, 400)),
  ];
}

function urls(): Case[] {
  const at = (name: string, method: string, path: string, code: number): Case => ({ name: `url: ${name}`, method, path, code });
  const cases: Case[] = [];
  for (const segment of ['%2e%2e', '%2E%2E', '..', '.', '%2e', '%2f', 'a%2fb', 'a%2Fb', 'a%25b', '%2e%2e%2f%2e%2e'])
    for (const method of ['GET', 'DELETE']) cases.push(at(`${method} configmaps/${segment}`, method, `${cms}/${segment}`, 400));
  cases.push(
    at('DELETE namespace %2e%2e', 'DELETE', '/api/v1/namespaces/%2e%2e', 400),
    at('namespace %2e%2e', 'GET', '/api/v1/namespaces/%2e%2e/configmaps/x', 400),
    at('malformed escape', 'GET', `${cms}/%zz`, 400),
    at('truncated escape', 'GET', `${cms}/%`, 400),
    at('overlong name (8,000)', 'GET', `${cms}/${'a'.repeat(8_000)}`, 404),
    at('overlong namespace (8,000)', 'GET', `/api/v1/namespaces/${'n'.repeat(8_000)}/configmaps/x`, 404),
    at('unknown resource', 'GET', '/api/v1/namespaces/chaos/frobs', 404),
    at('too many segments', 'GET', `${cms}/keep/status/x/y`, 404),
    at('unknown group', 'GET', '/apis/nope.example/v1/things', 404),
    at('unknown subresource', 'GET', `${cms}/keep/frob`, 404),
    at('pods/exec without upgrade', 'GET', '/api/v1/namespaces/chaos/pods/p/exec', 400),
    at('namespaced object without namespace', 'GET', '/api/v1/configmaps/keep', 404),
    at('method not allowed', 'PUT', cms, 405),
    at('delete immortal default', 'DELETE', '/api/v1/namespaces/default', 403),
    at('delete immortal kube-system', 'DELETE', '/api/v1/namespaces/kube-system', 403),
    at('delete immortal kube-public', 'DELETE', '/api/v1/namespaces/kube-public', 403),
    at('delete immortal kube-node-lease', 'DELETE', '/api/v1/namespaces/kube-node-lease', 403),
    at('null byte', 'GET', `${cms}/a%00b`, 404),
    at('unicode', 'GET', `${cms}/%E2%98%83`, 404),
  );
  return cases;
}

const corpus = [...bodies(), ...patches(), ...selectors(), ...urls()];

interface Server {
  child: ChildProcess;
  url: string;
  dir: string;
  stderr: () => string;
}

async function startServer(store: string): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), `knode-chaos-${store}-`));
  const child = spawn(knode, ['controlplane', '--listen', '127.0.0.1:0', '--data-dir', dir, '--store', store], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KNODE_LOG_LEVEL: 'info' } });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-200_000);
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const line = stderr.split('\n').find((l) => l.includes('control plane ready'));
    if (line) {
      const url = (JSON.parse(line) as { url: string }).url;
      return { child, url, dir, stderr: () => stderr };
    }
    if (child.exitCode !== null) throw new Error(`knode controlplane exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`knode controlplane did not get ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const servers: Server[] = [];
afterAll(async () => {
  for (const server of servers) {
    if (server.child.exitCode === null) {
      const exited = new Promise((resolve) => server.child.once('exit', resolve));
      server.child.kill('SIGTERM');
      await exited;
    }
    rmSync(server.dir, { recursive: true, force: true });
  }
});

describe.each(['memory', 'file'])('bad API input against knode controlplane --store %s', (store) => {
  it(`answers each of ${corpus.length} bad requests with a Status of the right code and keeps serving`, async () => {
    const server = await startServer(store);
    servers.push(server);
    const api = (request: RawRequest) => rawRequest(server.url, request);
    expect((await api({ method: 'POST', path: '/api/v1/namespaces', body: `{"metadata":{"name":"${ns}"}}` })).status).toBe(201);
    expect((await api({ method: 'POST', path: cms, body: '{"metadata":{"name":"keep","labels":{"a":"1"}}}' })).status).toBe(201);
    const wrong: string[] = [];
    for (const item of corpus) {
      try {
        const res = await api({ timeoutMs: 5_000, ...item });
        if (!isStatus(res.json, item.code) || res.status !== item.code) wrong.push(`${item.name}: expected ${item.code}, got ${res.status} ${res.text.slice(0, 200)}`);
      } catch (error) {
        wrong.push(`${item.name}: expected ${item.code}, got ${error instanceof Error ? error.message : String(error)}`);
      }
      if (server.child.exitCode !== null) throw new Error(`the control plane exited after "${item.name}": ${server.stderr().slice(-2000)}`);
    }
    console.log(`--store ${store}: ${corpus.length} bad requests, ${corpus.length - wrong.length} answered as expected, process alive`);
    expect(wrong).toEqual([]);
    // Nothing got in, and the survivor is untouched.
    const list = await api({ method: 'GET', path: cms });
    expect((list.json as { items: { metadata: { name: string } }[] }).items.map((i) => i.metadata.name)).toEqual(['keep']);
    expect(({} as Record<string, unknown>).finalizers).toBeUndefined();
    // Normal operations still work.
    expect((await api({ method: 'POST', path: cms, body: '{"metadata":{"name":"after"},"data":{"k":"v"}}' })).status).toBe(201);
    expect((await api({ method: 'DELETE', path: `${cms}/after` })).status).toBe(200);
    expect((await api({ method: 'DELETE', path: `${cms}/keep` })).status).toBe(200);
    expect(((await api({ method: 'GET', path: cms })).json as { items: unknown[] }).items).toEqual([]);
    expect((await api({ method: 'DELETE', path: `/api/v1/namespaces/${ns}` })).status).toBeLessThan(300);
    expect((await api({ method: 'GET', path: '/api/v1/pods' })).status).toBe(200);
    expect(server.child.exitCode).toBeNull();
  });
});
