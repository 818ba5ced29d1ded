/**
 * IPVS sync benchmark (issue 9) in Debian's cloud kernel under qemu (the build machine's kernel
 * has no IPVS): 1k and 10k services × 10 endpoints — the initial sync (every
 * virtual and real server created through netlink), a no-change resync (read back + diff), and a
 * sync after one EndpointSlice changes. Baselines, in the same guest and run: `ipvsadm -R`
 * loading the same table (the reference tool, one netlink request per entry) for the initial
 * sync, and `ipvsadm -Sn` reading it back for the resyncs (3 rounds, interleaved with the
 * no-change resyncs; medians reported, every round in the description). TCG emulation makes every figure
 * slower than on real hardware; the ratios are what carries over.
 *
 * The guest's clock counts instructions (runGuest's icount) unless --wall-clock is given.
 *
 *   npm run build && npm run build:bench && node dist-bench/bench/proxy-ipvs-qemu.js [sizes, default 1000,10000] [--wall-clock]
 */
import { buildGuest, runGuest } from './lib/qemu.js';
import { onTerminate, reportFigure } from './lib/report.js';

const GUEST_MARK = 'KNODE-GUEST-FIGURE ';

const guestScript = (sizes: number[]) => `
import { execFileSync } from 'node:child_process';
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
const flag = (vs) => ({ TCP: '-t', UDP: '-u', SCTP: '--sctp-service' })[vs.protocol];
const ipvsadm = (args, input) => execFileSync('ipvsadm', args, { input, maxBuffer: 512 * 1024 * 1024, stdio: ['pipe', 'pipe', 'inherit'] });
const ipvs = await NetlinkIpvs.open();
for (const count of ${JSON.stringify(sizes)}) {
  const table = desiredIpvs(objects(count, 0), { scheduler: 'rr', nodeIPs: [] });
  let t = performance.now();
  const first = await syncIpvs(ipvs, table, owned);
  const initial = performance.now() - t;
  // no-change resync and ipvsadm -Sn of the same table, interleaved (the first round runs cold code)
  const resyncs = [], saves = [];
  let resyncOps = 0;
  for (let round = 0; round < 3; round++) {
    t = performance.now();
    resyncOps += (await syncIpvs(ipvs, table, owned)).ops.length;
    resyncs.push(performance.now() - t);
    t = performance.now();
    const saved = ipvsadm(['-Sn']).toString().split('\\n').filter(Boolean).length;
    saves.push(performance.now() - t);
    if (saved !== table.size * 11) throw new Error('ipvsadm -Sn read back ' + saved + ' entries');
  }
  t = performance.now();
  const changed = await syncIpvs(ipvs, desiredIpvs(objects(count, 1), { scheduler: 'rr', nodeIPs: [] }), owned);
  const one = performance.now() - t;
  await syncIpvs(ipvs, new Map(), owned);
  const lines = [];
  for (const { vs, dests } of table.values()) {
    lines.push('-A ' + flag(vs) + ' ' + vs.address + ':' + vs.port + ' -s ' + vs.scheduler + (vs.persistence > 0 ? ' -p ' + vs.persistence : ''));
    for (const rs of dests) lines.push('-a ' + flag(vs) + ' ' + vs.address + ':' + vs.port + ' -r ' + rs.address + ':' + rs.port + ' -m -w ' + rs.weight);
  }
  t = performance.now();
  ipvsadm(['-R'], lines.join('\\n') + '\\n');
  const restore = performance.now() - t;
  ipvsadm(['-C']);
  console.log('${GUEST_MARK}' + JSON.stringify({ count, initial, initialOps: first.ops.length, resyncs, resyncOps, one, oneOps: changed.ops.length, failures: first.failures.length + changed.failures.length, restore, saves, entries: lines.length }));
}
ipvs.close();
`;

interface GuestFigures {
  count: number;
  initial: number;
  initialOps: number;
  resyncs: number[];
  resyncOps: number;
  one: number;
  oneOps: number;
  failures: number;
  restore: number;
  saves: number[];
  entries: number;
}

const sizeLabel = (count: number) => (count % 1000 === 0 ? `${count / 1000}k` : String(count));

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

function report(g: GuestFigures, icount: boolean): void {
  const resync = median(g.resyncs);
  const save = median(g.saves);
  const ratios = g.resyncs.map((value, index) => value / g.saves[index]!).sort((a, b) => a - b);
  const rounds = `rounds (resync / ipvsadm -Sn ms): ${g.resyncs.map((value, index) => `${value.toFixed(0)}/${g.saves[index]!.toFixed(0)}`).join(', ')}; ratio min/median/max ${ratios.map((ratio) => ratio.toFixed(2)).join('/')}`;
  console.log(
    `${g.count} services x 10 endpoints (qemu TCG, ${icount ? 'icount' : 'wall clock'}): initial sync ${g.initialOps} ops in ${g.initial.toFixed(0)} ms (ipvsadm -R of the same ${g.entries} entries ${g.restore.toFixed(0)} ms); ` +
      `no-change resync ${g.resyncOps} ops, median ${resync.toFixed(0)} ms (ipvsadm -Sn read-back median ${save.toFixed(0)} ms; ${rounds}); one changed EndpointSlice ${g.oneOps} ops in ${g.one.toFixed(0)} ms; failures ${g.failures}`,
  );
  if (g.failures > 0) throw new Error(`${g.failures} IPVS operations failed at ${g.count} services`);
  if (g.resyncOps > 0) throw new Error(`a no-change resync made ${g.resyncOps} changes at ${g.count} services`);
  const size = `${sizeLabel(g.count)} services`;
  const clock = icount ? 'icount: guest time = executed instructions, 1 ns each, independent of host load' : 'wall clock';
  const description = `${g.count} services × 10 endpoints, Debian cloud kernel under qemu TCG (1 vCPU, ${clock})`;
  reportFigure({ name: `IPVS initial sync, ${size} (qemu)`, value: g.initial, unit: 'ms', baseline: g.restore, baselineName: 'ipvsadm -R loading the same virtual/real servers, same guest', better: 'lower', description: `${description}; ${g.initialOps} netlink ops` });
  reportFigure({ name: `IPVS no-change resync, ${size} (qemu)`, value: resync, unit: 'ms', baseline: save, baselineName: 'ipvsadm -Sn reading the same table back, same guest (medians of 3 interleaved rounds)', better: 'lower', description: `${description}; ${rounds}` });
  reportFigure({ name: `IPVS sync, 1 slice changed, ${size} (qemu)`, value: g.one, unit: 'ms', baseline: save, baselineName: 'ipvsadm -Sn reading the same table back (the read-back floor of any diffing sync; median of 3)', better: 'lower', description: `${description}; ${g.oneOps} ops applied` });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (mknod for the guest console)');
  const args = process.argv.slice(2);
  // instruction-counted guest time by default (see runGuest); --wall-clock for the host's clock
  const icount = !args.includes('--wall-clock');
  const sizes = (args.find((arg) => !arg.startsWith('--')) ?? '1000,10000').split(',').map(Number);
  if (sizes.some((size) => !Number.isInteger(size) || size <= 0 || size > 65536)) throw new Error('usage: proxy-ipvs-qemu [sizes, comma-separated, ≤ 65536] [--wall-clock]');
  // One guest per size, so that the figures of the smaller sizes survive a time limit on a bigger one.
  for (const size of sizes) {
    const guest = buildGuest(guestScript([size]), '');
    // qemu is a child in this process group: the runner kills the group after a time limit.
    onTerminate(() => guest.cleanup());
    try {
      const output = await runGuest(guest, 3_600_000, 1, { icount });
      if (!output.includes('KNODE-GUEST-EXIT 0')) throw new Error(`guest failed:\n${output.slice(-3000)}`);
      const line = output.split('\n').find((text) => text.includes(GUEST_MARK));
      if (!line) throw new Error(`guest reported no figures:\n${output.slice(-3000)}`);
      report(JSON.parse(line.slice(line.indexOf(GUEST_MARK) + GUEST_MARK.length).trim()) as GuestFigures, icount);
    } finally {
      guest.cleanup();
    }
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
