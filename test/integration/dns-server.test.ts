/**
 * `knode dns`'s daemon (dns/daemon.ts) against a real control plane, queried with `dig` on
 * loopback: cluster records (A, SRV, PTR, headless, ExternalName chased through the upstream),
 * NXDOMAIN vs NODATA with an SOA, forwarding with a cache (positive and negative, counted at the
 * scripted upstream), UDP truncation and the TCP retry, EDNS0, publishing the kube-dns Service
 * and this node's EndpointSlice, new and deleted Services within 1 s, answers from the last data
 * while the API server is down, and the CoreDNS-named metrics and health endpoints. Loopback only.
 */
import { CoreV1Api, DiscoveryV1Api, KubeConfig, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import type { Answer } from 'dns-packet';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { DnsDaemon } from '../../dns/daemon.js';
import { createLogger } from '../../lib/log.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { dig, digHeader, lines, startTestUpstream, type TestUpstream } from '../helpers/dns.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites('command:dig');

const svc = (name: string, spec: V1Service['spec']): V1Service => ({ metadata: { name, namespace: 'default' }, spec });

const endpoints = (service: string, ips: string[]): V1EndpointSlice => ({
  metadata: { name: `${service}-manual`, namespace: 'default', labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'test' } },
  addressType: 'IPv4',
  endpoints: ips.map((ip, i) => ({ addresses: [ip], hostname: i === 0 ? 'first' : undefined, conditions: { ready: true } })),
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
});

describe.skipIf(env.skip)('knode dns server (loopback, real control plane, dig)', () => {
  let cp: TestControlPlane;
  let upstream: TestUpstream;
  let daemon: DnsDaemon;
  let core: CoreV1Api;
  let port: number;
  const q = (args: string[]) => dig('127.0.0.1', port, args);

  beforeAll(async () => {
    cp = await startTestControlPlane();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    await core.createNamespacedService({ namespace: 'default', body: svc('web', { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }) });
    await core.createNamespacedService({ namespace: 'default', body: svc('many', { clusterIP: 'None', ports: [{ name: 'http', port: 8080 }] }) });
    await discovery.createNamespacedEndpointSlice({ namespace: 'default', body: endpoints('many', Array.from({ length: 60 }, (_, i) => `10.244.${Math.floor(i / 200)}.${(i % 200) + 2}`)) });
    await core.createNamespacedService({ namespace: 'default', body: svc('ext', { type: 'ExternalName', externalName: 'www.outside.test' }) });
    const records = new Map<string, Answer[]>([
      ['www.outside.test', [{ name: 'www.outside.test', type: 'A', ttl: 60, data: '192.0.2.10' }]],
      ['api.outside.test', [{ name: 'api.outside.test', type: 'A', ttl: 60, data: '192.0.2.11' }]],
      ['big.outside.test', Array.from({ length: 40 }, (_, i): Answer => ({ name: 'big.outside.test', type: 'A', ttl: 60, data: `192.0.2.${i + 1}` }))],
    ]);
    upstream = await startTestUpstream(records);
    daemon = new DnsDaemon({
      kubeConfig: kc,
      log: createLogger('dns', process.env.KNODE_TEST_LOG_LEVEL ?? 'silent'),
      nodeName: 'node-dns',
      clusterDomain: 'cluster.local',
      bindAddress: '127.0.0.1',
      port: 0,
      upstreams: [{ host: '127.0.0.1', port: upstream.port }],
      healthAddress: '127.0.0.1:0',
      publishClusterIP: '10.96.0.10',
    });
    await daemon.start();
    port = daemon.port;
    await daemon.ready;
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    await upstream?.stop();
    await cp?.stop();
  });

  it('answers Service, SRV, PTR, headless and ExternalName records', async () => {
    expect(lines(await q(['+short', 'web.default.svc.cluster.local']))).toEqual(['10.96.0.20']);
    expect(lines(await q(['+short', 'SRV', '_http._tcp.web.default.svc.cluster.local']))).toEqual(['0 100 80 web.default.svc.cluster.local.']);
    expect(lines(await q(['+short', '-x', '10.96.0.20']))).toEqual(['web.default.svc.cluster.local.']);
    expect(lines(await q(['+short', '+tcp', 'first.many.default.svc.cluster.local']))).toEqual(['10.244.0.2']);
    expect(lines(await q(['+short', 'ext.default.svc.cluster.local']))).toEqual(['www.outside.test.', '192.0.2.10']);
    const full = await q(['web.default.svc.cluster.local']);
    expect(digHeader(full).flags).toEqual(expect.arrayContaining(['qr', 'aa', 'rd', 'ra']));
  });

  it('NXDOMAIN and NODATA both carry the SOA', async () => {
    const nx = await q(['nope.default.svc.cluster.local']);
    expect(digHeader(nx).status).toBe('NXDOMAIN');
    expect(nx).toMatch(/AUTHORITY SECTION:\ncluster\.local\.\s+\d+\s+IN\s+SOA\s+ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\./);
    const nodata = await q(['AAAA', 'web.default.svc.cluster.local']);
    expect(digHeader(nodata).status).toBe('NOERROR');
    expect(nodata).toMatch(/ANSWER: 0, AUTHORITY: 1/);
  });

  it('truncates over UDP what does not fit (512 without EDNS0, the OPT size with it); TCP gets all of it', async () => {
    const plain = await q(['+noedns', '+ignore', 'many.default.svc.cluster.local']);
    expect(digHeader(plain).flags).toContain('tc');
    const edns = await q(['+bufsize=4096', '+ignore', 'many.default.svc.cluster.local']);
    expect(digHeader(edns).flags).not.toContain('tc');
    expect(edns).toMatch(/ANSWER: 60/);
    expect(edns).toMatch(/EDNS: version: 0, flags:; udp: 1232/);
    expect(lines(await q(['+short', '+tcp', 'many.default.svc.cluster.local']))).toHaveLength(60);
    expect(digHeader(await q(['+edns=1', '+noednsnegotiation', 'web.default.svc.cluster.local'])).status).toBe('BADVERS');
  });

  it('forwards outside names, retries a truncated upstream answer over TCP, caches positive and negative answers', async () => {
    upstream.queries.length = 0;
    expect(lines(await q(['+short', 'api.outside.test']))).toEqual(['192.0.2.11']);
    expect(lines(await q(['+short', 'api.outside.test']))).toEqual(['192.0.2.11']);
    expect(upstream.queries.filter((query) => query.startsWith('api.outside.test A'))).toHaveLength(1);
    expect(lines(await q(['+short', '+bufsize=4096', 'big.outside.test']))).toHaveLength(40);
    expect(upstream.queries).toEqual(expect.arrayContaining(['big.outside.test A udp', 'big.outside.test A tcp']));
    const nx1 = await q(['missing.outside.test']);
    const nx2 = await q(['missing.outside.test']);
    expect(digHeader(nx1).status).toBe('NXDOMAIN');
    expect(digHeader(nx2).status).toBe('NXDOMAIN');
    expect(nx2).toMatch(/SOA/);
    expect(upstream.queries.filter((query) => query.startsWith('missing.outside.test'))).toHaveLength(1);
  });

  it('publishes kube-dns (ClusterIP 10.96.0.10, internalTrafficPolicy Local) and this node\'s endpoint', async () => {
    const service = await waitFor('kube-dns Service', () => core.readNamespacedService({ name: 'kube-dns', namespace: 'kube-system' }).catch(() => undefined), 10_000);
    expect(service.spec).toMatchObject({ clusterIP: '10.96.0.10', internalTrafficPolicy: 'Local' });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    const slice = await waitFor('node slice', () => kc.makeApiClient(DiscoveryV1Api).readNamespacedEndpointSlice({ name: 'kube-dns-node-dns', namespace: 'kube-system' }).catch(() => undefined), 10_000);
    expect(slice.endpoints).toEqual([expect.objectContaining({ addresses: ['127.0.0.1'], nodeName: 'node-dns' })]);
    expect(slice.ports?.map((p) => `${p.name}/${p.protocol}/${p.port}`).sort()).toEqual([`dns-tcp/TCP/${port}`, `dns/UDP/${port}`]);
  });

  it('a new Service resolves within 1 s, a deleted one stops resolving', async () => {
    const created = Date.now();
    await core.createNamespacedService({ namespace: 'default', body: svc('late', { clusterIP: '10.96.0.77', ports: [{ port: 80 }] }) });
    await waitFor('late resolves', async () => lines(await q(['+short', 'late.default.svc.cluster.local']))[0] === '10.96.0.77', 5000, 50);
    expect(Date.now() - created).toBeLessThan(1000);
    await core.deleteNamespacedService({ name: 'late', namespace: 'default' });
    await waitFor('late gone', async () => digHeader(await q(['late.default.svc.cluster.local'])).status === 'NXDOMAIN', 5000, 50);
  });

  it('serves /health, /ready and CoreDNS-named metrics', async () => {
    const base = `http://127.0.0.1:${daemon.healthPort}`;
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect((await fetch(`${base}/ready`)).status).toBe(200);
    const text = await (await fetch(`${base}/metrics`)).text();
    for (const name of ['coredns_dns_requests_total', 'coredns_dns_responses_total', 'coredns_dns_request_duration_seconds_bucket', 'coredns_cache_hits_total', 'coredns_cache_misses_total']) expect(text).toContain(name);
    expect(text).toMatch(/coredns_dns_responses_total\{[^}]*rcode="NXDOMAIN"[^}]*\} \d+/);
    expect(text).toMatch(/coredns_cache_hits_total\{[^}]*type="denial"[^}]*\} [1-9]/);
  });

  it('the `knode dns` command serves, logs as JSON and stops cleanly on SIGTERM; bad flags exit 2', async () => {
    const knode = fileURLToPath(new URL('../../bin/knode', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'knode-dns-cli-'));
    const resolv = join(dir, 'resolv.conf');
    writeFileSync(resolv, `nameserver 127.0.0.1:${upstream.port}\n`);
    const child = spawn(process.execPath, [knode, 'dns', '--kubeconfig', cp.kubeconfigPath, '--bind-address', '127.0.0.1', '--port', '0', '--health-bind-address', '127.0.0.1:0', '--resolv-conf', resolv, '--no-publish', '--hostname-override', 'cli'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    try {
      const cliPort = await waitFor('the serving log line', () => Number(/"port":(\d+)[^\n]*"msg":"serving DNS"/.exec(log)?.[1] ?? 0) || undefined, 30_000);
      await waitFor('synced', () => log.includes('synced with the API server'), 30_000);
      expect(lines(await dig('127.0.0.1', cliPort, ['+short', 'web.default.svc.cluster.local']))).toEqual(['10.96.0.20']);
      expect(lines(await dig('127.0.0.1', cliPort, ['+short', 'www.outside.test']))).toEqual(['192.0.2.10']);
    } finally {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
    expect(await new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))))).toBe(0);
    const bad = await run([process.execPath, knode, 'dns', '--kubeconfig', cp.kubeconfigPath, '--cluster-domain', 'not a domain'], { allowFailure: true });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--cluster-domain "not a domain": not a DNS domain name');
  });

  it('`knode dns --serving-processes 2`: a child answers on the same socket from the index it is fed, /metrics adds its counts, a killed child starts again, SIGTERM stops both', async () => {
    const knode = fileURLToPath(new URL('../../bin/knode', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'knode-dns-processes-'));
    const resolv = join(dir, 'resolv.conf');
    writeFileSync(resolv, `nameserver 127.0.0.1:${upstream.port}\n`);
    const child = spawn(process.execPath, [knode, 'dns', '--kubeconfig', cp.kubeconfigPath, '--bind-address', '127.0.0.1', '--port', '0', '--health-bind-address', '127.0.0.1:0', '--resolv-conf', resolv, '--no-publish', '--hostname-override', 'processes', '--serving-processes', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const pid = child.pid!;
    const servingChildren = () => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    let queries = 0;
    const ask = async (name: string) => (queries++, lines(await dig('127.0.0.1', cliPort, ['+short', name])));
    const requestsTotal = async () => [...(await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text()).matchAll(/^coredns_dns_requests_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    let cliPort = 0;
    let healthPort = 0;
    try {
      const serving = await waitFor('the serving log line', () => /"port":(\d+),[^\n]*"health":(\d+)[^\n]*"msg":"serving DNS"/.exec(log) ?? undefined, 30_000);
      cliPort = Number(serving[1]);
      healthPort = Number(serving[2]);
      await waitFor('synced', () => log.includes('synced with the API server'), 30_000);
      const first = await waitFor('one serving child', () => (servingChildren().length === 1 ? servingChildren()[0] : undefined), 10_000);
      await core.createNamespacedService({ namespace: 'default', body: svc('late', { clusterIP: '10.96.0.33', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }) });
      await waitFor('the new Service', async () => ((await ask('late.default.svc.cluster.local')).includes('10.96.0.33') ? true : undefined), 10_000);
      // With the main process stopped, only the child reads the socket: every answer is its own.
      const before = await requestsTotal();
      queries = 0;
      process.kill(pid, 'SIGSTOP');
      try {
        await waitFor('the child answering a new Service', async () => ((await ask('late.default.svc.cluster.local')).includes('10.96.0.33') ? true : undefined), 10_000);
        expect(await ask('web.default.svc.cluster.local')).toEqual(['10.96.0.20']);
        expect(await ask('www.outside.test')).toEqual(['192.0.2.10']);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      expect((await requestsTotal()) - before).toBe(queries);
      const text = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      expect(text).toMatch(/^# TYPE coredns_dns_request_duration_seconds histogram$/m);
      const count = (series: string) => [...text.matchAll(new RegExp(`^${series}\\{[^}]*\\} (\\d+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
      expect(count('coredns_dns_request_duration_seconds_count')).toBe(count('coredns_dns_responses_total'));

      process.kill(first, 'SIGKILL');
      await waitFor('the restart logged', () => log.includes('a DNS serving process exited; starting it again') || undefined, 10_000);
      const second = await waitFor('a new serving child', () => (servingChildren().length === 1 && servingChildren()[0] !== first ? servingChildren()[0] : undefined), 10_000);
      // the main process hands the new child its socket and index after the fork: stopping the
      // main before the child says it answers would stop that hand-over too
      await waitFor('the new child serving', () => log.includes(`"pid":${second},"port"`) || undefined, 30_000);
      process.kill(pid, 'SIGSTOP');
      try {
        await waitFor('the new child answering', async () => ((await ask('late.default.svc.cluster.local')).includes('10.96.0.33') ? true : undefined), 10_000);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      child.kill('SIGTERM');
      expect(await new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))))).toBe(0);
      expect(existsSync(`/proc/${second}`)).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await core.deleteNamespacedService({ namespace: 'default', name: 'late' }).catch(() => undefined); // absent when creating it failed
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('keeps answering from its last data while the API server is down', async () => {
    await cp.stop();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(lines(await q(['+short', 'web.default.svc.cluster.local']))).toEqual(['10.96.0.20']);
    expect(lines(await q(['+short', 'www.outside.test']))).toEqual(['192.0.2.10']);
    cp = { stop: async () => undefined } as unknown as TestControlPlane;
  });
});
