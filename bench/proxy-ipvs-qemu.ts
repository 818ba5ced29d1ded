/**
 * IPVS sync benchmark (issue 9) in Debian's cloud kernel under qemu (the build machine's kernel
 * has no IPVS): 1k and 10k services × 10 endpoints — the initial sync (every virtual and real
 * server created through netlink), a no-change resync (read back + diff), and a sync after one
 * EndpointSlice changes. TCG emulation makes every figure slower than on real hardware; the
 * ratios between them are what carries over.
 *
 *   npm run build && node dist/bench/proxy-ipvs-qemu.js [sizes, default 1000,10000]
 */
import { buildGuest, runGuest } from '../test/integration/proxy-qemu.js';

const guestScript = (sizes: number[]) => `
import { NetlinkIpvs } from './dist/proxy/ipvs/netlink-ipvs.js';
import { desiredIpvs } from './dist/proxy/ipvs/diff.js';
import { syncIpvs } from './dist/proxy/ipvs/syncer.js';
import { buildProxyModel } from './dist/proxy/model.js';
const objects = (count, generation) => {
  const services = [], slices = [];
  for (let i = 0; i < count; i++) {
    services.push({ metadata: { namespace: 'bench', name: 's' + i }, spec: { clusterIP: '10.96.' + (i >> 8) + '.' + (i & 255), ports: [{ name: 'http', port: 80 }] } });
    slices.push({ addressType: 'IPv4', metadata: { namespace: 'bench', name: 's' + i + '-x', labels: { 'kubernetes.io/service-name': 's' + i } }, ports: [{ name: 'http', port: 8080 + (i === 7 ? generation : 0) }], endpoints: Array.from({ length: 10 }, (_, e) => ({ addresses: ['10.' + (100 + e) + '.' + (i >> 8) + '.' + (i & 255)], conditions: { ready: true } })) });
  }
  return buildProxyModel(services, slices, 'n');
};
const owned = (address) => address.startsWith('10.96.');
const ipvs = await NetlinkIpvs.open();
for (const count of ${JSON.stringify(sizes)}) {
  const table = desiredIpvs(objects(count, 0), { scheduler: 'rr', nodeIPs: [] });
  let t = performance.now();
  const first = await syncIpvs(ipvs, table, owned);
  const initial = performance.now() - t;
  t = performance.now();
  const again = await syncIpvs(ipvs, table, owned);
  const resync = performance.now() - t;
  t = performance.now();
  const changed = await syncIpvs(ipvs, desiredIpvs(objects(count, 1), { scheduler: 'rr', nodeIPs: [] }), owned);
  const one = performance.now() - t;
  console.log('KNODE-BENCH ' + count + ' services x 10 endpoints (qemu TCG): initial sync ' + first.ops.length + ' ops in ' + initial.toFixed(0) + ' ms; no-change resync ' + again.ops.length + ' ops in ' + resync.toFixed(0) + ' ms; one changed EndpointSlice ' + changed.ops.length + ' ops in ' + one.toFixed(0) + ' ms; failures ' + (first.failures.length + changed.failures.length));
  await syncIpvs(ipvs, new Map(), owned);
}
ipvs.close();
`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (mknod for the guest console)');
  const sizes = (process.argv[2] ?? '1000,10000').split(',').map(Number);
  const guest = buildGuest(guestScript(sizes), '');
  try {
    const output = await runGuest(guest, 3_600_000);
    const lines = output.split('\n').filter((line) => line.includes('KNODE-BENCH') || line.includes('Error'));
    if (!output.includes('KNODE-GUEST-EXIT 0')) throw new Error(`guest failed:\n${output.slice(-3000)}`);
    for (const line of lines) console.log(line.replace(/^.*KNODE-BENCH /, '').trim());
  } finally {
    guest.cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
