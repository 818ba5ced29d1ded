/**
 * The whole `knode proxy --proxy-mode ipvs` daemon end to end, inside Debian's cloud kernel
 * under qemu (real IPVS; the guest has no network device, so nothing leaves it). One boot runs:
 * the control-plane stub (`knode controlplane --store memory` on guest loopback), then
 *   1. `knode proxy --proxy-mode ipvs`: a Service + EndpointSlice created through the API reach
 *      both busybox httpd backends by ClusterIP and NodePort; an endpoint removed through the
 *      API stops receiving traffic; deleting the Service removes its virtual server; SIGTERM → 0;
 *   2. `knode proxy --proxy-mode iptables` on the same node (mode switch): the IPVS leftovers
 *      (virtual servers, kube-ipvs0, ipsets, KUBE-NODE-PORT) are removed and iptables serves;
 *   3. `knode proxy --proxy-mode ipvs` again: the iptables-mode chains (KUBE-SVC-*, KUBE-SEP-*,
 *      …) left by 2 are removed and IPVS serves again;
 *   4. `knode proxy --cleanup` removes virtual servers, kube-ipvs0, ipsets and chains.
 * The guest runs the real CLI, bundled (bench/lib/qemu.ts, bundleCli).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { prerequisites } from '../helpers/prereq.js';
import { buildGuest, runGuest, type Guest } from '../../bench/lib/qemu.js';

const env = await prerequisites('root', 'command:qemu-system-x86_64', 'command:cpio', 'command:ipvsadm', 'command:modprobe', 'command:apt-get', 'command:dpkg', 'command:ipset', 'command:conntrack', 'command:iptables-nft');
const repo = join(import.meta.dirname, '..', '..');

const guestScript = String.raw`
import http from 'node:http';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const out = (key, value) => console.log('KNODE-RESULT ' + JSON.stringify({ key, value }));
const began = Date.now();
const phases = {};
const mark = (phase) => (phases[phase] = Date.now() - began);
const shell = (command) => { try { return execFileSync('sh', ['-c', command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }); } catch (error) { return 'error: ' + error.message; } };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(probe, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out after ' + ms + ' ms waiting for ' + what);
    await sleep(200);
  }
}
function knode(args) {
  const child = spawn('node', ['dist/bin/knode.mjs', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const add = (chunk) => (log = (log + chunk.toString()).slice(-30000));
  child.stdout.on('data', add);
  child.stderr.on('data', add);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  return { child, exited, log: () => log };
}
async function stop(proc, what) {
  proc.child.kill('SIGTERM');
  const code = await Promise.race([proc.exited, sleep(20000).then(() => 'no exit within 20 s')]);
  if (code !== 0) console.log(what + ' log:\n' + proc.log().slice(-3000));
  return code;
}
const get = (host, port, localAddress) => new Promise((resolve) => {
  const request = http.get({ host, port, path: '/', agent: false, timeout: 3000, localAddress }, (response) => {
    let body = '';
    response.on('data', (chunk) => (body += chunk));
    response.on('end', () => resolve(body.trim()));
  });
  request.on('error', (error) => resolve('error: ' + error.message));
  request.on('timeout', () => request.destroy(new Error('timeout')));
});
const spread = async (host, port, count, localAddress) => { const hits = {}; for (let i = 0; i < count; i++) { const b = await get(host, port, localAddress); hits[b] = (hits[b] ?? 0) + 1; } return hits; };
const virtualServers = () => shell('ipvsadm -Ln').split('\n').filter((line) => /^(TCP|UDP)/.test(line)).map((line) => line.split(/\s+/)[1]);
const linkExists = () => !shell('ip link show kube-ipvs0 2>&1').startsWith('error');
const sets = () => shell('ipset list -n').trim();
const iptablesSave = () => shell('iptables-save') + shell('iptables-legacy-save');
const count = (text, pattern) => (text.match(pattern) ?? []).length;

let cp;
const procs = [];
try {
  cp = knode(['controlplane', '--listen', '127.0.0.1:6443', '--store', 'memory', '--data-dir', '/tmp/cp']);
  procs.push(cp);
  await until(() => existsSync('/tmp/cp/admin.kubeconfig'), 120000, 'the control plane (' + cp.log().slice(-500) + ')');
  const kubeconfig = readFileSync('/tmp/cp/admin.kubeconfig', 'utf8');
  const server = /server: *"?([^"\s]+)/.exec(kubeconfig)[1];
  const token = /token: *"?([^"\s]+)/.exec(kubeconfig)?.[1];
  // One connection per call (no keep-alive: a reused idle connection may be reset under TCG).
  const api = (method, path, body) => new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', connection: 'close', ...(token ? { authorization: 'Bearer ' + token } : {}) };
    const request = http.request(server + path, { method, headers, agent: false, timeout: 15000 }, (response) => {
      let text = '';
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => (response.statusCode >= 300 ? reject(new Error(method + ' ' + path + ': ' + response.statusCode + ' ' + text.slice(0, 300))) : resolve(JSON.parse(text))));
    });
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error(method + ' ' + path + ': timeout')));
    request.end(body ? JSON.stringify(body) : undefined);
  });
  const services = '/api/v1/namespaces/default/services';
  const slices = '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices';
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { type: 'NodePort', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 80, nodePort: 30080, protocol: 'TCP' }] } };
  const slice = (ips) => ({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4', metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, ports: [{ name: 'http', port: 80, protocol: 'TCP' }], endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })) });
  await api('POST', services, svc);
  await api('POST', slices, slice(['10.244.0.2', '10.244.0.3']));
  writeFileSync('/tmp/kube-proxy.yaml', 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16\nhealthzBindAddress: 127.0.0.1:10256\nmetricsBindAddress: 127.0.0.1:10249\nipvs:\n  scheduler: rr\n  minSyncPeriod: 1s\n  syncPeriod: 30s\niptables:\n  minSyncPeriod: 1s\n  syncPeriod: 30s\n');
  const proxy = (mode) => knode(['proxy', '--proxy-mode', mode, '--kubeconfig', '/tmp/cp/admin.kubeconfig', '--config', '/tmp/kube-proxy.yaml', '--hostname-override', 'guest']);
  const answers = async (localAddress) => (await get('10.96.0.10', 80, localAddress)).startsWith('pod-');

  // 1. IPVS mode
  mark('1. IPVS mode');
  const ipvs1 = proxy('ipvs');
  procs.push(ipvs1);
  await until(() => answers(), 90000, 'the IPVS proxy to serve the ClusterIP (' + ipvs1.log().slice(-1500) + ')');
  mark('ipvs serving');
  out('ipvs-table', shell('ipvsadm -Ln'));
  out('cluster-ip', await spread('10.96.0.10', 80, 12));
  out('node-port', await spread('192.168.90.1', 30080, 12));
  out('healthz', await new Promise((resolve) => http.get({ host: '127.0.0.1', port: 10256, path: '/healthz', agent: false }, (response) => { response.resume(); resolve(response.statusCode); }).on('error', (error) => resolve(error.message))));
  const current = await api('GET', slices + '/web-1');
  await api('PUT', slices + '/web-1', { ...slice(['10.244.0.2']), metadata: { ...slice([]).metadata, resourceVersion: current.metadata.resourceVersion } });
  const removedAt = Date.now();
  await until(async () => Object.keys(await spread('10.96.0.10', 80, 6)).join() === 'pod-a', 20000, 'pod-b to leave');
  out('removal-ms', Date.now() - removedAt);
  out('after-removal', await spread('10.96.0.10', 80, 8));
  await api('DELETE', services + '/web');
  await until(() => !virtualServers().includes('10.96.0.10:80'), 20000, 'the virtual server to go');
  out('after-delete', { servers: virtualServers(), dummy: shell('ip -o -4 addr show dev kube-ipvs0') });
  await api('POST', services, svc);
  await until(() => answers(), 20000, 'the re-created service');
  out('sigterm-ipvs', await stop(ipvs1, 'ipvs proxy 1'));
  out('kept-after-stop', virtualServers());

  // 2. switch to iptables mode
  mark('2. switch to iptables mode');
  const ipt = proxy('iptables');
  procs.push(ipt);
  await until(() => /^:KUBE-SVC-/m.test(shell('iptables-save -t nat')), 90000, 'the iptables proxy to write its chains (' + ipt.log().slice(-1500) + ')');
  out('switch-to-iptables', { servers: virtualServers(), dummy: linkExists(), sets: sets(), ipvsChain: /^:KUBE-NODE-PORT /m.test(shell('iptables-save -t nat')) });
  await until(() => answers('10.244.0.9'), 20000, 'the ClusterIP through iptables');
  out('iptables-cluster-ip', await spread('10.96.0.10', 80, 4, '10.244.0.9'));
  out('sigterm-iptables', await stop(ipt, 'iptables proxy'));

  // 3. back to IPVS mode
  mark('3. back to IPVS mode');
  const ipvs2 = proxy('ipvs');
  procs.push(ipvs2);
  await until(() => virtualServers().includes('10.96.0.10:80'), 90000, 'the second IPVS proxy to program (' + ipvs2.log().slice(-1500) + ')');
  const save = iptablesSave();
  out('switch-to-ipvs', { iptablesChains: count(save, /^:KUBE-(SVC|SEP|EXT|FW|SVL)-|^:KUBE-NODEPORTS /gm), sets: sets().includes('KUBE-CLUSTER-IP') });
  out('ipvs-again', await spread('10.96.0.10', 80, 4));
  out('sigterm-ipvs2', await stop(ipvs2, 'ipvs proxy 2'));

  // 4. --cleanup
  mark('4. --cleanup');
  const cleanup = knode(['proxy', '--cleanup']);
  out('cleanup-exit', await Promise.race([cleanup.exited, sleep(30000).then(() => 'no exit')]));
  if ((await cleanup.exited) !== 0) console.log(cleanup.log());
  mark('end');
  out('phases', phases);
  out('cleanup', { servers: virtualServers(), link: linkExists(), sets: sets(), rules: count(iptablesSave(), /KUBE-/g) });
} catch (error) {
  out('fatal', String(error?.stack ?? error) + ' / ' + String(error?.cause?.message ?? ''));
  for (const proc of procs) console.log('--- log:\n' + proc.log().slice(-2000));
} finally {
  for (const proc of procs) proc.child.kill('SIGKILL');
}
`;

const setup = [
  'ip link add node0 type dummy && ip addr add 192.168.90.1/24 dev node0 && ip link set node0 up',
  // a route for service IPs (a node has its default route; iptables mode DNATs in OUTPUT after routing)
  'ip route add 10.96.0.0/12 dev node0',
  'ip addr add 10.244.0.2/32 dev lo; ip addr add 10.244.0.3/32 dev lo; ip addr add 10.244.0.9/32 dev lo',
  'mkdir -p /www/a /www/b; echo pod-a > /www/a/index.html; echo pod-b > /www/b/index.html',
  'httpd -p 10.244.0.2:80 -h /www/a; httpd -p 10.244.0.3:80 -h /www/b',
].join('\n');

const binaries = ['/usr/sbin/iptables', '/usr/sbin/iptables-save', '/usr/sbin/iptables-nft', '/usr/sbin/iptables-nft-restore', '/usr/sbin/iptables-nft-save', '/usr/sbin/iptables-legacy', '/usr/sbin/iptables-legacy-restore', '/usr/sbin/iptables-legacy-save', '/usr/sbin/ipset', '/usr/sbin/conntrack', '/usr/bin/ip'];
const modules = [
  'nf_tables', 'nft_compat', 'nft_chain_nat', 'nf_nat', 'xt_set', 'xt_mark', 'xt_MASQUERADE', 'xt_addrtype', 'xt_comment', 'xt_conntrack', 'xt_tcpudp',
  'xt_nat', 'xt_statistic', 'xt_recent', 'ipt_REJECT', 'ip_set_hash_ipport', 'ip_set_hash_ipportip', 'ip_set_bitmap_port', 'nf_conntrack_netlink', 'iptable_nat', 'iptable_filter',
];

function results(output: string): Map<string, unknown> {
  const map = new Map<string, unknown>();
  for (const line of output.split('\n')) {
    const match = /KNODE-RESULT (.*)$/.exec(line.trim());
    if (match) {
      const { key, value } = JSON.parse(match[1]!) as { key: string; value: unknown };
      map.set(key, value);
    }
  }
  return map;
}

const keys = (value: unknown) => Object.keys((value ?? {}) as object).sort();

describe.skipIf(env.skip)('knode proxy --proxy-mode ipvs daemon against the API, in a qemu guest', () => {
  let guest: Guest | undefined;
  let output = '';
  let found = new Map<string, unknown>();
  const context = () => output.slice(-5000);

  beforeAll(async () => {
    if (!existsSync(join(repo, 'dist', 'bin', 'knode.js'))) throw new Error('run "npm run build" first (the guest runs dist/)');
    guest = buildGuest(guestScript, setup, { binaries, modules, directories: ['/usr/lib/x86_64-linux-gnu/xtables', '/etc/protocols'], bundleCli: true });
    const started = Date.now();
    output = await runGuest(guest, 480_000);
    if (process.env.KNODE_SHOW_GUEST) console.log(output, `\nguest wall time ${Date.now() - started} ms`);
    found = results(output);
  }, 540_000);

  afterAll(() => guest?.cleanup());

  it('ClusterIP and NodePort reach every endpoint through IPVS', () => {
    expect(found.get('fatal'), context()).toBeUndefined();
    expect(found.get('ipvs-table'), context()).toMatch(/10\.96\.0\.10:80 rr/);
    expect(keys(found.get('cluster-ip')), context()).toEqual(['pod-a', 'pod-b']);
    expect(keys(found.get('node-port')), context()).toEqual(['pod-a', 'pod-b']);
    expect(found.get('healthz')).toBe(200);
  });

  it('endpoint removal and service deletion through the API take effect', () => {
    expect(keys(found.get('after-removal')), context()).toEqual(['pod-a']);
    // (10.96.0.1:443 is the control plane's own "kubernetes" service)
    const afterDelete = found.get('after-delete') as { servers: string[]; dummy: string };
    expect(afterDelete.servers, context()).not.toContain('10.96.0.10:80');
    expect(afterDelete.servers, context()).not.toContain('192.168.90.1:30080');
    expect(afterDelete.servers, context()).toContain('10.96.0.1:443');
    expect(afterDelete.dummy).not.toContain('10.96.0.10/');
  });

  it('SIGTERM exits 0 and leaves the virtual servers serving', () => {
    expect(found.get('sigterm-ipvs'), context()).toBe(0);
    expect(found.get('kept-after-stop'), context()).toContain('10.96.0.10:80');
  });

  it('mode switch ipvs → iptables removes the IPVS leftovers; iptables serves', () => {
    expect(found.get('switch-to-iptables'), context()).toEqual({ servers: [], dummy: false, sets: '', ipvsChain: false });
    expect(keys(found.get('iptables-cluster-ip')).every((body) => body.startsWith('pod-')), context()).toBe(true);
    expect(found.get('sigterm-iptables')).toBe(0);
  });

  it('mode switch iptables → ipvs removes the iptables-mode chains; IPVS serves again', () => {
    expect(found.get('switch-to-ipvs'), context()).toEqual({ iptablesChains: 0, sets: true });
    expect(keys(found.get('ipvs-again')), context()).toEqual(['pod-a']);
    expect(found.get('sigterm-ipvs2')).toBe(0);
  });

  it('--cleanup removes virtual servers, kube-ipvs0, ipsets and chains', () => {
    expect(found.get('cleanup-exit'), context()).toBe(0);
    expect(found.get('cleanup'), context()).toEqual({ servers: [], link: false, sets: '', rules: 0 });
  });
});
