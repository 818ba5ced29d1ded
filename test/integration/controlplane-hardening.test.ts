/**
 * Issue 25 regression tests against a real control plane (in this process, plain HTTP on
 * loopback): each describe is named after the numbered item it covers.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { request } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { isStatus, rawRequest } from '../helpers/raw-http.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let cp: TestControlPlane;
const call = (method: string, path: string, body?: unknown, contentType?: string, headers?: Record<string, string>) =>
  rawRequest(cp.url, { method, path, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), contentType, headers });
const cmPath = (ns: string, name = '') => `/api/v1/namespaces/${ns}/configmaps${name ? `/${name}` : ''}`;

beforeAll(async () => {
  cp = await startTestControlPlane({ controllers: false });
});
afterAll(async () => {
  await cp?.stop();
});

// Ignored by a server without a token; the bearer test starts one with a token.
const auth = { Authorization: 'Bearer tok-hardening' };
const api = (method: string, path: string, body?: unknown, contentType?: string) => call(method, path, body, contentType, auth);

async function namespace(name: string): Promise<void> {
  const res = await api('POST', '/api/v1/namespaces', { metadata: { name } });
  expect(res.status).toBe(201);
}

describe('issue 25 item 1: a JSON patch through __proto__ pollutes nothing', () => {
  it('answers 422 and deletes still remove objects', async () => {
    await namespace('h1');
    expect((await api('POST', cmPath('h1'), { metadata: { name: 'a' } })).status).toBe(201);
    for (const patch of [[{ op: 'add', path: '/__proto__/finalizers', value: ['x'] }], [{ op: 'add', path: '/metadata/constructor/prototype/finalizers', value: ['x'] }]]) {
      const res = await api('PATCH', cmPath('h1', 'a'), patch, 'application/json-patch+json');
      expect(res.status).toBe(422);
      expect(isStatus(res.json, 422)).toBe(true);
    }
    const merge = await api('PATCH', cmPath('h1', 'a'), '{"metadata":{"__proto__":{"finalizers":["x"]}}}', 'application/merge-patch+json');
    expect(merge.status).toBe(400);
    expect(({} as Record<string, unknown>).finalizers).toBeUndefined();
    const deleted = await api('DELETE', cmPath('h1', 'a'));
    expect(deleted.status).toBe(200);
    expect((await api('GET', cmPath('h1', 'a'))).status).toBe(404);
  });

  it('a test op with another key order passes', async () => {
    expect((await api('POST', cmPath('h1'), { metadata: { name: 't', labels: { a: '1', b: '2' } } })).status).toBe(201);
    const res = await api('PATCH', cmPath('h1', 't'), [{ op: 'test', path: '/metadata/labels', value: { b: '2', a: '1' } }, { op: 'add', path: '/data', value: { k: 'v' } }], 'application/json-patch+json');
    expect(res.status).toBe(200);
  });
});

describe('issue 25 item 2: bounded object size, watch window and watch buffers', () => {
  it('refuses an object over 1.5 MiB with 413 Request entity too large', async () => {
    await namespace('h2');
    const res = await api('POST', cmPath('h2'), { metadata: { name: 'big' }, data: { v: 'x'.repeat(1_700_000) } });
    expect(res.status).toBe(413);
    expect(isStatus(res.json, 413)).toBe(true);
    expect(res.text).toContain('Request entity too large');
    const body = await api('POST', cmPath('h2'), { metadata: { name: 'huge' }, data: { v: 'x'.repeat(4_000_000) } });
    expect(body.status).toBe(413);
  });

  it('repeated PUTs of a large ConfigMap with watchers that never read keep the heap bounded', async () => {
    await namespace('h2heap');
    const value = 'y'.repeat(1_400_000);
    expect((await api('POST', cmPath('h2heap'), { metadata: { name: 'large' }, data: { v: value } })).status).toBe(201);
    // Watchers that never read: paused responses, so the server's buffers fill.
    const stalled: (() => void)[] = [];
    for (let i = 0; i < 40; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: cp.port, path: `${cmPath('h2heap')}?watch=true`, headers: auth }, (res) => {
          res.pause();
          stalled.push(() => res.destroy());
          resolve();
        });
        req.on('error', reject);
        req.end();
      });
    }
    const heap = () => {
      gc();
      const usage = process.memoryUsage();
      return usage.heapUsed + usage.external;
    };
    const put = async (i: number) => {
      const res = await api('PUT', cmPath('h2heap', 'large'), { metadata: { name: 'large' }, data: { v: value, i: String(i) } });
      expect(res.status).toBe(200);
    };
    const baseline = heap();
    for (let i = 0; i < 30; i++) await put(i);
    const early = heap();
    for (let i = 30; i < 150; i++) await put(i);
    const late = heap();
    for (const destroy of stalled) destroy();
    // Unbounded, 150 PUTs to 40 watchers would hold 150 × 40 × 1.4 MB = 8.4 GB (the old
    // per-watcher cap of 32 MiB alone let 40 watchers hold 1.3 GB).
    const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);
    console.log(`heap+external before ${mib(baseline)} MiB, after 30 PUTs ${mib(early)} MiB, after 150: ${mib(late)} MiB`);
    expect(early - baseline).toBeLessThan(256 * 1024 * 1024);
    expect(late - baseline).toBeLessThan(256 * 1024 * 1024);
  }, 180_000);
});

describe('issue 25 item 4: deep nesting is refused before it is stored', () => {
  const deep = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

  it('answers 400 for 2,500 and 9,999 levels, stores nothing, and lists still work', async () => {
    await namespace('h4');
    for (const levels of [1_200, 2_500, 9_999]) {
      const res = await api('POST', cmPath('h4'), `{"metadata":{"name":"deep${levels}"},"data":${deep(levels)}}`);
      expect(res.status).toBe(400);
      expect(isStatus(res.json, 400)).toBe(true);
    }
    const pod = `{"metadata":{"name":"deep-pod","annotations":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"busybox"}],"x":${deep(3_000)}}}`;
    expect((await api('POST', '/api/v1/namespaces/h4/pods', pod)).status).toBe(400);
    expect((await api('GET', '/api/v1/configmaps')).status).toBe(200);
    expect((await api('GET', '/api/v1/pods')).status).toBe(200);
    // Asynchronously: the control plane answers from this process.
    const kubectl = await promisify(execFile)('kubectl', ['--kubeconfig', cp.kubeconfigPath, 'get', 'pods', '-A'], { encoding: 'utf8', timeout: 30_000 });
    expect(kubectl.stderr).not.toContain('Error');
  });

  it('a patch cannot deepen a stored object past the limit', async () => {
    expect((await api('POST', cmPath('h4'), { metadata: { name: 'grow' } })).status).toBe(201);
    let res = await api('PATCH', cmPath('h4', 'grow'), `{"metadata":{"annotations":null},"x":${deep(900)}}`, 'application/merge-patch+json');
    expect(res.status).toBe(200);
    res = await api('PATCH', cmPath('h4', 'grow'), `[{"op":"add","path":"/x${'/a'.repeat(899)}","value":${deep(900)}}]`, 'application/json-patch+json');
    expect(res.status).toBe(400);
    const table = await rawRequest(cp.url, { method: 'GET', path: '/api/v1/configmaps', headers: { ...auth, Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } });
    expect(table.status).toBe(200);
  });
});

describe('issue 25 item 7: dot segments and immortal namespaces', () => {
  it('DELETE configmaps/%2e%2e does not delete the namespace', async () => {
    await namespace('foo7');
    for (const name of ['%2e%2e', '%2E%2e', '..', '.', '%2f', 'a%2fb']) {
      const res = await api('DELETE', cmPath('foo7', name));
      expect(res.status, name).toBe(400);
      expect(isStatus(res.json, 400)).toBe(true);
    }
    const ns = await api('GET', '/api/v1/namespaces/foo7');
    expect(ns.status).toBe(200);
    expect((ns.json as { metadata: { deletionTimestamp?: string } }).metadata.deletionTimestamp).toBeUndefined();
  });

  it.each(['default', 'kube-system', 'kube-public', 'kube-node-lease'])('deleting namespace %s is 403 Forbidden', async (name) => {
    const res = await api('DELETE', `/api/v1/namespaces/${name}`);
    expect(res.status).toBe(403);
    expect(res.json).toMatchObject({ kind: 'Status', code: 403, reason: 'Forbidden', message: `namespaces "${name}" is forbidden: this namespace may not be deleted` });
    expect((await api('GET', `/api/v1/namespaces/${name}`)).status).toBe(200);
  });
});

describe('issue 25 item 12: future resourceVersion, huge timeoutSeconds, selectors, bearer', () => {
  const watchOnce = (path: string, waitMs: number) =>
    new Promise<{ lines: string[]; ended: boolean }>((resolve, reject) => {
      const lines: string[] = [];
      let ended = false;
      const req = request({ host: '127.0.0.1', port: cp.port, path, headers: auth }, (res) => {
        let buffer = '';
        res.on('data', (chunk: Buffer) => {
          buffer += chunk.toString('utf8');
          const parts = buffer.split('\n');
          buffer = parts.pop() ?? '';
          lines.push(...parts.filter((p) => p !== ''));
        });
        res.on('end', () => {
          ended = true;
        });
      });
      req.on('error', reject);
      req.end();
      setTimeout(() => {
        req.destroy();
        resolve({ lines, ended });
      }, waitMs);
    });

  it('a watch from a future resourceVersion gets a 504 "Too large resource version" ERROR event', async () => {
    const list = await api('GET', '/api/v1/configmaps');
    const current = Number((list.json as { metadata: { resourceVersion: string } }).metadata.resourceVersion);
    const started = Date.now();
    const { lines, ended } = await watchOnce(`/api/v1/configmaps?watch=1&resourceVersion=${current + 1000}`, 4_500);
    expect(ended).toBe(true);
    expect(lines).toHaveLength(1);
    const event = JSON.parse(lines[0] as string) as { type: string; object: { code: number; reason: string; message: string } };
    expect(event.type).toBe('ERROR');
    expect(event.object).toMatchObject({ code: 504, reason: 'Timeout' });
    expect(event.object.message).toContain(`Too large resource version: ${current + 1000}, current: `);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_500);
  });

  it('timeoutSeconds=2147484 does not close the watch at once', async () => {
    const { ended } = await watchOnce('/api/v1/configmaps?watch=true&timeoutSeconds=2147484&resourceVersion=0', 1_500);
    expect(ended).toBe(false);
  });

  it('labelSelector "a in ()" is 400, "a>1" and "a<1" are 200', async () => {
    expect((await api('GET', `/api/v1/configmaps?labelSelector=${encodeURIComponent('a in ()')}`)).status).toBe(400);
    expect((await api('POST', cmPath('h1'), { metadata: { name: 'num', labels: { a: '5' } } })).status).toBe(201);
    const gt = await api('GET', `${cmPath('h1')}?labelSelector=${encodeURIComponent('a>1')}`);
    expect(gt.status).toBe(200);
    expect((gt.json as { items: { metadata: { name: string } }[] }).items.map((i) => i.metadata.name)).toEqual(['num']);
    const lt = await api('GET', `${cmPath('h1')}?labelSelector=${encodeURIComponent('a<1')}`);
    expect(lt.status).toBe(200);
    expect((lt.json as { items: unknown[] }).items).toEqual([]);
  });

  it('the bearer scheme is case-insensitive, the token is not; no credential is anonymous (403), a wrong one 401', async () => {
    const secured = await startTestControlPlane({ controllers: false, token: 'tok-hardening' });
    try {
      const get = (headers: Record<string, string>) => rawRequest(secured.url, { method: 'GET', path: '/api/v1/namespaces', headers });
      for (const scheme of ['bearer', 'BEARER', 'Bearer']) expect((await get({ Authorization: `${scheme} tok-hardening` })).status).toBe(200);
      expect((await get({ Authorization: 'bearer TOK-HARDENING' })).status).toBe(401);
      // kube-apiserver's bearer authenticator ignores other schemes: the request is anonymous.
      expect((await get({ Authorization: 'Basic tok-hardening' })).status).toBe(403);
      expect((await get({})).status).toBe(403);
    } finally {
      await secured.stop();
    }
  });
});
