/**
 * `knode controlplane` as a process (dist/ must be built): admin.kubeconfig, SIGTERM shutdown,
 * a restart with the same --data-dir that keeps every object and resourceVersion, TLS + token
 * on a non-loopback listen address, and clear errors for bad flags.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('command:kubectl', 'command:openssl');
const knode = fileURLToPath(new URL('../../bin/knode', import.meta.url));
if (!existsSync(fileURLToPath(new URL('../../dist/bin/knode.js', import.meta.url)))) throw new Error('dist/ is missing: run "npm run build" first');

const dirs: string[] = [];
const children = new Set<ChildProcess>();

async function startCommand(args: string[]): Promise<{ child: ChildProcess; kubeconfig: string }> {
  const dataDir = args[args.indexOf('--data-dir') + 1] as string;
  const kubeconfig = join(dataDir, 'admin.kubeconfig');
  rmSync(kubeconfig, { force: true });
  const child = spawn(knode, ['controlplane', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KNODE_LOG_LEVEL: 'info' } });
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + 30_000;
  while (!stderr.includes('control plane ready')) {
    if (child.exitCode !== null) throw new Error(`knode controlplane exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`knode controlplane did not get ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, kubeconfig };
}

async function stopCommand(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const code = await exited;
  children.delete(child);
  return code;
}

afterAll(async () => {
  for (const child of children) await stopCommand(child);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(env.skip)('knode controlplane command', () => {
  it('keeps every object and resourceVersion across a restart with the same --data-dir', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'knode-cp-cmd-'));
    dirs.push(dataDir);
    const args = ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--store', 'file'];
    const first = await startCommand(args);
    const kubectl = (kc: string, ...a: string[]) => run(['kubectl', '--kubeconfig', kc, ...a], { timeoutMs: 30_000 });
    await kubectl(first.kubeconfig, 'create', 'namespace', 'persist');
    await kubectl(first.kubeconfig, '-n', 'persist', 'create', 'configmap', 'cfg', '--from-literal=a=b');
    await kubectl(first.kubeconfig, '-n', 'persist', 'run', 'p', '--image=busybox:1.36', '--labels=app=p');
    await kubectl(first.kubeconfig, '-n', 'persist', 'label', 'pod', 'p', 'extra=1');
    await kubectl(first.kubeconfig, '-n', 'persist', 'delete', 'configmap', 'cfg');
    await kubectl(first.kubeconfig, '-n', 'persist', 'create', 'service', 'clusterip', 'svc', '--tcp=80:80');
    // cluster-info is rewritten at start with the address the API serves on now (here a new random port).
    const dump = async (kc: string) => {
      const all = JSON.parse((await kubectl(kc, 'get', 'namespaces,pods,services,configmaps,serviceaccounts', '-A', '-o', 'json')).stdout) as { items: { metadata: { name: string; namespace?: string } }[] };
      return JSON.stringify({ ...all, items: all.items.filter((i) => !(i.metadata.namespace === 'kube-public' && i.metadata.name === 'cluster-info')) });
    };
    const before = JSON.parse(await dump(first.kubeconfig)) as { items: { metadata: { resourceVersion: string } }[] };
    expect(await stopCommand(first.child)).toBe(0);

    const second = await startCommand(args);
    const after = JSON.parse(await dump(second.kubeconfig)) as typeof before;
    expect(after.items).toEqual(before.items);
    expect(after.items.length).toBeGreaterThan(8);
    // New writes continue the revision sequence.
    await kubectl(second.kubeconfig, '-n', 'persist', 'label', 'pod', 'p', 'after=restart');
    const pod = JSON.parse((await kubectl(second.kubeconfig, '-n', 'persist', 'get', 'pod', 'p', '-o', 'json')).stdout) as { metadata: { resourceVersion: string } };
    const newest = Math.max(...before.items.map((i) => Number(i.metadata.resourceVersion)));
    expect(Number(pod.metadata.resourceVersion)).toBeGreaterThan(newest);
    expect(await stopCommand(second.child)).toBe(0);
  });

  it('serves TLS with a bearer token on a non-loopback listen address', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'knode-cp-tls-'));
    dirs.push(dataDir);
    const { child, kubeconfig } = await startCommand(['--listen', '0.0.0.0:0', '--data-dir', dataDir, '--store', 'memory']);
    const text = readFileSync(kubeconfig, 'utf8');
    expect(text).toMatch(/server: https:\/\/127\.0\.0\.1:\d+/);
    expect(text).toMatch(/token: [0-9a-f]{64}/);
    expect(text).toContain('certificate-authority-data');
    const ns = await run(['kubectl', '--kubeconfig', kubeconfig, 'get', 'ns', 'default', '-o', 'name'], { timeoutMs: 30_000 });
    expect(ns.stdout.trim()).toBe('namespace/default');
    const url = /server: (\S+)/.exec(text)![1] as string;
    const anonymous = await run(['curl', '-sk', `${url}/api/v1/pods`], { allowFailure: true, timeoutMs: 10_000 });
    // Anonymous may not list pods (kubeadm's RBAC): 403 with kube-apiserver's message; a bad token is 401.
    expect(JSON.parse(anonymous.stdout)).toMatchObject({ kind: 'Status', code: 403, reason: 'Forbidden', message: 'pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" at the cluster scope' });
    const badToken = await run(['curl', '-sk', '-H', 'Authorization: Bearer abcdef.0123456789abcdef', `${url}/api/v1/pods`], { allowFailure: true, timeoutMs: 10_000 });
    expect(JSON.parse(badToken.stdout)).toMatchObject({ kind: 'Status', code: 401, reason: 'Unauthorized', message: 'Unauthorized' });
    expect(await stopCommand(child)).toBe(0);
  });

  it('refuses plain HTTP on a non-loopback address when asked for it directly', async () => {
    const { startControlPlane } = await import('../../controlplane/control-plane.js');
    const { MemoryStorage } = await import('../../controlplane/storage/memory.js');
    const { createLogger } = await import('../../lib/log.js');
    await expect(
      startControlPlane({ storage: new MemoryStorage(), log: createLogger('test', 'silent'), host: '0.0.0.0', port: 0, clusterCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12' }),
    ).rejects.toThrow(/refusing to serve plain HTTP without authentication on 0.0.0.0/);
  });

  it.each([
    [['--listen', 'nonsense'], /--listen "nonsense"/],
    [['--cluster-cidr', '10.0.0.0/99'], /--cluster-cidr/],
    [['--store', 'etcd'], /--etcd-endpoints/],
    [['--metric-resolution', 'often'], /--metric-resolution "often": invalid duration/],
    [['--metric-resolution', '100ms'], /--metric-resolution "100ms": expected 0 \(off\) or between 1s and 1h/],
  ])('rejects %j with exit code 2 and a clear message', (args, message) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'knode-cp-bad-'));
    dirs.push(dataDir);
    const result = spawnSync(knode, ['controlplane', '--data-dir', dataDir, ...args], { encoding: 'utf8', env: { ...process.env, KNODE_LOG_LEVEL: 'silent' }, timeout: 30_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});
