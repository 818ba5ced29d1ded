/**
 * Dataplane cost of the proxy modes (issue 21): new TCP connections per second through a
 * ClusterIP with N Services installed, nftables mode vs iptables(-legacy) mode, as upstream
 * compared them (KEP-3866: iptables walks KUBE-SERVICES rule by rule for the first packet of each
 * connection; nftables looks the destination up in the `service-ips` verdict map).
 *
 * Everything lives in test network namespaces made here (knt-bdp-*), one set per mode so both
 * rulesets stay installed and the rounds interleave without reprogramming:
 *
 *   client netns (10.250.1.2) ──veth── node netns (proxy rules, forwarding) ──veth── backend netns
 *                                       10.250.1.1 | 10.250.2.1                    10.250.2.2:8080
 *
 * The proxier (knode's NftablesProxier or IptablesProxier) programs the node netns from a child
 * process run inside it, then exits: the rules are kernel state. The backend is a small Node TCP
 * server that writes one byte and closes; the client (a Node loop, `--concurrency` connections in
 * flight, bounded by `--seconds`) counts completed connections. The ClusterIP measured belongs to
 * the Service created last (the iptables chain position is printed).
 *
 *   npm run build && npm run build:bench && node dist-bench/bench/proxy-dataplane.js [SERVICES] [--rounds N] [--seconds S] [--concurrency C]
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { loadavg } from 'node:os';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { run } from '../lib/exec.js';
import { createLogger } from '../lib/log.js';
import { ChangeTracker } from '../proxy/tracker.js';
import { FakeConntrack } from '../proxy/conntrack.js';
import { ProxyMetrics } from '../proxy/metrics.js';
import { NftablesProxier } from '../proxy/nftables/proxier.js';
import { IptablesProxier } from '../proxy/iptables/proxier.js';
import { CommandIptables } from '../lib/netfilter/iptables.js';
import { NftSocket } from '../lib/netfilter/nftables/socket.js';
import { spreadOf } from './lib/machine-load.js';
import { onTerminate, reportFigure, roundRatios } from './lib/report.js';

type Mode = 'nftables' | 'iptables';
const modes: readonly Mode[] = ['nftables', 'iptables'];
const backendIp = '10.250.2.2';
const backendPort = 8080;
const rules = { clusterCIDRs: ['10.250.1.0/24'], masqueradeAll: false, masqueradeBit: 14 };
const load = () => loadavg().map((value) => value.toFixed(2)).join(' ');
const clusterIp = (i: number) => `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

/** N ClusterIP Services × 2 endpoints (addresses nothing answers); the last one leads to the backend. */
function objects(count: number): { services: V1Service[]; slices: V1EndpointSlice[] } {
  const services: V1Service[] = [];
  const slices: V1EndpointSlice[] = [];
  for (let i = 0; i < count; i++) {
    const name = `svc-${i}`;
    const last = i === count - 1;
    services.push({ metadata: { namespace: 'bench', name }, spec: { type: 'ClusterIP', clusterIP: clusterIp(i), ports: [{ name: 'tcp', port: 80, protocol: 'TCP' }] } });
    const addresses = last ? [backendIp] : [`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, `10.${110 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`];
    slices.push({
      addressType: 'IPv4',
      metadata: { namespace: 'bench', name: `${name}-x`, labels: { 'kubernetes.io/service-name': name } },
      ports: [{ name: 'tcp', port: backendPort, protocol: 'TCP' }],
      endpoints: addresses.map((address) => ({ addresses: [address], conditions: { ready: true } })),
    });
  }
  return { services, slices };
}

/** Role "program": runs inside the node netns, syncs once and exits. */
async function program(mode: Mode, count: number): Promise<void> {
  const tracker = new ChangeTracker();
  const { services, slices } = objects(count);
  for (const service of services) tracker.upsertService(service);
  for (const slice of slices) tracker.upsertSlice(slice);
  const common = { conntrack: new FakeConntrack(), tracker, nodeName: 'bench-node', rules, syncPeriodMs: 3_600_000, metrics: new ProxyMetrics(), log: createLogger('bench', 'silent') };
  const started = process.hrtime.bigint();
  if (mode === 'nftables') {
    const nft = NftSocket.open();
    try {
      await new NftablesProxier({ ...common, nft }).sync();
    } finally {
      nft.close();
    }
  } else {
    await new IptablesProxier({ ...common, iptables: new CommandIptables('legacy', [], 1_800_000) }).sync();
  }
  console.log(`  ${mode}: ${count} Services programmed in ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(0)} ms`);
}

/** Role "server": inside the backend netns; one byte, then close (the server closes first). */
function serve(): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.end('x');
    });
    server.on('error', reject);
    server.listen({ host: backendIp, port: backendPort, backlog: 4096 }, () => console.log('listening'));
    process.once('SIGTERM', () => server.close(() => resolve()));
  });
}

/** Role "client": inside the client netns; completed connections in `seconds`, `concurrency` in flight. */
async function client(target: string, seconds: number, concurrency: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  let failed = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const socket = connect({ host: target, port: 80 });
      socket.setTimeout(5_000, () => socket.destroy(new Error('timeout')));
      let got = false;
      socket.on('data', () => (got = true));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (got) done++;
        else failed++;
        resolve();
      });
    });
  const worker = async () => {
    while (Date.now() < deadline && failed < 1000) await one();
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({ done, failed, seconds: elapsed }));
}

class Topology {
  readonly node: string;
  readonly client: string;
  readonly backend: string;
  server?: ChildProcess;

  constructor(id: string, readonly mode: Mode) {
    const short = mode === 'nftables' ? 'n' : 'i';
    this.node = `knt-bdp-${id}-${short}`;
    this.client = `knt-bdp-${id}-${short}c`;
    this.backend = `knt-bdp-${id}-${short}b`;
  }

  private exec(netns: string, command: string[]) {
    return run(['ip', 'netns', 'exec', netns, ...command]);
  }

  async create(): Promise<void> {
    for (const netns of [this.node, this.client, this.backend]) {
      await run(['ip', 'netns', 'add', netns]);
      await this.exec(netns, ['ip', 'link', 'set', 'lo', 'up']);
    }
    // veth pairs made inside the node netns: nothing touches the root namespace
    await this.exec(this.node, ['ip', 'link', 'add', 'to-client', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.client]);
    await this.exec(this.node, ['ip', 'link', 'add', 'to-backend', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.backend]);
    await this.exec(this.node, ['ip', 'addr', 'add', '10.250.1.1/24', 'dev', 'to-client']);
    await this.exec(this.node, ['ip', 'addr', 'add', '10.250.2.1/24', 'dev', 'to-backend']);
    for (const link of ['to-client', 'to-backend']) await this.exec(this.node, ['ip', 'link', 'set', link, 'up']);
    await this.exec(this.node, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    for (const [netns, address, gateway] of [[this.client, '10.250.1.2/24', '10.250.1.1'], [this.backend, `${backendIp}/24`, '10.250.2.1']] as const) {
      await this.exec(netns, ['ip', 'addr', 'add', address, 'dev', 'eth0']);
      await this.exec(netns, ['ip', 'link', 'set', 'eth0', 'up']);
      // the default route leads to the node netns, which has none: nothing leaves the test netns
      await this.exec(netns, ['ip', 'route', 'add', 'default', 'via', gateway]);
    }
    await this.exec(this.client, ['sysctl', '-qw', 'net.ipv4.ip_local_port_range=10000 65000']);
  }

  async startServer(script: string): Promise<void> {
    const server = spawn('ip', ['netns', 'exec', this.backend, process.execPath, script, '--role', 'server'], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.stdout?.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`the backend server exited with ${code}`)));
    });
  }

  async destroy(): Promise<void> {
    this.server?.kill('SIGTERM');
    for (const netns of [this.client, this.backend, this.node]) await run(['ip', 'netns', 'del', netns], { allowFailure: true });
  }
}

async function nodeScript(topology: Topology, script: string, args: string[], netns = topology.node, timeoutMs = 1_800_000): Promise<string> {
  return (await run(['ip', 'netns', 'exec', netns, process.execPath, '--max-old-space-size=4096', script, ...args], { timeoutMs })).stdout;
}

/** Where the measured Service's jump sits in KUBE-SERVICES (iptables walks the rules before it). */
async function iptablesPosition(topology: Topology, count: number): Promise<string> {
  const save = (await run(['ip', 'netns', 'exec', topology.node, 'iptables-legacy-save', '-t', 'nat'], { timeoutMs: 600_000 })).stdout;
  const rulesOfChain = save.split('\n').filter((line) => line.startsWith('-A KUBE-SERVICES '));
  const at = rulesOfChain.findIndex((line) => line.includes(`${clusterIp(count - 1)}/32`));
  return `rule ${at + 1} of ${rulesOfChain.length} in KUBE-SERVICES`;
}

interface Args {
  count: number;
  rounds: number;
  seconds: number;
  concurrency: number;
}

function parseArgs(argv: string[]): Args & { role?: string; mode?: Mode; target?: string } {
  const args: Args & { role?: string; mode?: Mode; target?: string } = { count: 10_000, rounds: 3, seconds: 5, concurrency: 16 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const text = () => argv[++i] ?? '';
    const number = (min: number, max: number) => {
      const value = Number(text());
      if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${arg}: expected an integer in ${min}..${max}`);
      return value;
    };
    if (arg === '--role') args.role = text();
    else if (arg === '--mode') args.mode = text() === 'iptables' ? 'iptables' : 'nftables';
    else if (arg === '--target') args.target = text();
    else if (arg === '--rounds') args.rounds = number(3, 50);
    else if (arg === '--seconds') args.seconds = number(1, 60);
    else if (arg === '--concurrency') args.concurrency = number(1, 256);
    else if (/^\d+$/.test(arg) && Number(arg) >= 1 && Number(arg) <= 60_000) args.count = Number(arg);
    else throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
  }
  return args;
}

async function main(): Promise<void> {
  const script = process.argv[1] ?? '';
  const args = parseArgs(process.argv.slice(2));
  if (args.role === 'program') return program(args.mode ?? 'nftables', args.count);
  if (args.role === 'server') return serve();
  if (args.role === 'client') return client(args.target ?? '', args.seconds, args.concurrency);
  if (process.getuid?.() !== 0) throw new Error('needs root (it creates test network namespaces)');
  const id = randomBytes(2).toString('hex');
  const topologies = modes.map((mode) => new Topology(id, mode));
  onTerminate(() => Promise.all(topologies.map((topology) => topology.destroy())));
  const loadBefore = load();
  try {
    for (const topology of topologies) {
      await topology.create();
      await topology.startServer(script);
      process.stdout.write(await nodeScript(topology, script, ['--role', 'program', '--mode', topology.mode, String(args.count)]));
    }
    const position = await iptablesPosition(topologies[1] as Topology, args.count);
    const rates: Record<Mode, number[]> = { nftables: [], iptables: [] };
    for (let round = 0; round < args.rounds; round++) {
      // alternate which mode goes first, so a drift in the machine's load hits both alike
      const order = round % 2 === 0 ? topologies : [...topologies].reverse();
      for (const topology of order) {
        const out = await nodeScript(topology, script, ['--role', 'client', '--target', clusterIp(args.count - 1), '--seconds', String(args.seconds), '--concurrency', String(args.concurrency)], topology.client, (args.seconds + 30) * 1000);
        const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { done: number; failed: number; seconds: number };
        if (result.done === 0) throw new Error(`${topology.mode}: no connection through the ClusterIP completed (${result.failed} failed)`);
        rates[topology.mode].push(result.done / result.seconds);
        if (result.failed > 0) console.log(`  ${topology.mode}: ${result.failed} connection(s) failed or timed out in round ${round + 1}`);
      }
      console.log(`  round ${round + 1}: nftables ${rates.nftables.at(-1)?.toFixed(0)} conn/s, iptables-legacy ${rates.iptables.at(-1)?.toFixed(0)} conn/s (load ${load()})`);
    }
    const nft = spreadOf(rates.nftables);
    const ipt = spreadOf(rates.iptables);
    const description = `${args.count} ClusterIP Services installed, the last one measured (iptables: ${position}); client netns → node netns (rules) → backend netns; ${args.concurrency} connections in flight, ${args.seconds} s per mode and round, ${args.rounds} interleaved rounds; nftables min/median/max ${nft.min.toFixed(0)}/${nft.median.toFixed(0)}/${nft.max.toFixed(0)}, iptables ${ipt.min.toFixed(0)}/${ipt.median.toFixed(0)}/${ipt.max.toFixed(0)} conn/s; load before ${loadBefore}, after ${load()}`;
    console.log(description);
    reportFigure({ name: `ClusterIP connections/s, nftables mode, ${args.count} services`, value: nft.median, unit: 'conn/s', baseline: ipt.median, baselineName: 'iptables-legacy mode, same Services and traffic (median)', better: 'higher', description, roundRatios: roundRatios(rates.nftables, rates.iptables) });
  } finally {
    for (const topology of topologies) await topology.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
