/**
 * CNI ADD/DEL latency: knode (daemon fast path, and in-process without a daemon) side by side
 * with the reference `bridge` + `host-local` Go plugins, in the same run, on the same kind of
 * test netns. Pods are interleaved (knode, reference, knode, …) so machine load hits all alike.
 * Every call goes through `ip netns exec NODE plugin`, as a runtime inside the node would.
 *
 *   npx vite-node bench/cni-add-del.ts [pods=100]     (root; creates only knt-* netns)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../lib/exec.js';
import { buildPluginKit, invoke, startPluginDaemon, writeSubnetEnv } from '../test/helpers/cni-harness.js';
import { onTerminate, reportFigure } from './lib/report.js';

const pods = Number(process.argv[2] ?? 100);
const id = Math.random().toString(16).slice(2, 8);
const names: string[] = [];
const removeNetns = async () => {
  for (const name of names.reverse()) await run(['ip', 'netns', 'del', name], { allowFailure: true });
  names.length = 0;
};
onTerminate(removeNetns);

async function netns(role: string): Promise<string> {
  const name = `knt-${id}-${role}`;
  await run(['ip', 'netns', 'add', name]);
  names.push(name);
  await run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

const pct = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};

interface Variant {
  label: string;
  nodeNs: string;
  plugin: string;
  conf: unknown;
  env: Record<string, string>;
  add: number[];
  del: number[];
}

async function timed(variant: Variant, command: 'ADD' | 'DEL', pod: string, index: number): Promise<number> {
  const start = process.hrtime.bigint();
  const result = await invoke({ nodeNs: variant.nodeNs, plugin: variant.plugin, conf: variant.conf, env: { ...variant.env, CNI_COMMAND: command, CNI_CONTAINERID: `bench-${index}`, CNI_NETNS: `/var/run/netns/${pod}`, CNI_IFNAME: 'eth0' } });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.code !== 0) throw new Error(`${variant.label} ${command} failed: ${result.stdout} ${result.stderr}`);
  return ms;
}

async function main(): Promise<void> {
  const kit = await buildPluginKit('knt-cni-bench-');
  const work = mkdtempSync(join(tmpdir(), 'knt-cni-bench-'));
  let daemon: { stop(): Promise<void> } | undefined;
  onTerminate(async () => {
    await daemon?.stop();
    rmSync(work, { recursive: true, force: true });
    kit.cleanup();
  });
  try {
    const subnetFile = join(work, 'subnet.env');
    writeSubnetEnv(subnetFile, { network: '10.244.0.0/16', subnet: '10.244.1.1/24', ipMasq: true });
    const [knodeNode, inprocNode, refNode] = [await netns('kn'), await netns('ki'), await netns('ref')];
    daemon = await startPluginDaemon(kit, knodeNode);
    const knodeConf = (dataDir: string) => ({ cniVersion: '1.0.0', name: 'bench', type: 'knode', subnetFile, dataDir });
    const refConf = { cniVersion: '1.0.0', name: 'bench', type: 'bridge', bridge: 'cni0', isDefaultGateway: true, hairpinMode: true, ipMasq: false, mtu: 1450, ipam: { type: 'host-local', dataDir: join(work, 'host-local'), ranges: [[{ subnet: '10.244.1.0/24', gateway: '10.244.1.1' }]] } };
    const plugin = join(kit.binDir, 'knode');
    const variants: Variant[] = [
      { label: 'knode (daemon fast path)', nodeNs: knodeNode, plugin, conf: knodeConf(join(work, 'kn')), env: { CNI_PATH: kit.binDir }, add: [], del: [] },
      { label: 'reference bridge+host-local', nodeNs: refNode, plugin: '/usr/lib/cni/bridge', conf: refConf, env: { CNI_PATH: '/usr/lib/cni' }, add: [], del: [] },
      { label: 'knode (in-process, no daemon)', nodeNs: inprocNode, plugin, conf: knodeConf(join(work, 'ki')), env: { CNI_PATH: kit.binDir, KNODE_CNI_SOCKET: '/nonexistent.sock' }, add: [], del: [] },
    ];
    const podNs: string[][] = [];
    for (let i = 0; i < pods; i++) podNs.push([await netns(`a${i}`), await netns(`b${i}`), await netns(`c${i}`)]);
    for (let i = 0; i < pods; i++) for (const [v, variant] of variants.entries()) variant.add.push(await timed(variant, 'ADD', podNs[i]![v]!, i));
    for (let i = 0; i < pods; i++) for (const [v, variant] of variants.entries()) variant.del.push(await timed(variant, 'DEL', podNs[i]![v]!, i));
    const ref = variants[1]!;
    console.log(`CNI ADD/DEL over ${pods} pods, ms per call (ip netns exec NODE plugin), ratio = knode / reference at p50`);
    console.log(['variant'.padEnd(32), 'ADD p50', 'ADD p99', 'DEL p50', 'DEL p99', 'ADD ratio', 'DEL ratio'].join('\t'));
    for (const variant of variants) {
      console.log(
        [
          variant.label.padEnd(32),
          pct(variant.add, 50).toFixed(1),
          pct(variant.add, 99).toFixed(1),
          pct(variant.del, 50).toFixed(1),
          pct(variant.del, 99).toFixed(1),
          (pct(variant.add, 50) / pct(ref.add, 50)).toFixed(2),
          (pct(variant.del, 50) / pct(ref.del, 50)).toFixed(2),
        ].join('\t'),
      );
    }
    const baselineName = 'reference bridge + host-local plugins (containernetworking-plugins), same netns set-up, interleaved';
    for (const variant of [variants[0]!, variants[2]!]) {
      const short = variant === variants[0] ? 'daemon fast path' : 'in-process, no daemon';
      for (const [command, values, refValues] of [['ADD', variant.add, ref.add], ['DEL', variant.del, ref.del]] as const) {
        const percentiles = variant === variants[0] ? [50, 99] : [50];
        for (const p of percentiles) {
          reportFigure({ name: `CNI ${command} p${p} (${short})`, value: pct(values, p), unit: 'ms', baseline: pct(refValues, p), baselineName, better: 'lower', description: `${pods} pods, each call via ip netns exec NODE plugin` });
        }
      }
    }
  } finally {
    await daemon?.stop();
    await removeNetns();
    rmSync(work, { recursive: true, force: true });
    kit.cleanup();
  }
}

await main();
