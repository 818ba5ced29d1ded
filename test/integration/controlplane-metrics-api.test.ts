/**
 * metrics.k8s.io/v1beta1 in the control plane (issue 22), over HTTP and through kubectl: the
 * scraper reads a kubelet's /metrics/resource (here a loopback HTTP server serving text made by
 * the agent's own renderer, with figures this test controls), rates come out of two scrapes,
 * selectors and namespaces filter, and bad input is refused without harm: a kubelet answering
 * garbage or nothing drops its node out and the control plane keeps serving; writes, watches and
 * unknown paths get a Status. Everything listens on and dials 127.0.0.1 only.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderResourceMetrics } from '../../agent/server/resource-metrics.js';
import type { Summary } from '../../agent/server/stats.js';
import { run } from '../../lib/exec.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { onPath, prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites();

describe.skipIf(env.skip)('metrics.k8s.io served from scraped kubelet resource metrics', () => {
  let cp: TestControlPlane;
  let kubelet: Server;
  let mode: 'ok' | 'garbage' | 'error' = 'ok';
  let scrapes = 0;
  const start = Date.now() - 60_000;

  /** Node CPU grows 0.5 core-s and container CPU 0.25 core-s per second of wall time. */
  const summary = (): Summary => {
    const now = Date.now();
    const time = new Date(now).toISOString();
    const seconds = (now - start) / 1000;
    const container = (name: string, memory: number) => ({ name, startTime: new Date(start).toISOString(), cpu: { time, usageCoreNanoSeconds: Math.round(seconds * 0.25e9) }, memory: { time, workingSetBytes: memory } });
    const pod = (namespace: string, name: string, containers: ReturnType<typeof container>[]) => ({
      podRef: { namespace, name, uid: `${namespace}-${name}` },
      cpu: { time, usageCoreNanoSeconds: 0 },
      memory: { time, workingSetBytes: 0 },
      containers,
    });
    return {
      node: { cpu: { time, usageCoreNanoSeconds: Math.round(seconds * 0.5e9) }, memory: { time, workingSetBytes: 512 * 1024 * 1024 } },
      pods: [pod('ma', 'web', [container('app', 10 * 1024 * 1024), container('side', 4096)]), pod('mb', 'db', [container('db', 2 * 1024 * 1024)])],
    };
  };
  const call = async (method: string, path: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const response = await fetch(cp.url + path, { method });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const post = (path: string, body: unknown) => fetch(cp.url + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

  beforeAll(async () => {
    kubelet = createServer((req, res) => {
      scrapes++;
      if (req.url !== '/metrics/resource') return res.writeHead(404).end();
      if (mode === 'error') return res.writeHead(500).end('stats broken\n');
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(mode === 'garbage' ? 'this is { not prometheus\n' : renderResourceMetrics(summary()));
    });
    await new Promise<void>((resolve) => kubelet.listen(0, '127.0.0.1', resolve));
    const port = (kubelet.address() as AddressInfo).port;
    cp = await startTestControlPlane({ controllers: false, metricResolutionMs: 300 });
    for (const ns of ['ma', 'mb']) await post('/api/v1/namespaces', { metadata: { name: ns } });
    await post('/api/v1/namespaces/ma/pods', { metadata: { name: 'web', labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'x' }, { name: 'side', image: 'x' }] } });
    await post('/api/v1/namespaces/mb/pods', { metadata: { name: 'db', labels: { app: 'db' } }, spec: { containers: [{ name: 'db', image: 'x' }] } });
    await post('/api/v1/nodes', { metadata: { name: 'm1', labels: { zone: 'a' } } });
    const status = await fetch(`${cp.url}/api/v1/nodes/m1/status`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/merge-patch+json' },
      body: JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], daemonEndpoints: { kubeletEndpoint: { Port: port } } } }),
    });
    expect(status.status).toBe(200);
  });

  afterAll(async () => {
    await cp?.stop();
    kubelet?.closeAllConnections();
    await new Promise((resolve) => kubelet?.close(resolve));
  });

  it('discovery lists the group and its two kinds', async () => {
    const groups = (await call('GET', '/apis')).body as { groups: { name: string; preferredVersion: { groupVersion: string } }[] };
    expect(groups.groups.find((g) => g.name === 'metrics.k8s.io')?.preferredVersion.groupVersion).toBe('metrics.k8s.io/v1beta1');
    const list = (await call('GET', '/apis/metrics.k8s.io/v1beta1')).body as { resources: { name: string; kind: string; namespaced: boolean }[] };
    expect(list.resources.map((r) => [r.name, r.kind, r.namespaced])).toEqual([['nodes', 'NodeMetrics', false], ['pods', 'PodMetrics', true]]);
  });

  it('NodeMetrics and PodMetrics carry the rates of two scrapes; selectors and namespaces filter', async () => {
    const node = await waitFor('node metrics', async () => {
      const reply = await call('GET', '/apis/metrics.k8s.io/v1beta1/nodes/m1');
      return reply.status === 200 ? (reply.body as { usage: { cpu: string; memory: string }; window: string; timestamp: string }) : undefined;
    }, 30_000, 100);
    expect(node.usage.memory).toBe('512Mi');
    // 0.5 core per second of wall time, whatever the window.
    const nano = Number(/^(\d+)n$/.exec(node.usage.cpu)?.[1] ?? (node.usage.cpu.endsWith('m') ? Number(node.usage.cpu.slice(0, -1)) * 1e6 : NaN));
    expect(Math.abs(nano - 0.5e9)).toBeLessThan(0.01e9);
    expect(node.window).toMatch(/^\d+(\.\d+)?m?s$/);
    const all = (await call('GET', '/apis/metrics.k8s.io/v1beta1/pods')).body as { kind: string; items: { metadata: { namespace: string; name: string }; containers: { name: string; usage: { memory: string } }[] }[] };
    expect(all.kind).toBe('PodMetricsList');
    expect(all.items.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort()).toEqual(['ma/web', 'mb/db']);
    expect(all.items.find((p) => p.metadata.name === 'web')!.containers).toEqual([
      { name: 'app', usage: expect.objectContaining({ memory: '10Mi' }) as unknown },
      { name: 'side', usage: expect.objectContaining({ memory: '4Ki' }) as unknown },
    ]);
    const inNamespace = (await call('GET', '/apis/metrics.k8s.io/v1beta1/namespaces/mb/pods')).body as { items: { metadata: { name: string } }[] };
    expect(inNamespace.items.map((p) => p.metadata.name)).toEqual(['db']);
    const selected = (await call('GET', '/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dweb')).body as { items: { metadata: { name: string } }[] };
    expect(selected.items.map((p) => p.metadata.name)).toEqual(['web']);
    const nodes = (await call('GET', '/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Db')).body as { items: unknown[] };
    expect(nodes.items).toEqual([]);
  });

  it.skipIf(!onPath('kubectl'))('kubectl top reads it', async () => {
    const top = await run(['kubectl', '--kubeconfig', cp.kubeconfigPath, 'top', 'pod', '-n', 'ma', '--containers', '--no-headers'], { allowFailure: true, timeoutMs: 60_000 });
    expect(top.stderr).toBe('');
    expect(top.stdout).toMatch(/^web\s+app\s+2\d\dm\s+10Mi/m);
    expect(top.stdout).toMatch(/^web\s+side\s+2\d\dm\s+0Mi/m);
  });

  it('writes, watches, unknown paths and bad selectors get a Status', async () => {
    expect((await call('POST', '/apis/metrics.k8s.io/v1beta1/nodes')).status).toBe(405);
    expect((await call('DELETE', '/apis/metrics.k8s.io/v1beta1/namespaces/ma/pods/web')).status).toBe(405);
    expect((await call('GET', '/apis/metrics.k8s.io/v1beta1/nodes?watch=true')).status).toBe(405);
    expect((await call('GET', '/apis/metrics.k8s.io/v1beta1/nodes/m1/extra')).status).toBe(404);
    expect((await call('GET', '/apis/metrics.k8s.io/v1/nodes')).status).toBe(404);
    expect((await call('GET', '/apis/metrics.k8s.io/v1beta1/pods?labelSelector=a%20in%20(')).status).toBe(400);
    expect((await call('GET', '/apis/metrics.k8s.io/v1beta1/namespaces/ma/pods/%zz')).status).toBe(400);
    const missing = await call('GET', '/apis/metrics.k8s.io/v1beta1/nodes/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.message).toBe('nodes.metrics.k8s.io "nope" not found');
  });

  it('a kubelet answering garbage or an error drops its node out; it comes back when it answers again', async () => {
    for (const bad of ['garbage', 'error'] as const) {
      mode = bad;
      await waitFor(`node dropped on ${bad}`, async () => (await call('GET', '/apis/metrics.k8s.io/v1beta1/nodes/m1')).status === 404, 30_000, 100);
      const before = scrapes;
      await waitFor('scraping continues', () => scrapes > before + 1, 30_000, 50);
      expect((await call('GET', '/api/v1/nodes/m1')).status).toBe(200);
      mode = 'ok';
      await waitFor('node back', async () => (await call('GET', '/apis/metrics.k8s.io/v1beta1/nodes/m1')).status === 200, 30_000, 100);
    }
  });
});
