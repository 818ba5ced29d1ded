/**
 * Benchmark of the iptables proxier (issue 9): for 1k and 10k services × 10 endpoints,
 * the time knode takes to build the restore payload next to the time `iptables-restore` takes
 * to load that same payload (the kernel/userspace floor), and the wall time of a partial sync
 * after one EndpointSlice changes at 10k services (change → rules in the kernel).
 * Every restore runs inside a temporary test netns (knt-bench-*), never the root namespace.
 *
 *   npm run build && node dist/bench/proxy-iptables.js [sizes, default 1000,10000] [nft|legacy|auto]
 *
 * Note: with the nft backend, `iptables-restore --noflush` (which the proxy must use, so as not
 * to flush other components' rules) grows superlinearly with the payload on this machine
 * (iptables 1.8.9): ~1.2 s without --noflush vs ~14–29 s with it at 1k services.
 */
import { randomBytes } from 'node:crypto';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { run } from '../lib/exec.js';
import { createLogger } from '../lib/log.js';
import { buildProxyModel } from '../proxy/model.js';
import { buildRestorePayload } from '../proxy/iptables/rules.js';
import { CommandIptables, detectBackend } from '../proxy/iptables/iptables.js';
import { IptablesProxier } from '../proxy/iptables/proxier.js';
import { ChangeTracker } from '../proxy/tracker.js';
import { FakeConntrack } from '../proxy/conntrack.js';
import { ProxyMetrics } from '../proxy/metrics.js';

let backendChoice = 'auto';
const backendFor = async (prefix: string[]) => (backendChoice === 'auto' ? detectBackend(prefix) : (backendChoice as 'nft' | 'legacy'));
const restoreTimeoutMs = 1_800_000;

const rules = { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 };

function objects(count: number, endpointsPer: number): { services: V1Service[]; slices: V1EndpointSlice[] } {
  const services: V1Service[] = [];
  const slices: V1EndpointSlice[] = [];
  for (let i = 0; i < count; i++) {
    const name = `svc-${i}`;
    services.push({ metadata: { namespace: 'bench', name }, spec: { type: 'NodePort', clusterIP: `10.96.${i >> 8}.${i & 255}`, ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30000 + (i % 2700) }] } });
    slices.push(endpointSlice(name, i, endpointsPer, 0));
  }
  return { services, slices };
}

function endpointSlice(name: string, i: number, endpointsPer: number, generation: number): V1EndpointSlice {
  return {
    addressType: 'IPv4',
    metadata: { namespace: 'bench', name: `${name}-x`, labels: { 'kubernetes.io/service-name': name } },
    ports: [{ name: 'http', port: 8080 + generation, protocol: 'TCP' }],
    endpoints: Array.from({ length: endpointsPer }, (_, e) => ({ addresses: [`10.${100 + (e % 100)}.${i >> 8}.${i & 255}`], conditions: { ready: true } })),
  };
}

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

async function withNetns<T>(body: (name: string) => Promise<T>): Promise<T> {
  const name = `knt-bench-${randomBytes(3).toString('hex')}`;
  await run(['ip', 'netns', 'add', name]);
  try {
    return await body(name);
  } finally {
    await run(['ip', 'netns', 'del', name], { allowFailure: true });
  }
}

async function benchSize(count: number): Promise<void> {
  const { services, slices } = objects(count, 10);
  let start = process.hrtime.bigint();
  const model = buildProxyModel(services, slices, 'bench-node');
  const out = buildRestorePayload({ model, options: rules, changed: 'all', existingChains: new Set() });
  const generate = ms(start);
  const lines = out.payload.split('\n').length;
  await withNetns(async (netns) => {
    const prefix = ['ip', 'netns', 'exec', netns];
    const iptables = new CommandIptables(await backendFor(prefix), prefix, restoreTimeoutMs);
    start = process.hrtime.bigint();
    await iptables.restore(out.payload);
    const restore = ms(start);
    console.log(`${count} services x 10 endpoints: ${lines} lines; generate ${generate.toFixed(0)} ms, iptables-${iptables.backend}-restore ${restore.toFixed(0)} ms, generate/restore = ${(generate / restore).toFixed(3)}`);
  });
}

/** Measures the time spent in iptables-restore itself (the kernel/userspace floor of a sync). */
class TimedIptables extends CommandIptables {
  lastRestoreMs = 0;
  override async restore(payload: string): Promise<void> {
    const start = process.hrtime.bigint();
    await super.restore(payload);
    this.lastRestoreMs = ms(start);
  }
}

async function benchPartial(count: number): Promise<void> {
  const { services, slices } = objects(count, 10);
  await withNetns(async (netns) => {
    const prefix = ['ip', 'netns', 'exec', netns];
    const iptables = new TimedIptables(await backendFor(prefix), prefix, restoreTimeoutMs);
    const tracker = new ChangeTracker();
    const proxier = new IptablesProxier({ iptables, conntrack: new FakeConntrack(), tracker, nodeName: 'bench-node', rules, syncPeriodMs: 3_600_000, metrics: new ProxyMetrics(), log: createLogger('bench', 'silent') });
    for (const service of services) tracker.upsertService(service);
    for (const slice of slices) tracker.upsertSlice(slice);
    let start = process.hrtime.bigint();
    await proxier.sync();
    const full = ms(start);
    const times: number[] = [];
    const restores: number[] = [];
    for (let round = 1; round <= 3; round++) {
      start = process.hrtime.bigint();
      tracker.upsertSlice(endpointSlice('svc-7', 7, 10, round));
      const report = await proxier.sync();
      times.push(ms(start));
      restores.push(iptables.lastRestoreMs);
      if (report.full || report.writtenPorts !== 1) throw new Error(`expected a partial sync of one service, got ${JSON.stringify(report)}`);
    }
    const check = await run([...prefix, `iptables-${iptables.backend}-save`, '-t', 'nat']);
    if (!check.stdout.includes('--to-destination 10.100.0.7:8083')) throw new Error('partial sync did not reach the kernel');
    const median = [...times].sort((a, b) => a - b)[1]!;
    const restoreMedian = [...restores].sort((a, b) => a - b)[1]!;
    console.log(`${count} services: full sync ${full.toFixed(0)} ms; partial sync of one changed EndpointSlice ${times.map((t) => t.toFixed(0)).join('/')} ms (median ${median.toFixed(0)} ms, of which iptables-restore ${restoreMedian.toFixed(0)} ms, knode ${(median - restoreMedian).toFixed(0)} ms), full/partial = ${(full / median).toFixed(1)}x`);
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (it creates a test network namespace)');
  const sizes = (process.argv[2] ?? '1000,10000').split(',').map(Number);
  backendChoice = process.argv[3] ?? 'auto';
  for (const size of sizes) await benchSize(size);
  await benchPartial(Math.max(...sizes));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
