/**
 * Cluster DNS: `knode dns` as deployed (the CLI as a child process, fed by a control plane on
 * loopback holding N Services) side by side with dnsmasq serving the same N names from a hosts
 * file and forwarding to the same upstream with its cache (the reference), both measured with
 * dnsperf (Debian) on loopback, interleaved round by round (the order alternates).
 *
 * Figures per server: maximum QPS (dnsperf, 100 queries outstanding) and p50/p99 latency at a
 * fixed rate (dnsperf -Q, each answer's latency from -v), for cluster names (all N names,
 * shuffled) and for forwarded names already in the cache (the upstream is a third dnsmasq,
 * warmed first), and each server's CPU time per answered query during the QPS runs (user +
 * system from /proc/PID/stat: less sensitive to a busy machine than QPS, and the user/system
 * split says how much is the server's own code and how much the socket system calls).
 * Ratios knode/reference: min/median/max over the rounds. Load average before
 * and after (the machine is shared: a figure taken under load is re-measured, not reported).
 *
 * Run: `node dist-bench/bench/dns.js [services=10000] [rounds=3] [seconds=5] [rate=2000]
 * [processes]` (dnsperf, dnsmasq, dig); `processes`: `knode dns --serving-processes` (default: the
 * command's own, 2 on two cores or more). The CPU per query of `knode dns` is that of all its
 * serving processes (dns/serving.ts). Loopback only. `KNODE_BENCH_NODE_ARGS` adds options to the node running `knode
 * dns` (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`: the profile is written when it stops; or
 * `--perf-basic-prof` and `perf record -g -p PID` during a QPS run, which also sees the time in
 * the kernel and in Node's C++ around each datagram, where most of it goes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { knodeCommand } from './lib/knode-process.js';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from '../controlplane/control-plane.js';
import { writeKubeconfig } from '../controlplane/kubeconfig.js';
import { MemoryStorage } from '../controlplane/storage/memory.js';
import { resources, storageKey } from '../controlplane/resources.js';
import { run } from '../lib/exec.js';
import { freeLoopbackPort as freePort } from '../test/helpers/ports.js';
import { createLogger } from '../lib/log.js';
import { until } from './lib/agent-node.js';
import { spreadOf } from './lib/machine-load.js';
import { onTerminate, percentile, reportFigure, roundRatios } from './lib/report.js';

const services = Number(process.argv[2] ?? 10_000);
const rounds = Number(process.argv[3] ?? 3);
const seconds = Number(process.argv[4] ?? 5);
const rate = Number(process.argv[5] ?? 2000);
const processes = process.argv[6];
const forwardedNames = 200;
const nodeArgs = (process.env.KNODE_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
let clockTicks = 100;

const serviceIp = (i: number) => {
  const value = (10 << 24) | (96 << 16);
  const n = value + 256 + i;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
};

function dnsmasq(port: number, args: string[]): ChildProcess {
  return spawn('dnsmasq', ['-k', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--no-poll', '--pid-file=', '--user=root', '--listen-address=127.0.0.1', '--bind-interfaces', `--port=${port}`, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => (clearTimeout(timer), resolve()));
    child.kill('SIGTERM');
  });
}

async function answers(port: number, name: string): Promise<string> {
  return (await run(['dig', '@127.0.0.1', '-p', String(port), '+short', '+time=1', '+tries=1', name], { allowFailure: true, timeoutMs: 5000 })).stdout.trim();
}

interface Throughput {
  qps: number;
  lost: number;
  /** The server's CPU time per completed query (µs), in user space and in the kernel (/proc/PID/stat). */
  userUs: number;
  systemUs: number;
}

/** A process and its children (proc(5) /proc/PID/task/TID/children). */
function withChildren(pid: number): number[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  return [pid, ...children];
}

/** utime and stime of a process and its children, in clock ticks (proc(5) fields 14 and 15). */
function cpuTicks(pid: number): { user: number; system: number } {
  let user = 0;
  let system = 0;
  for (const id of withChildren(pid)) {
    const stat = readFileSync(`/proc/${id}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    user += Number(fields[11]);
    system += Number(fields[12]);
  }
  return { user, system };
}

async function throughput(port: number, pid: number, file: string): Promise<Throughput> {
  const before = cpuTicks(pid);
  const { stdout } = await run(['dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', String(seconds), '-q', '100', '-t', '2'], { timeoutMs: (seconds + 30) * 1000 });
  const after = cpuTicks(pid);
  const completed = Number(/Queries completed:\s+(\d+)/.exec(stdout)?.[1]);
  const perQuery = (ticks: number) => (ticks * 1e6) / clockTicks / completed;
  return { qps: Number(/Queries per second:\s+([\d.]+)/.exec(stdout)?.[1]), lost: Number(/Queries lost:\s+(\d+)/.exec(stdout)?.[1]), userUs: perQuery(after.user - before.user), systemUs: perQuery(after.system - before.system) };
}

/** p50/p99 (ms) of every answer at a fixed rate, from dnsperf -v's per-query lines. */
async function latency(port: number, file: string): Promise<{ p50: number; p99: number; count: number }> {
  const { stdout } = await run(['dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', '3', '-Q', String(rate), '-t', '2', '-v'], { timeoutMs: 60_000 });
  const samples = [...stdout.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), count: samples.length };
}

/**
 * Creates the Services. The first ones through the API (as any client would); the bulk is
 * written straight into the control plane's storage with the fields the API would set, because
 * the stub's create validates ClusterIP uniqueness against every Service (O(n) each, minutes for
 * 10k). `knode dns` sees all of them the same way: listed and watched through the API.
 */
async function createServices(url: string, storage: MemoryStorage): Promise<void> {
  const service = (i: number) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: 'default' }, spec: { clusterIP: serviceIp(i), clusterIPs: [serviceIp(i)], type: 'ClusterIP', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', internalTrafficPolicy: 'Cluster', sessionAffinity: 'None', ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 80 }] }, status: { loadBalancer: {} } });
  const viaApi = Math.min(services, 100);
  for (let i = 0; i < viaApi; i++) {
    const response = await fetch(`${url}/api/v1/namespaces/default/services`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(service(i)) });
    if (!response.ok) throw new Error(`creating svc-${i}: HTTP ${response.status} ${await response.text()}`);
  }
  const info = resources.find((r) => r.name === 'services')!;
  for (let i = viaApi; i < services; i++) {
    const object = service(i);
    await storage.create(storageKey(info, 'default', object.metadata.name), { ...object, metadata: { ...object.metadata, uid: randomUUID(), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z') } });
  }
}

async function main(): Promise<void> {
  if (![services, rounds, seconds, rate].every((n) => Number.isInteger(n) && n > 0)) throw new Error('usage: dns [services] [rounds] [seconds] [rate]');
  const dir = mkdtempSync(join(tmpdir(), 'knode-bench-dns-'));
  const children: ChildProcess[] = [];
  const storage = new MemoryStorage({});
  const cp = await startControlPlane({ storage, log: createLogger('cp', 'silent'), host: '127.0.0.1', port: 0, clusterCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', controllers: { enabled: false } });
  const cleanup = async () => {
    // Waits for the children to exit (SIGKILL after 10 s), so that a CPU profile (KNODE_BENCH_NODE_ARGS) gets written.
    await Promise.all(children.filter((child) => child.exitCode === null).map(stopChild));
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  onTerminate(cleanup);
  try {
    const created = Date.now();
    await createServices(cp.url, storage);
    console.log(`created ${services} Services in ${((Date.now() - created) / 1000).toFixed(1)} s`);
    const [upstreamPort, referencePort, knodePort, healthPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    children.push(dnsmasq(upstreamPort, ['--address=/outside.test/192.0.2.10', '--local-ttl=3600']));
    const hosts = join(dir, 'hosts');
    writeFileSync(hosts, Array.from({ length: services }, (_, i) => `${serviceIp(i)} svc-${i}.default.svc.cluster.local`).join('\n') + '\n');
    const reference = dnsmasq(referencePort, [`--addn-hosts=${hosts}`, '--local-ttl=5', `--server=127.0.0.1#${upstreamPort}`, '--cache-size=10000']);
    children.push(reference);
    const kubeconfig = join(dir, 'kubeconfig');
    writeKubeconfig(kubeconfig, { server: cp.url });
    writeFileSync(join(dir, 'resolv.conf'), `nameserver 127.0.0.1:${upstreamPort}\n`);
    const command = knodeCommand(['dns', '--kubeconfig', kubeconfig, '--bind-address', '127.0.0.1', '--port', String(knodePort), '--no-publish', '--health-bind-address', `127.0.0.1:${healthPort}`, '--resolv-conf', join(dir, 'resolv.conf'), '--hostname-override', 'bench', '--log-level', 'warn', ...(processes ? ['--serving-processes', processes] : [])], nodeArgs);
    const knode = spawn(command.command, command.args, { env: command.env, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(knode);
    const last = `svc-${services - 1}.default.svc.cluster.local`;
    await until('knode dns serving every Service', async () => (await answers(knodePort, last)) === serviceIp(services - 1), 120_000, 250);
    await until('dnsmasq serving every Service', async () => (await answers(referencePort, last)) === serviceIp(services - 1), 30_000, 250);

    const order = Array.from({ length: services }, (_, i) => i).sort(() => Math.random() - 0.5);
    const clusterFile = join(dir, 'cluster.txt');
    writeFileSync(clusterFile, order.map((i) => `svc-${i}.default.svc.cluster.local A`).join('\n') + '\n');
    const forwardedFile = join(dir, 'forwarded.txt');
    writeFileSync(forwardedFile, Array.from({ length: forwardedNames }, (_, i) => `h${i}.outside.test A`).join('\n') + '\n');
    for (const port of [knodePort, referencePort]) await run(['dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', forwardedFile, '-n', '2', '-q', '10'], { timeoutMs: 60_000 }); // warm the caches

    const loadBefore = loadavg();
    clockTicks = Number((await run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
    const servers = { knode: { port: knodePort, pid: knode.pid! }, dnsmasq: { port: referencePort, pid: reference.pid! } } as const;
    type Row = { clusterQps: number; forwardedQps: number; clusterP50: number; clusterP99: number; forwardedP50: number; forwardedP99: number; clusterCpu: number; forwardedCpu: number; lost: number };
    const rows: Record<keyof typeof servers, Row[]> = { knode: [], dnsmasq: [] };
    for (let round = 0; round < rounds; round++) {
      const names = (round % 2 === 0 ? ['knode', 'dnsmasq'] : ['dnsmasq', 'knode']) as (keyof typeof servers)[];
      for (const name of names) {
        const { port, pid } = servers[name];
        const cluster = await throughput(port, pid, clusterFile);
        const forwarded = await throughput(port, pid, forwardedFile);
        const clusterLatency = await latency(port, clusterFile);
        const forwardedLatency = await latency(port, forwardedFile);
        rows[name].push({ clusterQps: cluster.qps, forwardedQps: forwarded.qps, clusterP50: clusterLatency.p50, clusterP99: clusterLatency.p99, forwardedP50: forwardedLatency.p50, forwardedP99: forwardedLatency.p99, clusterCpu: cluster.userUs + cluster.systemUs, forwardedCpu: forwarded.userUs + forwarded.systemUs, lost: cluster.lost + forwarded.lost });
        console.log(`round ${round + 1} ${name}: cluster ${cluster.qps.toFixed(0)} qps, forwarded ${forwarded.qps.toFixed(0)} qps; at ${rate} qps p50/p99 cluster ${clusterLatency.p50.toFixed(3)}/${clusterLatency.p99.toFixed(3)} ms, forwarded ${forwardedLatency.p50.toFixed(3)}/${forwardedLatency.p99.toFixed(3)} ms; CPU per query user+system cluster ${cluster.userUs.toFixed(1)}+${cluster.systemUs.toFixed(1)} µs, forwarded ${forwarded.userUs.toFixed(1)}+${forwarded.systemUs.toFixed(1)} µs; lost ${cluster.lost + forwarded.lost}`);
      }
    }
    const loadAfter = loadavg();
    const serving = withChildren(knode.pid!);
    const rss = serving.reduce((sum, pid) => sum + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0), 0) / 1024;
    console.log(`\ndns: ${services} Services, ${rounds} rounds × ${seconds} s per QPS run, latency at ${rate} qps; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}; knode dns RSS ${rss.toFixed(0)} MiB (${serving.length} serving process${serving.length > 1 ? 'es' : ''})\n`);
    console.log('| figure | knode dns (median) | dnsmasq (median) | ratio min / median / max |');
    console.log('|---|---|---|---|');
    const baselineName = `dnsmasq (Debian) with the same ${services} names in a hosts file, forwarding to the same upstream dnsmasq with its cache; dnsperf on loopback, interleaved`;
    const figures: { key: keyof Row; label: string; unit: string; better: 'higher' | 'lower' }[] = [
      { key: 'clusterQps', label: 'cluster names QPS', unit: 'qps', better: 'higher' },
      { key: 'forwardedQps', label: 'cached forwarded names QPS', unit: 'qps', better: 'higher' },
      { key: 'clusterP50', label: 'cluster names p50', unit: 'ms', better: 'lower' },
      { key: 'clusterP99', label: 'cluster names p99', unit: 'ms', better: 'lower' },
      { key: 'forwardedP50', label: 'cached forwarded names p50', unit: 'ms', better: 'lower' },
      { key: 'forwardedP99', label: 'cached forwarded names p99', unit: 'ms', better: 'lower' },
      { key: 'clusterCpu', label: 'CPU per cluster-name query', unit: 'µs', better: 'lower' },
      { key: 'forwardedCpu', label: 'CPU per cached forwarded query', unit: 'µs', better: 'lower' },
    ];
    for (const figure of figures) {
      const ours = spreadOf(rows.knode.map((row) => row[figure.key]));
      const theirs = spreadOf(rows.dnsmasq.map((row) => row[figure.key]));
      const ratio = spreadOf(rows.knode.map((row, i) => row[figure.key] / rows.dnsmasq[i]![figure.key]));
      console.log(`| ${figure.label} (${figure.unit}) | ${ours.median.toFixed(figure.unit === 'qps' ? 0 : figure.unit === 'ms' ? 3 : 1)} | ${theirs.median.toFixed(figure.unit === 'qps' ? 0 : figure.unit === 'ms' ? 3 : 1)} | ${ratio.min.toFixed(2)} / ${ratio.median.toFixed(2)} / ${ratio.max.toFixed(2)} |`);
      reportFigure({
        name: figure.label,
        value: ours.median,
        unit: figure.unit,
        baseline: theirs.median,
        baselineName,
        better: figure.better,
        roundRatios: roundRatios(
          rows.knode.map((row) => row[figure.key]),
          rows.dnsmasq.map((row) => row[figure.key]),
        ),
        description: `${services} Services, ${serving.length} serving process${serving.length > 1 ? 'es' : ''}, median of ${rounds} rounds (ratio min ${ratio.min.toFixed(2)}, max ${ratio.max.toFixed(2)}); load ${loadBefore[0]!.toFixed(2)} → ${loadAfter[0]!.toFixed(2)}`,
      });
    }
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
