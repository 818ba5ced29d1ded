/**
 * Benchmark of the nftables proxier (issue 21), everything inside one temporary test netns
 * (knt-bench-nft-*; the script re-executes itself there with `ip netns exec`, because a netlink
 * socket belongs to the netns of the process that opens it):
 *  - full sync of N services × 10 endpoints through NftablesProxier (model, readback of the
 *    table, netlink batches) next to `nft -f` loading the very same ruleset (as `nft list table
 *    ip kube-proxy` prints it: kube-proxy's nftables mode writes that text through nft) and
 *    next to knode's iptables-legacy full sync of the same Services; interleaved rounds;
 *  - one Service changed among N: EndpointSlice event (tracker) → rules in the kernel, next to
 *    the iptables-legacy partial sync of the same change;
 *  - optionally 100k services × 2 endpoints: full sync time and the proxy's memory.
 *
 *   npm run build && npm run build:bench && node dist-bench/bench/proxy-nftables.js [SIZES] [--rounds N] [--big 100000]
 *   (default 1000,10000; nft -f at 10k is skipped unless --nft-f-max 10000: nft 1.0.6 takes
 *   minutes there)
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { spawn } from 'node:child_process';
import { readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { run } from '../lib/exec.js';
import { createLogger } from '../lib/log.js';
import { ChangeTracker } from '../proxy/tracker.js';
import { FakeConntrack } from '../proxy/conntrack.js';
import { ProxyMetrics } from '../proxy/metrics.js';
import { NftablesProxier, cleanupNftables } from '../proxy/nftables/proxier.js';
import { IptablesProxier, cleanupIptables } from '../proxy/iptables/proxier.js';
import { CommandIptables } from '../lib/netfilter/iptables.js';
import { NftSocket } from '../lib/netfilter/nftables/socket.js';
import { onTerminate, reportFigure, roundRatios } from './lib/report.js';

const rules = { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 };
const log = createLogger('bench', 'silent');
const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const sizeLabel = (count: number) => (count % 1000 === 0 ? `${count / 1000}k` : String(count));
const stats = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return { min: sorted[0] ?? NaN, median: sorted[Math.floor(sorted.length / 2)] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
};
const fmt = (values: number[]) => {
  const s = stats(values);
  return `min ${s.min.toFixed(0)} / median ${s.median.toFixed(0)} / max ${s.max.toFixed(0)} ms`;
};
const load = () => loadavg().map((value) => value.toFixed(2)).join(' ');

function endpointSlice(name: string, i: number, endpointsPer: number, generation: number): V1EndpointSlice {
  return {
    addressType: 'IPv4',
    metadata: { namespace: 'bench', name: `${name}-x`, labels: { 'kubernetes.io/service-name': name } },
    ports: [{ name: 'http', port: 8080 + generation, protocol: 'TCP' }],
    endpoints: Array.from({ length: endpointsPer }, (_, e) => ({ addresses: [`10.${100 + (e % 100)}.${(i >> 8) & 255}.${i & 255}`], conditions: { ready: true } })),
  };
}

function objects(count: number, endpointsPer: number, type: 'NodePort' | 'ClusterIP'): { services: V1Service[]; slices: V1EndpointSlice[] } {
  const services: V1Service[] = [];
  const slices: V1EndpointSlice[] = [];
  for (let i = 0; i < count; i++) {
    const name = `svc-${i}`;
    const port = type === 'NodePort' ? { name: 'http', port: 80, protocol: 'TCP', nodePort: 30000 + (i % 2700) } : { name: 'http', port: 80, protocol: 'TCP' };
    services.push({ metadata: { namespace: 'bench', name }, spec: { type, clusterIP: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, ports: [port] } });
    slices.push(endpointSlice(name, i, endpointsPer, 0));
  }
  return { services, slices };
}

function fill(tracker: ChangeTracker, count: number, endpointsPer: number, type: 'NodePort' | 'ClusterIP'): void {
  const { services, slices } = objects(count, endpointsPer, type);
  for (const service of services) tracker.upsertService(service);
  for (const slice of slices) tracker.upsertSlice(slice);
}

const newNft = (nft: NftSocket, tracker: ChangeTracker) =>
  new NftablesProxier({ nft, conntrack: new FakeConntrack(), tracker, nodeName: 'bench-node', rules, syncPeriodMs: 3_600_000, metrics: new ProxyMetrics(), log });
const newIptables = (iptables: CommandIptables, tracker: ChangeTracker) =>
  new IptablesProxier({ iptables, conntrack: new FakeConntrack(), tracker, nodeName: 'bench-node', rules, syncPeriodMs: 3_600_000, metrics: new ProxyMetrics(), log });

async function timed(what: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await what();
  return ms(start);
}

async function benchSize(count: number, rounds: number, nftFMax: number): Promise<void> {
  const nft = NftSocket.open();
  const iptables = new CommandIptables('legacy', [], 1_800_000);
  const knode: number[] = [];
  const legacy: number[] = [];
  const nftF: number[] = [];
  const file = join(tmpdir(), `knode-bench-nft-${process.pid}.nft`);
  const loadBefore = load();
  try {
    for (let round = 0; round < rounds; round++) {
      await cleanupNftables(nft);
      const tracker = new ChangeTracker();
      fill(tracker, count, 10, 'NodePort');
      knode.push(await timed(() => newNft(nft, tracker).sync()));
      if (count <= nftFMax) {
        writeFileSync(file, (await run(['nft', 'list', 'table', 'ip', 'kube-proxy'], { timeoutMs: 600_000 })).stdout);
        await cleanupNftables(nft);
        nftF.push(await timed(() => run(['nft', '-f', file], { timeoutMs: 900_000 })));
        await cleanupNftables(nft);
      }
      await cleanupIptables(iptables);
      const itTracker = new ChangeTracker();
      fill(itTracker, count, 10, 'NodePort');
      legacy.push(await timed(() => newIptables(iptables, itTracker).sync()));
      await cleanupIptables(iptables);
      console.log(`  round ${round + 1}: nftables ${knode.at(-1)?.toFixed(0)} ms, nft -f ${nftF.at(-1)?.toFixed(0) ?? '-'} ms, iptables-legacy ${legacy.at(-1)?.toFixed(0)} ms (load ${load()})`);
    }
    // one Service changed among N (kept programmed): event → kernel, nftables vs iptables-legacy
    const tracker = new ChangeTracker();
    fill(tracker, count, 10, 'NodePort');
    const proxier = newNft(nft, tracker);
    await proxier.sync();
    const itTracker = new ChangeTracker();
    fill(itTracker, count, 10, 'NodePort');
    const itProxier = newIptables(iptables, itTracker);
    await itProxier.sync();
    const change: number[] = [];
    const itChange: number[] = [];
    for (let round = 1; round <= Math.max(rounds, 3); round++) {
      change.push(await timed(async () => {
        tracker.upsertSlice(endpointSlice('svc-7', 7, 10, round));
        const report = await proxier.sync();
        if (report.full || report.changedPorts !== 1) throw new Error(`expected a partial sync of one service, got ${JSON.stringify(report)}`);
      }));
      itChange.push(await timed(async () => {
        itTracker.upsertSlice(endpointSlice('svc-7', 7, 10, round));
        await itProxier.sync();
      }));
    }
    const check = (await run(['nft', 'list', 'map', 'ip', 'kube-proxy', 'service-ips'], { timeoutMs: 600_000 })).stdout;
    if (!check.includes('10.96.0.7 . tcp . 80')) throw new Error('the partial sync did not reach the kernel');
    await cleanupNftables(nft);
    await cleanupIptables(iptables);
    const loadAfter = load();
    const description = `${count} services × 10 endpoints, NodePort; ${rounds} interleaved rounds; load average before ${loadBefore}, after ${loadAfter}`;
    console.log(`${count} services × 10 endpoints: knode nftables full sync ${fmt(knode)}; nft -f of the same ruleset ${nftF.length ? fmt(nftF) : 'skipped'}; knode iptables-legacy full sync ${fmt(legacy)}`);
    console.log(`  one Service changed among ${count}: nftables ${fmt(change)}; iptables-legacy ${fmt(itChange)}; load ${loadBefore} → ${loadAfter}`);
    const ratios = knode.map((value, i) => value / (legacy[i] ?? NaN));
    console.log(`  ratio nftables/iptables-legacy full sync per round: ${ratios.map((r) => r.toFixed(3)).join(' ')}`);
    if (nftF.length) console.log(`  ratio nftables/nft -f per round: ${knode.slice(0, nftF.length).map((value, i) => (value / (nftF[i] ?? NaN)).toFixed(4)).join(' ')}`);
    reportFigure({ name: `nftables full sync, ${sizeLabel(count)} services`, value: stats(knode).median, unit: 'ms', baseline: stats(legacy).median, baselineName: 'knode iptables-legacy full sync of the same Services (median)', better: 'lower', description: `${description}; knode ${fmt(knode)}, legacy ${fmt(legacy)}`, roundRatios: roundRatios(knode, legacy) });
    if (nftF.length) reportFigure({ name: `nftables full sync vs nft -f, ${sizeLabel(count)} services`, value: stats(knode).median, unit: 'ms', baseline: stats(nftF).median, baselineName: 'nft -f of the same ruleset (as kube-proxy\'s nftables mode loads it)', better: 'lower', description: `${description}; nft -f ${fmt(nftF)}`, roundRatios: roundRatios(knode, nftF) });
    reportFigure({ name: `nftables one Service changed, ${sizeLabel(count)} services`, value: stats(change).median, unit: 'ms', baseline: stats(itChange).median, baselineName: 'knode iptables-legacy partial sync of the same change (median)', better: 'lower', description: `EndpointSlice event → kernel; ${description}; nftables ${fmt(change)}, legacy ${fmt(itChange)}`, roundRatios: roundRatios(change, itChange) });
  } finally {
    rmSync(file, { force: true });
    nft.close();
  }
}

async function benchBig(count: number): Promise<void> {
  const nft = NftSocket.open();
  try {
    await cleanupNftables(nft);
    const before = process.memoryUsage();
    const tracker = new ChangeTracker();
    fill(tracker, count, 2, 'ClusterIP');
    const proxier = newNft(nft, tracker);
    const loadBefore = load();
    const full = await timed(() => proxier.sync());
    const after = process.memoryUsage();
    const again = await timed(() => (proxier.requestFullSync(), proxier.sync()));
    const mib = (bytes: number) => bytes / 1024 / 1024;
    console.log(`${count} services × 2 endpoints: full sync ${full.toFixed(0)} ms, full resync with readback (nothing to repair) ${again.toFixed(0)} ms; RSS ${mib(after.rss).toFixed(0)} MiB (before ${mib(before.rss).toFixed(0)}), heap ${mib(after.heapUsed).toFixed(0)} MiB; load ${loadBefore} → ${load()}`);
    reportFigure({ name: `nftables full sync, ${sizeLabel(count)} services × 2`, value: full, unit: 'ms', baseline: null, baselineName: 'none: iptables modes do not finish at this size in the time limit', better: 'lower', description: `ClusterIP, one round; resync with readback ${again.toFixed(0)} ms` });
    reportFigure({ name: `nftables proxy RSS, ${sizeLabel(count)} services × 2`, value: mib(after.rss), unit: 'MiB', baseline: mib(before.rss), baselineName: 'RSS of the same process before the Services were added', better: 'lower' });
    await cleanupNftables(nft);
  } finally {
    nft.close();
  }
}

interface Args {
  sizes: number[];
  rounds: number;
  big: number;
  nftFMax: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sizes: [1000, 10000], rounds: 3, big: 0, nftFMax: 1000 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const value = () => {
      const next = Number(argv[++i]);
      if (!Number.isInteger(next) || next < 0) throw new Error(`${arg}: expected a number`);
      return next;
    };
    if (arg === '--rounds') args.rounds = Math.max(3, value());
    else if (arg === '--big') args.big = value();
    else if (arg === '--nft-f-max') args.nftFMax = value();
    else {
      args.sizes = arg.split(',').map(Number);
      if (args.sizes.some((size) => !Number.isInteger(size) || size <= 0 || size > 60_000)) throw new Error(`bad sizes ${JSON.stringify(arg)}`);
    }
  }
  return args;
}

async function inside(): Promise<void> {
  // network safety: never program the root namespace, whatever the environment says
  if (readlinkSync('/proc/self/ns/net') === process.env.KNODE_BENCH_PARENT_NS) throw new Error('KNODE_BENCH_NETNS is set but this process is still in the network namespace it was started from');
  const args = parseArgs(process.argv.slice(2));
  for (const size of args.sizes) await benchSize(size, args.rounds, args.nftFMax);
  if (args.big > 0) await benchBig(args.big);
}

async function outside(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (it creates a test network namespace)');
  parseArgs(process.argv.slice(2));
  const name = `knt-bench-nft-${randomBytes(3).toString('hex')}`;
  onTerminate(() => run(['ip', 'netns', 'del', name], { allowFailure: true }));
  await run(['ip', 'netns', 'add', name]);
  try {
    const child = spawn('ip', ['netns', 'exec', name, process.execPath, '--max-old-space-size=4096', process.argv[1] ?? '', ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, KNODE_BENCH_NETNS: name, KNODE_BENCH_PARENT_NS: readlinkSync('/proc/self/ns/net') } });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    if (code !== 0) throw new Error(`the benchmark inside ${name} exited with ${code}`);
  } finally {
    await run(['ip', 'netns', 'del', name], { allowFailure: true });
  }
}

(process.env.KNODE_BENCH_NETNS ? inside() : outside()).catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
