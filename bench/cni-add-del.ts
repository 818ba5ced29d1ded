/**
 * CNI ADD/DEL latency of the knode plugin as a node runs it — the launcher `knode install-cni`
 * writes, served by the running `knode overlay` daemon (bench/lib/cni-overlay-node.ts) — side by
 * side with the reference `bridge` + `host-local` Go plugins (containernetworking-plugins), in
 * the same run, in rounds: each round ADDs every pod with each variant (the order rotates per
 * pod, so load hits all alike), then DELs them; the ratio of each round's percentiles gives the
 * min/median/max spread. Every call goes through `ip netns exec NODE plugin`, as a runtime inside
 * the node would. Extra rows, clearly named: the stand-alone fast-path server
 * (dist/cni/plugin-daemon.js, not what a node runs) and the in-process plugin without a daemon
 * (on the first 10 pods of each round: ~300 ms a call).
 *
 *   npm run build && npx vite-node bench/cni-add-del.ts [pods per round=100] [rounds=3]
 *   (root; creates only knt-* netns; KNODE_BENCH_CNI_PROFILE=DIR: CPU profile of the overlay)
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNetwork, type Netns } from '../test/helpers/netns.js';
import { invoke, writeSubnetEnv } from '../test/helpers/cni-harness.js';
import { startTestControlPlane, type TestControlPlane } from '../test/helpers/controlplane.js';
import { cniSocketFor } from '../cni/plugin-server.js';
import { installPlugin, startOverlayNode, startStandaloneDaemon } from './lib/cni-overlay-node.js';
import { onTerminate, percentile, reportFigure, roundRatios } from './lib/report.js';
import { spreadOf } from './lib/machine-load.js';

const pods = Number(process.argv[2] ?? 100);
const rounds = Number(process.argv[3] ?? 3);
if (!(pods >= 1 && pods <= 250 && rounds >= 1 && rounds <= 20)) throw new Error('usage: cni-add-del [pods per round 1..250] [rounds 1..20]');
const inprocessPods = Math.min(pods, 10);

interface Variant {
  key: 'overlay' | 'reference' | 'standalone' | 'inprocess';
  label: string;
  nodeNs: Netns;
  plugin: string;
  conf: unknown;
  env: Record<string, string>;
  pods: Netns[];
  /** Per round: the ms of each call. */
  add: number[][];
  del: number[][];
}

async function timed(variant: Variant, command: 'ADD' | 'DEL', round: number, index: number): Promise<number> {
  const env = { ...variant.env, CNI_COMMAND: command, CNI_CONTAINERID: `bench-${round}-${index}`, CNI_NETNS: variant.pods[index]!.path, CNI_IFNAME: 'eth0' };
  const start = process.hrtime.bigint();
  const result = await invoke({ nodeNs: variant.nodeNs.name, plugin: variant.plugin, conf: variant.conf, env });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.code !== 0) throw new Error(`${variant.label} ${command} failed: ${result.stdout} ${result.stderr}`);
  // The fast-path rows must not have fallen back to the in-process plugin (the launcher says so).
  if (variant.key !== 'inprocess' && variant.key !== 'reference' && result.stderr.includes('running in-process')) throw new Error(`${variant.label}: the fast path was off: ${result.stderr}`);
  return ms;
}

/** One round: ADD each pod with each variant (order rotated per pod), then DEL them likewise. */
async function runRound(variants: Variant[], round: number): Promise<void> {
  for (const command of ['ADD', 'DEL'] as const) {
    for (const variant of variants) (command === 'ADD' ? variant.add : variant.del)[round] = [];
    for (let i = 0; i < pods; i++) {
      for (let v = 0; v < variants.length; v++) {
        const variant = variants[(v + i) % variants.length]!;
        if (variant.key === 'inprocess' && i >= inprocessPods) continue;
        (command === 'ADD' ? variant.add : variant.del)[round]!.push(await timed(variant, command, round, i));
      }
    }
  }
}

const flat = (rows: number[][]) => rows.flat();
const perRound = (rows: number[][], p: number) => rows.map((row) => percentile(row, p));

function report(variants: Variant[]): void {
  const ref = variants.find((v) => v.key === 'reference')!;
  console.log(`CNI ADD/DEL, ${pods} pods × ${rounds} rounds (in-process: ${inprocessPods} pods a round), ms per call via ip netns exec NODE plugin; ratio = variant / reference, p50 over all calls, [min median max] of the per-round p50 ratios`);
  console.log(['variant'.padEnd(40), 'ADD p50', 'ADD p99', 'DEL p50', 'DEL p99', 'ADD ratio', 'DEL ratio'].join('\t'));
  for (const variant of variants) {
    const spread = (mine: number[][], theirs: number[][]) => {
      const s = spreadOf(roundRatios(perRound(mine, 50), perRound(theirs, 50)));
      return `${(percentile(flat(mine), 50) / percentile(flat(theirs), 50)).toFixed(2)} [${s.min.toFixed(2)} ${s.median.toFixed(2)} ${s.max.toFixed(2)}]`;
    };
    const cells = [percentile(flat(variant.add), 50), percentile(flat(variant.add), 99), percentile(flat(variant.del), 50), percentile(flat(variant.del), 99)].map((n) => n.toFixed(1));
    console.log([variant.label.padEnd(40), ...cells, spread(variant.add, ref.add), spread(variant.del, ref.del)].join('\t'));
  }
  const baselineName = 'reference bridge + host-local plugins (containernetworking-plugins), same netns set-up, interleaved per pod';
  for (const variant of variants.filter((v) => v.key !== 'reference')) {
    const percentiles = variant.key === 'overlay' ? [50, 99] : [50];
    for (const [command, mine, theirs] of [['ADD', variant.add, ref.add], ['DEL', variant.del, ref.del]] as const) {
      for (const p of percentiles) {
        reportFigure({
          name: `CNI ${command} p${p} (${variant.label})`,
          value: percentile(flat(mine), p),
          unit: 'ms',
          baseline: percentile(flat(theirs), p),
          baselineName,
          better: 'lower',
          description: `${variant.key === 'inprocess' ? inprocessPods : pods} pods × ${rounds} rounds, each call via ip netns exec NODE plugin`,
          roundRatios: roundRatios(perRound(mine, p), perRound(theirs, p)),
        });
      }
    }
  }
}

async function main(): Promise<void> {
  const net = new TestNetwork();
  const work = mkdtempSync(join(tmpdir(), 'knt-cni-bench-'));
  let cp: TestControlPlane | undefined;
  const stops: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
    await cp?.stop();
    cp = undefined;
    await net.cleanup();
    rmSync(work, { recursive: true, force: true });
  };
  onTerminate(cleanup);
  try {
    cp = await startTestControlPlane({ controllers: false });
    const plugin = await installPlugin(join(work, 'bin'));
    const overlay = await startOverlayNode(net, cp, join(work, 'overlay'), { name: `knt-${net.id}-bench`, podCIDR: '10.244.1.0/24' });
    stops.push(overlay.stop);
    console.log(`knode overlay pid ${overlay.daemon.pid} (ip netns exec → node) in ${overlay.ns.name}, log ${overlay.logFile}`);
    const standaloneNs = await net.node('sa');
    const standaloneSubnet = join(work, 'standalone', 'subnet.env');
    stops.push((await startStandaloneDaemon(standaloneNs, cniSocketFor(standaloneSubnet), join(work, 'standalone.log'))).stop);
    writeSubnetEnv(standaloneSubnet, { network: '10.244.0.0/16', subnet: '10.244.1.1/24', ipMasq: true });
    const inprocessNs = await net.node('ip');
    const inprocessSubnet = join(work, 'inprocess', 'subnet.env');
    mkdirSync(join(work, 'inprocess'));
    writeSubnetEnv(inprocessSubnet, { network: '10.244.0.0/16', subnet: '10.244.1.1/24', ipMasq: true });
    const refNs = await net.node('ref');
    const knodeConf = (subnetFile: string, dataDir: string) => ({ cniVersion: '1.0.0', name: 'bench', type: 'knode', subnetFile, dataDir });
    const refConf = { cniVersion: '1.0.0', name: 'bench', type: 'bridge', bridge: 'cni0', isDefaultGateway: true, hairpinMode: true, ipMasq: false, mtu: 1450, ipam: { type: 'host-local', dataDir: join(work, 'host-local'), ranges: [[{ subnet: '10.244.1.0/24', gateway: '10.244.1.1' }]] } };
    const binDir = join(work, 'bin');
    const variant = (key: Variant['key'], label: string, nodeNs: Netns, p: string, conf: unknown, env: Record<string, string>): Variant => ({ key, label, nodeNs, plugin: p, conf, env, pods: [], add: [], del: [] });
    const variants = [
      variant('overlay', 'knode via knode overlay', overlay.ns, plugin, knodeConf(overlay.subnetFile, join(work, 'ipam-overlay')), { CNI_PATH: binDir }),
      variant('reference', 'reference bridge+host-local', refNs, '/usr/lib/cni/bridge', refConf, { CNI_PATH: '/usr/lib/cni' }),
      variant('standalone', 'knode via stand-alone plugin-daemon', standaloneNs, plugin, knodeConf(standaloneSubnet, join(work, 'ipam-standalone')), { CNI_PATH: binDir }),
      variant('inprocess', 'knode in-process, no daemon', inprocessNs, plugin, knodeConf(inprocessSubnet, join(work, 'ipam-inprocess')), { CNI_PATH: binDir }),
    ];
    for (const v of variants) for (let i = 0; i < (v.key === 'inprocess' ? inprocessPods : pods); i++) v.pods.push(await net.namespace(`${v.key.slice(0, 2)}${i}`));
    for (let round = 0; round < rounds; round++) await runRound(variants, round);
    report(variants);
  } finally {
    await cleanup();
  }
}

await main();
