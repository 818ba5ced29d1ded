/**
 * The IPVS dataplane pieces against a real IPVS: Debian's cloud kernel booted under qemu (the
 * build machine's kernel has none). In the guest: the netlink IPVS client creates the virtual
 * servers the model asks for, a second model (endpoint gone, scheduler and affinity changed) is
 * synced by diff, ipvsadm (an independent reader) confirms the table, and HTTP through the
 * virtual IP on a kube-ipvs0 dummy reaches both busybox httpd backends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { prerequisites } from '../helpers/prereq.js';
import { buildGuest, runGuest, type Guest } from '../../bench/lib/qemu.js';

const env = await prerequisites('root', 'command:qemu-system-x86_64', 'command:cpio', 'command:ipvsadm', 'command:modprobe', 'command:apt-get', 'command:dpkg');
const repo = join(import.meta.dirname, '..', '..');

const guestScript = `
import http from 'node:http';
import { NetlinkIpvs } from './dist/proxy/ipvs/netlink-ipvs.js';
import { desiredIpvs } from './dist/proxy/ipvs/diff.js';
import { syncIpvs, readIpvs } from './dist/proxy/ipvs/syncer.js';
import { buildProxyModel } from './dist/proxy/model.js';

const out = (key, value) => console.log('KNODE-RESULT ' + JSON.stringify({ key, value }));
const svc = (affinity) => ({ metadata: { namespace: 'ns1', name: 'web' }, spec: { clusterIP: '10.96.0.10', type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }], ...(affinity ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 120 } } } : {}) } });
const slice = (ips) => ({ addressType: 'IPv4', metadata: { namespace: 'ns1', name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } }, ports: [{ name: 'http', port: 80 }], endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })) });
const get = () => new Promise((resolve) => {
  const request = http.get({ host: '10.96.0.10', port: 80, path: '/', agent: false, timeout: 5000 }, (response) => {
    let body = '';
    response.on('data', (chunk) => (body += chunk));
    response.on('end', () => resolve(body.trim()));
  });
  request.on('error', (error) => resolve('error: ' + error.message));
  request.on('timeout', () => request.destroy(new Error('timeout')));
});
const owned = (address) => address.startsWith('10.96.') || address === '192.168.90.1';

const ipvs = await NetlinkIpvs.open();
const first = desiredIpvs(buildProxyModel([svc(false)], [slice(['10.244.0.2', '10.244.0.3'])], 'guest'), { scheduler: 'rr', nodeIPs: ['192.168.90.1'] });
const r1 = await syncIpvs(ipvs, first, owned);
out('first-ops', r1.ops.map((op) => op.op));
out('first-failures', r1.failures.map((f) => String(f.error?.cause?.message ?? f.error)));
const table = await readIpvs(ipvs, owned);
out('first-table', [...table.values()].map((e) => ({ vs: e.vs, dests: e.dests.map((d) => d.address + ':' + d.port + '/' + d.weight).sort() })));
const bodies = {};
for (let i = 0; i < 12; i++) { const body = await get(); bodies[body] = (bodies[body] ?? 0) + 1; }
out('bodies', bodies);
const again = await syncIpvs(ipvs, first, owned);
out('resync-ops', again.ops.length);
const second = desiredIpvs(buildProxyModel([svc(true)], [slice(['10.244.0.2'])], 'guest'), { scheduler: 'sh', nodeIPs: [] });
const r2 = await syncIpvs(ipvs, second, owned);
out('second-ops', r2.ops.map((op) => op.op + ' ' + op.vs.address + ':' + op.vs.port + (op.rs ? ' ' + op.rs.address + '/' + op.rs.weight : '')));
out('second-failures', r2.failures.map((f) => String(f.error?.cause?.message ?? f.error)));
const after = await readIpvs(ipvs, owned);
out('second-table', [...after.values()].map((e) => ({ vs: e.vs, dests: e.dests.map((d) => d.address + ':' + d.port + '/' + d.weight).sort() })));
ipvs.close();
`;

const setup = [
  'ip link add kube-ipvs0 type dummy && ip addr add 10.96.0.10/32 dev kube-ipvs0 && ip link set kube-ipvs0 up',
  'ip addr add 10.244.0.2/32 dev lo; ip addr add 10.244.0.3/32 dev lo; ip addr add 192.168.90.1/32 dev lo',
  'mkdir -p /www/a /www/b; echo pod-a > /www/a/index.html; echo pod-b > /www/b/index.html',
  'httpd -p 10.244.0.2:80 -h /www/a; httpd -p 10.244.0.3:80 -h /www/b',
].join('\n');

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

describe.skipIf(env.skip)('IPVS through netlink, in a qemu guest with Debian cloud kernel', () => {
  let guest: Guest | undefined;
  let output = '';

  beforeAll(async () => {
    if (!existsSync(join(repo, 'dist', 'proxy', 'ipvs', 'netlink-ipvs.js'))) throw new Error('run "npm run build" first (the guest runs dist/)');
    guest = buildGuest(guestScript, setup);
    output = await runGuest(guest, 240_000);
    if (process.env.KNODE_SHOW_GUEST) console.log(output);
  }, 300_000);

  afterAll(() => guest?.cleanup());

  it('creates the virtual servers and real servers the model asks for (read back by netlink and ipvsadm)', () => {
    const found = results(output);
    expect(output, output.slice(-4000)).toContain('KNODE-GUEST-EXIT 0');
    expect(found.get('first-failures')).toEqual([]);
    const table = found.get('first-table') as { vs: { address: string; port: number; scheduler: string }; dests: string[] }[];
    expect(table.map((entry) => `${entry.vs.address}:${entry.vs.port} ${entry.vs.scheduler}`).sort()).toEqual(['10.96.0.10:80 rr', '192.168.90.1:30080 rr']);
    for (const entry of table) expect(entry.dests).toEqual(['10.244.0.2:80/1', '10.244.0.3:80/1']);
    const ipvsadm = output.slice(output.indexOf('KNODE-IPVSADM-BEGIN'), output.indexOf('KNODE-IPVSADM-END'));
    expect(ipvsadm).toMatch(/TCP\s+10\.96\.0\.10:80 sh persistent 120/);
    expect(ipvsadm).toMatch(/->\s+10\.244\.0\.2:80\s+Masq\s+1/);
  });

  it('traffic to the virtual IP reaches both endpoints', () => {
    const bodies = results(output).get('bodies') as Record<string, number>;
    expect(Object.keys(bodies).sort()).toEqual(['pod-a', 'pod-b']);
  });

  it('a second sync with the same model changes nothing; a changed model is applied by diff', () => {
    const found = results(output);
    expect(found.get('resync-ops')).toBe(0);
    expect(found.get('second-failures')).toEqual([]);
    const ops = found.get('second-ops') as string[];
    expect(ops).toContain('update-service 10.96.0.10:80');
    expect(ops).toContain('delete-service 192.168.90.1:30080');
    // pod-b served connections a moment ago: graceful termination sets weight 0 first (or deletes it if none are left)
    expect(ops.some((op) => /^(update-dest 10\.96\.0\.10:80 10\.244\.0\.3\/0|delete-dest 10\.96\.0\.10:80 10\.244\.0\.3\/1)$/.test(op))).toBe(true);
    const table = found.get('second-table') as { vs: { address: string; scheduler: string; persistence: number }; dests: string[] }[];
    expect(table).toHaveLength(1);
    expect(table[0]!.vs).toMatchObject({ address: '10.96.0.10', scheduler: 'sh', persistence: 120 });
    expect(table[0]!.dests.filter((dest) => dest.endsWith('/1'))).toEqual(['10.244.0.2:80/1']);
  });
});
