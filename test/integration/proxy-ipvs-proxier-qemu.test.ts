/**
 * The IPVS proxier as a whole against a real kernel with IPVS (Debian's cloud kernel under
 * qemu; the guest has no network device): Services and EndpointSlices go through the tracker,
 * the proxier binds service IPs to kube-ipvs0, fills the ipset sets, writes the fixed iptables
 * rules and syncs IPVS by diff; HTTP from the guest to the ClusterIP and to a NodePort on the
 * node address reaches the busybox httpd backends; endpoint and service removal are applied;
 * the cleanup removes everything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { prerequisites } from '../helpers/prereq.js';
import { buildGuest, runGuest, type Guest } from '../../bench/lib/qemu.js';

const env = await prerequisites('root', 'command:qemu-system-x86_64', 'command:cpio', 'command:ipvsadm', 'command:modprobe', 'command:apt-get', 'command:dpkg', 'command:ipset', 'command:conntrack', 'command:iptables-nft');
const repo = join(import.meta.dirname, '..', '..');

const guestScript = `
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { ChangeTracker } from './dist/proxy/tracker.js';
import { IpvsProxier } from './dist/proxy/ipvs/proxier.js';
import { NetlinkIpvs } from './dist/proxy/ipvs/netlink-ipvs.js';
import { CommandIpvsHost } from './dist/proxy/ipvs/host.js';
import { CommandIptables, detectBackend } from './dist/lib/netfilter/iptables.js';
import { cleanupIptables } from './dist/proxy/iptables/proxier.js';
import { cleanupIpvs } from './dist/proxy/ipvs/cleanup.js';
import { ConntrackTool } from './dist/proxy/conntrack.js';
import { ProxyMetrics } from './dist/proxy/metrics.js';

const out = (key, value) => console.log('KNODE-RESULT ' + JSON.stringify({ key, value }));
const shell = (command) => { try { return execFileSync('sh', ['-c', command], { encoding: 'utf8' }); } catch (error) { return 'error: ' + error.message; } };
const log = { debug() {}, info() {}, warn(...a) { console.log('WARN', JSON.stringify(a)); }, error() {} };
const svc = { metadata: { namespace: 'ns1', name: 'web' }, spec: { clusterIP: '10.96.0.10', type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] } };
const slice = (ips) => ({ addressType: 'IPv4', metadata: { namespace: 'ns1', name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } }, ports: [{ name: 'http', port: 80 }], endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })) });
const get = (host, port) => new Promise((resolve) => {
  const request = http.get({ host, port, path: '/', agent: false, timeout: 5000 }, (response) => {
    let body = '';
    response.on('data', (chunk) => (body += chunk));
    response.on('end', () => resolve(body.trim()));
  });
  request.on('error', (error) => resolve('error: ' + error.message));
  request.on('timeout', () => request.destroy(new Error('timeout')));
});
const spread = async (host, port, count) => { const hits = {}; for (let i = 0; i < count; i++) { const b = await get(host, port); hits[b] = (hits[b] ?? 0) + 1; } return hits; };

try {
  const backend = await detectBackend();
  out('backend', backend);
  const tracker = new ChangeTracker();
  const ipvs = await NetlinkIpvs.open();
  const iptables = new CommandIptables(backend);
  const proxier = new IpvsProxier({ ipvs, host: new CommandIpvsHost(), iptables, conntrack: new ConntrackTool(), tracker, nodeName: 'guest', scheduler: 'rr', clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14, metrics: new ProxyMetrics(), log });
  tracker.upsertService(svc);
  tracker.upsertSlice(slice(['10.244.0.2', '10.244.0.3']));
  out('sync1', await proxier.sync().then((r) => r.ops, (e) => 'error: ' + e.message + ' / ' + (e.cause?.message ?? '') + ' / ' + (e.cause?.cause?.message ?? '')));
  out('dummy', shell('ip -o -4 addr show dev kube-ipvs0'));
  out('ipset', shell('ipset list KUBE-CLUSTER-IP; ipset list KUBE-NODE-PORT-TCP'));
  out('iptables', shell('iptables-save -t nat'));
  out('cluster-ip', await spread('10.96.0.10', 80, 12));
  out('node-port', await spread('192.168.90.1', 30080, 12));
  out('resync', await proxier.sync().then((r) => r.ops, (e) => 'error: ' + e.message));
  tracker.upsertSlice(slice(['10.244.0.2']));
  await proxier.sync();
  out('after-removal', await spread('10.96.0.10', 80, 8));
  tracker.deleteService(svc);
  await proxier.sync();
  out('after-delete-ipvs', shell('ipvsadm -Ln | grep -c -E "^(TCP|UDP)" || true'));
  out('after-delete-dummy', shell('ip -o -4 addr show dev kube-ipvs0'));
  tracker.upsertService(svc);
  await proxier.sync();
  ipvs.close();
  await cleanupIptables(iptables);
  await cleanupIpvs();
  out('cleanup', { ipvs: shell('ipvsadm -Ln | grep -c -E "^(TCP|UDP)" || true').trim(), link: shell('ip link show kube-ipvs0 2>&1').includes('does not exist') || shell('ip link show kube-ipvs0 2>&1').startsWith('error'), sets: shell('ipset list -n').trim(), rules: shell('iptables-save | grep -c KUBE- || true').trim() });
} catch (error) {
  out('fatal', String(error?.stack ?? error) + ' / ' + String(error?.cause?.message ?? ''));
}
`;

const setup = [
  'ip link add node0 type dummy && ip addr add 192.168.90.1/24 dev node0 && ip link set node0 up',
  'ip addr add 10.244.0.2/32 dev lo; ip addr add 10.244.0.3/32 dev lo',
  'mkdir -p /www/a /www/b; echo pod-a > /www/a/index.html; echo pod-b > /www/b/index.html',
  'httpd -p 10.244.0.2:80 -h /www/a; httpd -p 10.244.0.3:80 -h /www/b',
].join('\n');

const binaries = ['/usr/sbin/iptables', '/usr/sbin/iptables-save', '/usr/sbin/iptables-nft', '/usr/sbin/iptables-nft-restore', '/usr/sbin/iptables-nft-save', '/usr/sbin/iptables-legacy', '/usr/sbin/iptables-legacy-restore', '/usr/sbin/iptables-legacy-save', '/usr/sbin/ipset', '/usr/sbin/conntrack', '/usr/bin/ip'];
const modules = ['nf_tables', 'nft_compat', 'nft_chain_nat', 'nf_nat', 'xt_set', 'xt_mark', 'xt_MASQUERADE', 'xt_addrtype', 'xt_comment', 'xt_conntrack', 'xt_tcpudp', 'ip_set_hash_ipport', 'ip_set_hash_ipportip', 'ip_set_bitmap_port', 'nf_conntrack_netlink', 'iptable_nat', 'iptable_filter'];

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

describe.skipIf(env.skip)('IPVS proxier in a qemu guest with Debian cloud kernel', () => {
  let guest: Guest | undefined;
  let output = '';
  let found = new Map<string, unknown>();

  beforeAll(async () => {
    if (!existsSync(join(repo, 'dist', 'proxy', 'ipvs', 'proxier.js'))) throw new Error('run "npm run build" first (the guest runs dist/)');
    guest = buildGuest(guestScript, setup, { binaries, modules, directories: ['/usr/lib/x86_64-linux-gnu/xtables', '/etc/protocols'], nodeModules: ['prom-client', 'tdigest', 'bintrees', '@opentelemetry/api'] });
    output = await runGuest(guest, 300_000);
    if (process.env.KNODE_SHOW_GUEST) console.log(output);
    found = results(output);
  }, 360_000);

  afterAll(() => guest?.cleanup());

  it('programs kube-ipvs0, the ipsets, the fixed iptables rules and IPVS', () => {
    expect(found.get('fatal'), output.slice(-4000)).toBeUndefined();
    expect(typeof found.get('sync1'), String(found.get('sync1'))).toBe('number');
    expect(found.get('dummy')).toContain('10.96.0.10/32');
    expect(found.get('ipset')).toMatch(/10\.96\.0\.10,tcp:80/);
    expect(found.get('ipset')).toMatch(/30080/);
    expect(found.get('iptables')).toMatch(/--match-set KUBE-CLUSTER-IP dst,dst/);
    expect(found.get('resync')).toBe(0);
  });

  it('ClusterIP and NodePort traffic reach both endpoints', () => {
    expect(Object.keys(found.get('cluster-ip') as object).sort()).toEqual(['pod-a', 'pod-b']);
    expect(Object.keys(found.get('node-port') as object).sort()).toEqual(['pod-a', 'pod-b']);
  });

  it('endpoint removal, service deletion and cleanup are applied', () => {
    expect(Object.keys(found.get('after-removal') as object)).toEqual(['pod-a']);
    expect(String(found.get('after-delete-ipvs')).trim()).toBe('0');
    expect(found.get('after-delete-dummy')).not.toContain('10.96.0.10');
    expect(found.get('cleanup')).toEqual({ ipvs: '0', link: true, sets: '', rules: '0' });
  });
});
