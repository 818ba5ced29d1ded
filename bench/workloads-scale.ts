/**
 * Benchmark: a Deployment scaled 0 → N pods on one node until every pod is Ready, side by side in
 * the same run with N bare pods created directly (the scheduler binds both; the difference is the
 * Deployment and ReplicaSet controllers: their share is the ratio). What users run: the control
 * plane is `knode controlplane` (the built CLI, a child process, with the flags `knode up` gives it:
 * file store, plain HTTP on loopback, default controller settings) and the node is a real
 * `knode agent` (a child process) running real containers through the Docker Engine, pods wired by
 * the reference bridge + host-local plugins inside a bench netns (bench/lib/agent-node.ts). The
 * driver talks to the API over HTTP as kubectl does (`kubectl scale` = a merge patch of /scale).
 * The control plane's CPU (utime + stime from /proc/PID/stat), memory (VmRSS sampled every
 * 250 ms) and V8 heap are measured over each phase; the driver's own share in it is a list of the
 * namespace's pods every 250 ms, the same in both paths. The heap comes from V8's own `--trace-gc`
 * line per collection (heap used before and after it): the highest "before" of a phase is the
 * peak of heap in use, without instrumenting the process (the flag only prints).
 *
 * Rounds interleave the two paths (deployment first in odd rounds, bare pods first in even ones);
 * between phases every pod is deleted and the node is left without a container of the bench. The
 * figures carry per-round ratios (roundRatios). Load average is recorded before and after (the
 * runner marks loaded runs).
 *
 *   npm run build && npm run build:bench && node dist-bench/bench/workloads-scale.js [pods=100] [rounds=3]
 * (root, Docker, /usr/lib/cni). Smoke test: `… workloads-scale.js 3 1`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { knodeCommand } from './lib/knode-process.js';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { parse } from 'yaml';
import { busyboxSpec, ensureLocalImage, pauseSpec } from '../cri/local-images.js';
import { startBenchNode, stopChild, until, type BenchNode } from './lib/agent-node.js';
import { onTerminate, reportFigure, roundRatios } from './lib/report.js';

const podCount = Number(process.argv[2] ?? 100);
const rounds = Number(process.argv[3] ?? 3);
const runId = randomBytes(3).toString('hex');
const scope = `io.knode.bench=workloads-${runId}`;
const ns = 'bench';
const clockTicks = 100; // USER_HZ: /proc/PID/stat counts CPU time in 1/100 s on Linux

interface Phase {
  /** From the scale (or the first create) to every pod Ready, ms. */
  ms: number;
  cpuSeconds: number;
  rssMaxMiB: number;
  /** Peak V8 heap in use, MiB (--trace-gc's "MB" are 2^20 bytes) over the phase. */
  heapMaxMB: number;
}

interface KObject {
  metadata: { name?: string; deletionTimestamp?: string; [key: string]: unknown };
  spec?: unknown;
  status?: Record<string, unknown>;
}

/** The API over HTTP, as any client reaches `knode controlplane` on loopback. */
class Api {
  constructor(readonly server: string) {}

  async call<T = KObject>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const response = await fetch(`${this.server}${path}`, { method, headers: body === undefined ? {} : { 'content-type': contentType }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 500)}`);
    return JSON.parse(text) as T;
  }

  list = async (path: string) => (await this.call<{ items: KObject[] }>('GET', path)).items;
}

const podsPath = `/api/v1/namespaces/${ns}/pods`;
const deploymentsPath = `/apis/apps/v1/namespaces/${ns}/deployments`;

const isReady = (pod: KObject) => {
  const conditions = (pod.status as { conditions?: { type?: string; status?: string }[] } | undefined)?.conditions ?? [];
  return !pod.metadata.deletionTimestamp && conditions.some((c) => c.type === 'Ready' && c.status === 'True');
};

function podSpec(image: string): Record<string, unknown> {
  return { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image, command: ['sleep', '3600'] }] };
}

/** CPU seconds and RSS of a process, from /proc. */
async function processUsage(pid: number): Promise<{ cpuSeconds: number; rssMiB: number }> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return { cpuSeconds: (Number(fields[11]) + Number(fields[12])) / clockTicks, rssMiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024 };
}

/** V8's --trace-gc line: `…: Scavenge 10.5 (12.3) -> 9.8 (13.3) MB, …` (used (committed) before -> after). */
const gcLine = /: (?:Scavenge|Mark-Compact|Mark-Compact \(reduce\)|Minor Mark-Compact|Mark-sweep)\s+([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB/;

/** The highest heap in use the control plane's GC lines reported since the last reset. */
class HeapPeak {
  private peak = 0;
  private last = 0;
  private partial = '';

  feed(chunk: Buffer): void {
    const lines = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = (lines.pop() ?? '').slice(-1000);
    for (const line of lines) {
      const match = gcLine.exec(line);
      if (!match) continue;
      this.peak = Math.max(this.peak, Number(match[1]), Number(match[2]));
      this.last = Number(match[2]);
    }
  }

  /** Starts a phase from the heap in use after the last collection. */
  reset(): void {
    this.peak = this.last;
  }

  get max(): number {
    return this.peak;
  }
}

/** `knode controlplane` as `knode up` starts it (bin/up.ts), on a free loopback port; resolves once it serves. */
async function startControlPlaneProcess(dataDir: string): Promise<{ child: ChildProcess; api: Api; heap: HeapPeak }> {
  const heap = new HeapPeak();
  const command = knodeCommand(['controlplane', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--store', 'file', '--cluster-cidr', '10.244.0.0/16', '--service-cidr', '10.96.0.0/12'], ['--trace-gc'], { ...process.env, KNODE_LOG_LEVEL: 'warn' });
  const child = spawn(command.command, command.args, {
    env: command.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (chunk: Buffer) => heap.feed(chunk));
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-4000)));
  const kubeconfig = join(dataDir, 'admin.kubeconfig');
  await until(
    'knode controlplane serving',
    async () => {
      if (child.exitCode !== null) throw new Error(`knode controlplane exited (${child.exitCode}): ${errors}`);
      return existsSync(kubeconfig);
    },
    60_000,
    100,
  );
  const server = (parse(readFileSync(kubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] }).clusters[0]!.cluster.server;
  const api = new Api(server);
  await until('the API answering', async () => (await fetch(`${server}/readyz`).catch(() => undefined))?.ok === true, 60_000, 100);
  return { child, api, heap };
}

/** Runs `start`, then waits for `podCount` Ready pods in the namespace, measuring the control-plane process meanwhile. */
async function measured(api: Api, pid: number, start: () => Promise<void>): Promise<Phase> {
  const before = await processUsage(pid);
  heapPeak?.reset();
  let rssMax = before.rssMiB;
  const sampler = setInterval(() => {
    processUsage(pid).then(
      (u) => (rssMax = Math.max(rssMax, u.rssMiB)),
      () => undefined, // the process is gone: the phase fails on its own
    );
  }, 250);
  const began = performance.now();
  try {
    await start();
    await until(`${podCount} pods Ready`, async () => (await api.list(podsPath)).filter(isReady).length >= podCount, 120_000 + podCount * 5_000, 250);
  } finally {
    clearInterval(sampler);
  }
  const ms = performance.now() - began;
  const after = await processUsage(pid);
  return { ms, cpuSeconds: after.cpuSeconds - before.cpuSeconds, rssMaxMiB: Math.max(rssMax, after.rssMiB), heapMaxMB: heapPeak?.max ?? 0 };
}

/** Deletes every pod (and the Deployment) and waits until the node runs none of the bench's containers. */
async function clear(api: Api, docker: Docker): Promise<void> {
  for (const d of await api.list(deploymentsPath)) await api.call('DELETE', `${deploymentsPath}/${d.metadata.name}`, { propagationPolicy: 'Background' }).catch(() => undefined);
  for (const p of await api.list(podsPath)) await api.call('DELETE', `${podsPath}/${p.metadata.name}`).catch(() => undefined);
  await until('pods gone from the API', async () => (await api.list(podsPath)).length === 0, 300_000, 250);
  await until('containers gone from the node', async () => (await docker.listContainers({ all: true, filters: { label: [scope] } })).length === 0, 300_000, 250);
}

async function deploymentPhase(api: Api, pid: number, image: string, round: number): Promise<Phase> {
  const name = `web-${round}`;
  const labels = { app: name };
  await api.call('POST', deploymentsPath, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name }, spec: { replicas: 0, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: podSpec(image) } } });
  await until('deployment observed', async () => (await api.call('GET', `${deploymentsPath}/${name}`)).status?.observedGeneration === 1, 30_000, 50);
  // What `kubectl scale deploy/web --replicas=N` sends.
  return measured(api, pid, async () => {
    await api.call('PATCH', `${deploymentsPath}/${name}/scale`, { spec: { replicas: podCount } }, 'application/merge-patch+json');
  });
}

async function barePhase(api: Api, pid: number, image: string, round: number): Promise<Phase> {
  return measured(api, pid, async () => {
    for (let i = 0; i < podCount; i++) await api.call('POST', podsPath, { apiVersion: 'v1', kind: 'Pod', metadata: { name: `bare-${round}-${i}`, labels: { app: 'bare' } }, spec: podSpec(image) });
  });
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = (sorted.length - 1) / 2;
  return ((sorted[Math.floor(mid)] as number) + (sorted[Math.ceil(mid)] as number)) / 2;
};
/** The control plane's heap tracker (one control plane per run). */
let heapPeak: HeapPeak | undefined;
const load = () => loadavg().map((v) => v.toFixed(2)).join(' ');

async function main(): Promise<void> {
  if (!Number.isInteger(podCount) || podCount < 1 || podCount > 110 || !Number.isInteger(rounds) || rounds < 1) throw new Error('usage: workloads-scale [pods 1..110 (maxPods)] [rounds ≥ 1]');
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCK ?? '/var/run/docker.sock' });
  await ensureLocalImage(docker, pauseSpec);
  const busybox = await ensureLocalImage(docker, busyboxSpec);
  const dataDir = await mkdtemp(join(tmpdir(), `knode-bench-cp-${runId}-`));
  let cp: { child: ChildProcess; api: Api; heap: HeapPeak } | undefined;
  let node: BenchNode | undefined;
  const cleanup = async () => {
    await node?.stop();
    await stopChild(cp?.child);
    await rm(dataDir, { recursive: true, force: true });
  };
  onTerminate(cleanup);
  const loadBefore = load();
  try {
    cp = await startControlPlaneProcess(dataDir);
    const { api } = cp;
    const pid = cp.child.pid!;
    heapPeak = cp.heap;
    node = await startBenchNode({ id: `ws${runId}`, nodeName: `knb-${runId}`, scope, subnet: '10.253.0.0/24', server: api.server, docker });
    await until('node Ready', async () => {
      const nodes = await api.list('/api/v1/nodes');
      return nodes.some((n) => ((n.status as { conditions?: { type?: string; status?: string }[] } | undefined)?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'));
    }, 120_000, 250);
    await api.call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const results: { deployment: Phase; bare: Phase }[] = [];
    for (let round = 0; round < rounds; round++) {
      const phases: Partial<{ deployment: Phase; bare: Phase }> = {};
      for (const path of round % 2 === 0 ? (['deployment', 'bare'] as const) : (['bare', 'deployment'] as const)) {
        phases[path] = path === 'deployment' ? await deploymentPhase(api, pid, busybox, round) : await barePhase(api, pid, busybox, round);
        await clear(api, docker);
      }
      results.push(phases as { deployment: Phase; bare: Phase });
      console.error(`round ${round + 1}/${rounds}: deployment ${phases.deployment?.ms.toFixed(0)} ms, bare ${phases.bare?.ms.toFixed(0)} ms`);
    }
    report(results, loadBefore, load());
  } finally {
    await cleanup();
  }
}

function report(results: { deployment: Phase; bare: Phase }[], loadBefore: string, loadAfter: string): void {
  console.log(`\nDeployment 0 → ${podCount} pods vs ${podCount} bare pods, one node (\`knode controlplane\` + \`knode agent\`, real containers), ${rounds} interleaved round(s)`);
  console.log(`load average before: ${loadBefore}; after: ${loadAfter} (${cpus().length} cores)\n`);
  console.log('| round | deployment s | bare pods s | ratio | deployment CP CPU s | bare CP CPU s | deployment CP RSS max MiB | bare CP RSS max MiB | deployment CP heap max MiB | bare CP heap max MiB |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  results.forEach((r, i) => {
    console.log(`| ${i + 1} | ${(r.deployment.ms / 1000).toFixed(2)} | ${(r.bare.ms / 1000).toFixed(2)} | ${(r.deployment.ms / r.bare.ms).toFixed(2)} | ${r.deployment.cpuSeconds.toFixed(2)} | ${r.bare.cpuSeconds.toFixed(2)} | ${r.deployment.rssMaxMiB.toFixed(1)} | ${r.bare.rssMaxMiB.toFixed(1)} | ${r.deployment.heapMaxMB.toFixed(1)} | ${r.bare.heapMaxMB.toFixed(1)} |`);
  });
  const baselineName = `${podCount} bare pods created directly (scheduler binds them; no Deployment/ReplicaSet controllers), interleaved rounds`;
  const description = `${podCount} pods, one node, median of ${rounds} round(s); load ${loadBefore} → ${loadAfter}`;
  const values = (path: 'deployment' | 'bare', field: keyof Phase) => results.map((r) => r[path][field]);
  const figure = (name: string, field: keyof Phase, unit: string, detail = description) =>
    reportFigure({ name, value: median(values('deployment', field)), unit, baseline: median(values('bare', field)), baselineName, better: 'lower', description: detail, roundRatios: roundRatios(values('deployment', field), values('bare', field)) });
  figure(`deployment 0→${podCount} all Ready`, 'ms', 'ms');
  figure('control-plane CPU during scale-up', 'cpuSeconds', 'CPU s', `${description}; the \`knode controlplane\` process (API server + controllers), including serving the driver's pod list every 250 ms`);
  figure('control-plane RSS max during scale-up', 'rssMaxMiB', 'MiB', `${description}; VmRSS of the \`knode controlplane\` process sampled every 250 ms`);
  figure('control-plane V8 heap max during scale-up', 'heapMaxMB', 'MiB', `${description}; heap in use before/after each collection, from the process's --trace-gc lines`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
