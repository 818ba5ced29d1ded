/**
 * A kubeconfig that lists several API servers (`knode.io/failover`) and the loopback forwarder
 * behind it (lib/api-failover.ts): bad lists are refused with the field named, requests go to a
 * live server and move on when it dies. Loopback only.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { failoverExtension, loadKubeconfig, readKubeconfig, failoverList } from '../../lib/config/kubeconfig.js';

const dirs: string[] = [];
const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function kubeconfigFile(server: string, extension: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'knode-failover-'));
  dirs.push(dir);
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server, extensions: [{ name: failoverExtension, extension }] } }], users: [{ name: 'u', user: {} }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x' }));
  return file;
}

async function answering(name: string): Promise<{ port: number; server: Server }> {
  const server = createServer((_, response) => response.end(name));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { port: (server.address() as { port: number }).port, server };
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('kubeconfig failover list', () => {
  it.each([
    [{ servers: [] }, /servers: .*at least|servers: Too small|>=1/i],
    [{ servers: ['ftp://x'] }, /must be an http\(s\) URL/],
    [{ servers: ['https://10.0.0.2:6443'] }, /does not use http: as the cluster's server does/],
    ['not an object', /knode\.io\/failover/],
  ])('refuses %j', (extension, message) => {
    const file = kubeconfigFile('http://127.0.0.1:1', extension);
    expect(() => failoverList(readKubeconfig(file), file)).toThrow(message);
  });

  it('sends requests to a live server and moves on when it dies', async () => {
    const a = await answering('a');
    const b = await answering('b');
    // The primary server refuses connections (nothing listens there): the forwarder tries the next.
    const dead = await answering('dead');
    dead.server.close();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const file = kubeconfigFile(`http://127.0.0.1:${dead.port}`, { servers: [`http://127.0.0.1:${a.port}`, `http://127.0.0.1:${b.port}`] });
    const kubeConfig = await loadKubeconfig(file);
    const via = kubeConfig.getCurrentCluster()!.server;
    expect(via).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await get(`${via}/`)).toBe('a');
    expect(await get(`${via}/`)).toBe('a');
    a.server.close();
    a.server.closeAllConnections();
    expect(await get(`${via}/`)).toBe('b');
  });
});
