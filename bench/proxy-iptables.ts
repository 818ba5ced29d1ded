/**
 * Benchmark of the iptables proxier (issue 9): for 1k and 10k services × 10 endpoints, a full
 * sync through IptablesProxier (model, payload, iptables-save/-restore, jump rules) next to the
 * bare `iptables-restore --noflush` of the very payload that sync wrote, loaded into a fresh netns
 * (the kernel/userspace floor); then a partial sync after one EndpointSlice changes (change →
 * rules in the kernel) next to the iptables-restore inside it. Every restore runs inside a
 * temporary test netns (knt-bench-*), never the root namespace.
 *
 *   npm run build && npm run build:bench && node dist-bench/bench/proxy-iptables.js [BACKEND:SIZES …]   (default legacy:1000,10000)
 *   e.g. `legacy:1000,10000 nft:1000`; the older form `SIZES [nft|legacy|auto]` still works.
 *
 * Note: with the nft backend, `iptables-restore --noflush` (which the proxy must use, so as not
 * to flush other components' rules) grows superlinearly with the payload on this machine
 * (iptables 1.8.9): seconds at 1k services, and 10k did not finish within 300 s.
 */
import { randomBytes } from 'node:crypto';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { run } from '../lib/exec.js';
import { createLogger } from '../lib/log.js';
import { buildProxyModel } from '../proxy/model.js';
import { buildRestorePayload } from '../proxy/iptables/rules.js';
import { CommandIptables, detectBackend } from '../lib/netfilter/iptables.js';
import { IptablesProxier } from '../proxy/iptables/proxier.js';
import { ChangeTracker } from '../proxy/tracker.js';
import { FakeConntrack } from '../proxy/conntrack.js';
import { ProxyMetrics } from '../proxy/metrics.js';
import { onTerminate, reportFigure, roundRatios } from './lib/report.js';

type BackendChoice = 'nft' | 'legacy' | 'auto';
const backendFor = async (choice: BackendChoice, prefix: string[]) => (choice === 'auto' ? detectBackend(prefix) : choice);
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

const live = new Set<string>();
onTerminate(async () => {
  for (const name of live) await run(['ip', 'netns', 'del', name], { allowFailure: true });
});

async function withNetns<T>(body: (name: string) => Promise<T>): Promise<T> {
  const name = `knt-bench-${randomBytes(3).toString('hex')}`;
  live.add(name);
  await run(['ip', 'netns', 'add', name]);
  try {
    return await body(name);
  } finally {
    await run(['ip', 'netns', 'del', name], { allowFailure: true });
    live.delete(name);
  }
}

const sizeLabel = (count: number) => (count % 1000 === 0 ? `${count / 1000}k` : String(count));

/** Measures the time spent in iptables-restore itself (the kernel/userspace floor of a sync). */
class TimedIptables extends CommandIptables {
  lastRestoreMs = 0;
  lastPayload = '';
  override async restore(payload: string): Promise<void> {
    const start = process.hrtime.bigint();
    await super.restore(payload);
    this.lastRestoreMs = ms(start);
    this.lastPayload = payload;
  }
}

/** Rules generation alone (model + restore payload), no kernel. */
function benchGenerate(count: number): void {
  const { services, slices } = objects(count, 10);
  const start = process.hrtime.bigint();
  const model = buildProxyModel(services, slices, 'bench-node');
  const out = buildRestorePayload({ model, options: rules, changed: 'all', existingChains: new Set() });
  const generate = ms(start);
  console.log(`${count} services x 10 endpoints: ${out.payload.split('\n').length} lines generated in ${generate.toFixed(0)} ms`);
  reportFigure({ name: `iptables rules generation, ${sizeLabel(count)} services`, value: generate, unit: 'ms', baseline: null, baselineName: 'none: pure computation (its share of the full sync below)', better: 'lower', description: `${count} services × 10 endpoints, model + iptables-restore payload` });
}

async function benchSync(count: number, choice: BackendChoice): Promise<void> {
  const { services, slices } = objects(count, 10);
  await withNetns(async (netns) => {
    const prefix = ['ip', 'netns', 'exec', netns];
    const iptables = new TimedIptables(await backendFor(choice, prefix), prefix, restoreTimeoutMs);
    const backend = iptables.backend;
    const tracker = new ChangeTracker();
    const proxier = new IptablesProxier({ iptables, conntrack: new FakeConntrack(), tracker, nodeName: 'bench-node', rules, syncPeriodMs: 3_600_000, metrics: new ProxyMetrics(), log: createLogger('bench', 'silent') });
    for (const service of services) tracker.upsertService(service);
    for (const slice of slices) tracker.upsertSlice(slice);
    let start = process.hrtime.bigint();
    await proxier.sync();
    const full = ms(start);
    const fullPayload = iptables.lastPayload;
    const fullRestore = iptables.lastRestoreMs;
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
    const bare = await withNetns(async (fresh) => {
      const floor = new CommandIptables(backend, ['ip', 'netns', 'exec', fresh], restoreTimeoutMs);
      const t = process.hrtime.bigint();
      await floor.restore(fullPayload);
      return ms(t);
    });
    console.log(`${count} services (iptables-${backend}): full sync ${full.toFixed(0)} ms (its restore ${fullRestore.toFixed(0)} ms; bare restore of the same ${fullPayload.split('\n').length} lines into a fresh netns ${bare.toFixed(0)} ms); partial sync of one changed EndpointSlice ${times.map((t) => t.toFixed(0)).join('/')} ms (median ${median.toFixed(0)} ms, of which iptables-restore ${restoreMedian.toFixed(0)} ms, knode ${(median - restoreMedian).toFixed(0)} ms), full/partial = ${(full / median).toFixed(1)}x`);
    const description = `${count} services × 10 endpoints, NodePort, iptables-${backend}`;
    reportFigure({ name: `iptables full sync, ${sizeLabel(count)} services (${backend})`, value: full, unit: 'ms', baseline: bare, baselineName: `bare iptables-${backend}-restore --noflush of the same payload into a fresh netns`, better: 'lower', description });
    reportFigure({ name: `iptables partial sync, 1 slice changed, ${sizeLabel(count)} services (${backend})`, value: median, unit: 'ms', baseline: restoreMedian, baselineName: `the iptables-${backend}-restore --noflush inside that sync (same payload, same state)`, better: 'lower', description: `${description}; median of 3`, roundRatios: roundRatios(times, restores) });
  });
}

/** `legacy:1000,10000 nft:1000`, or the older `1000,10000 [backend]`. */
function parseSpecs(argv: string[]): Array<{ backend: BackendChoice; sizes: number[] }> {
  const sizesOf = (text: string) => {
    const sizes = text.split(',').map(Number);
    if (sizes.some((size) => !Number.isInteger(size) || size <= 0)) throw new Error(`bad sizes ${JSON.stringify(text)}`);
    return sizes;
  };
  const backendOf = (text: string): BackendChoice => {
    if (text !== 'nft' && text !== 'legacy' && text !== 'auto') throw new Error(`unknown backend ${JSON.stringify(text)} (nft, legacy or auto)`);
    return text;
  };
  if (argv.length === 0) return [{ backend: 'legacy', sizes: [1000, 10000] }];
  if (!argv[0]!.includes(':')) return [{ backend: backendOf(argv[1] ?? 'auto'), sizes: sizesOf(argv[0]!) }];
  return argv.map((spec) => {
    const [backend, sizes] = spec.split(':');
    return { backend: backendOf(backend!), sizes: sizesOf(sizes ?? '') };
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (it creates a test network namespace)');
  const specs = parseSpecs(process.argv.slice(2));
  for (const size of [...new Set(specs.flatMap((spec) => spec.sizes))].sort((a, b) => a - b)) benchGenerate(size);
  for (const spec of specs) for (const size of spec.sizes) await benchSync(size, spec.backend);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
