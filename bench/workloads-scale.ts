/**
 * Benchmark: a Deployment scaled 0 → N pods on one node until every pod is Ready, side by side in
 * the same run with N bare pods created directly (the scheduler binds both; the difference is the
 * Deployment and ReplicaSet controllers: their share is the ratio). One real node: `knode agent`
 * (the built CLI, a child process) running real containers through the Docker Engine, pods wired
 * by the reference bridge + host-local plugins inside a bench netns (bench/lib/agent-node.ts).
 * The control plane (API server and every controller) runs in this process, so its CPU
 * (process.cpuUsage) and heap (process.memoryUsage().heapUsed, sampled every 250 ms) are
 * measured over each phase; the driver's own share is a list of the namespace's pods every 100 ms.
 *
 * Rounds interleave the two paths (deployment first in odd rounds, bare pods first in even ones);
 * between phases every pod is deleted and the node is left without a container of the bench.
 * Load average is recorded before and after; a run with load above 1 per core from outside the
 * benchmark is to be measured again, not reported.
 *
 *   npm run build && npm run build:bench && node dist-bench/bench/workloads-scale.js [pods=100] [rounds=3]
 * (root, Docker, /usr/lib/cni). Smoke test: `… workloads-scale.js 3 1`.
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import Docker from 'dockerode';
import { createLogger } from '../lib/log.js';
import { busyboxSpec, ensureLocalImage, pauseSpec } from '../cri/local-images.js';
import { startControlPlane, type RunningControlPlane } from '../controlplane/control-plane.js';
import { MemoryStorage } from '../controlplane/storage/memory.js';
import { resourceNamed } from '../controlplane/resources.js';
import type { KObject } from '../controlplane/storage/types.js';
import { startBenchNode, until, type BenchNode } from './lib/agent-node.js';
import { onTerminate, reportFigure } from './lib/report.js';

const podCount = Number(process.argv[2] ?? 100);
const rounds = Number(process.argv[3] ?? 3);
const runId = randomBytes(3).toString('hex');
const scope = `io.knode.bench=workloads-${runId}`;
const ns = 'bench';
const pods = resourceNamed('pods');
const deployments = resourceNamed('deployments');
const namespaces = resourceNamed('namespaces');

interface Phase {
  /** From the scale (or the first create) to every pod Ready, ms. */
  ms: number;
  cpuSeconds: number;
  heapMaxMiB: number;
}

const isReady = (pod: KObject) => {
  const conditions = (pod.status as { conditions?: { type?: string; status?: string }[] } | undefined)?.conditions ?? [];
  return !pod.metadata.deletionTimestamp && conditions.some((c) => c.type === 'Ready' && c.status === 'True');
};

function podSpec(image: string): Record<string, unknown> {
  return { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image, command: ['sleep', '3600'] }] };
}

/** Runs `start`, then waits for `podCount` Ready pods in the namespace, measuring the process meanwhile. */
async function measured(cp: RunningControlPlane, start: () => Promise<void>): Promise<Phase> {
  let heapMax = process.memoryUsage().heapUsed;
  const sampler = setInterval(() => (heapMax = Math.max(heapMax, process.memoryUsage().heapUsed)), 250);
  const cpuBefore = process.cpuUsage();
  const began = performance.now();
  try {
    await start();
    await until(`${podCount} pods Ready`, async () => (await cp.registry.list(pods, ns)).items.filter(isReady).length >= podCount, 120_000 + podCount * 5_000, 100);
  } finally {
    clearInterval(sampler);
  }
  const ms = performance.now() - began;
  const cpu = process.cpuUsage(cpuBefore);
  return { ms, cpuSeconds: (cpu.user + cpu.system) / 1e6, heapMaxMiB: heapMax / 2 ** 20 };
}

/** Deletes every pod (and the Deployment) and waits until the node runs none of the bench's containers. */
async function clear(cp: RunningControlPlane, docker: Docker): Promise<void> {
  for (const d of (await cp.registry.list(deployments, ns)).items) await cp.registry.delete(deployments, ns, d.metadata.name as string, { propagationPolicy: 'Background' }).catch(() => undefined);
  for (const p of (await cp.registry.list(pods, ns)).items) await cp.registry.delete(pods, ns, p.metadata.name as string).catch(() => undefined);
  await until('pods gone from the API', async () => (await cp.registry.list(pods, ns)).items.length === 0, 300_000, 250);
  await until('containers gone from the node', async () => (await docker.listContainers({ all: true, filters: { label: [scope] } })).length === 0, 300_000, 250);
}

async function deploymentPhase(cp: RunningControlPlane, image: string, round: number): Promise<Phase> {
  const name = `web-${round}`;
  const labels = { app: name };
  await cp.registry.create(deployments, ns, { metadata: { name }, spec: { replicas: 0, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: podSpec(image) } } } as unknown as KObject);
  await until('deployment observed', async () => ((await cp.registry.get(deployments, ns, name)).status as { observedGeneration?: number } | undefined)?.observedGeneration === 1, 30_000, 50);
  // What `kubectl scale deploy/web --replicas=N` writes.
  return measured(cp, async () => {
    await cp.registry.mutate(deployments, ns, name, (d) => ({ ...d, spec: { ...(d.spec as object), replicas: podCount } }));
  });
}

async function barePhase(cp: RunningControlPlane, image: string, round: number): Promise<Phase> {
  return measured(cp, async () => {
    for (let i = 0; i < podCount; i++) await cp.registry.create(pods, ns, { metadata: { name: `bare-${round}-${i}`, labels: { app: 'bare' } }, spec: podSpec(image) } as unknown as KObject);
  });
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = (sorted.length - 1) / 2;
  return ((sorted[Math.floor(mid)] as number) + (sorted[Math.ceil(mid)] as number)) / 2;
};
const load = () => loadavg().map((v) => v.toFixed(2)).join(' ');

async function main(): Promise<void> {
  if (!Number.isInteger(podCount) || podCount < 1 || podCount > 110 || !Number.isInteger(rounds) || rounds < 1) throw new Error('usage: workloads-scale [pods 1..110 (maxPods)] [rounds ≥ 1]');
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCK ?? '/var/run/docker.sock' });
  await ensureLocalImage(docker, pauseSpec);
  const busybox = await ensureLocalImage(docker, busyboxSpec);
  const cp = await startControlPlane({ storage: new MemoryStorage({}), log: createLogger('cp', 'silent'), host: '127.0.0.1', port: 0, clusterCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', controllers: { resyncMs: 5_000 } });
  let node: BenchNode | undefined;
  const cleanup = async () => {
    await node?.stop();
    await cp.stop();
  };
  onTerminate(cleanup);
  const loadBefore = load();
  try {
    node = await startBenchNode({ id: `ws${runId}`, nodeName: `knb-${runId}`, scope, subnet: '10.253.0.0/24', server: cp.url, docker });
    await until('node Ready', async () => {
      const nodes = (await cp.registry.list(resourceNamed('nodes'), undefined)).items;
      return nodes.some((n) => ((n.status as { conditions?: { type?: string; status?: string }[] } | undefined)?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'));
    }, 120_000, 250);
    await cp.registry.create(namespaces, undefined, { metadata: { name: ns } } as unknown as KObject);
    const results: { deployment: Phase; bare: Phase }[] = [];
    for (let round = 0; round < rounds; round++) {
      const phases: Partial<{ deployment: Phase; bare: Phase }> = {};
      for (const path of round % 2 === 0 ? (['deployment', 'bare'] as const) : (['bare', 'deployment'] as const)) {
        phases[path] = path === 'deployment' ? await deploymentPhase(cp, busybox, round) : await barePhase(cp, busybox, round);
        await clear(cp, docker);
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
  console.log(`\nDeployment 0 → ${podCount} pods vs ${podCount} bare pods, one node (real agent and containers), ${rounds} interleaved round(s)`);
  console.log(`load average before: ${loadBefore}; after: ${loadAfter} (${cpus().length} cores)\n`);
  console.log('| round | deployment s | bare pods s | ratio | deployment CPU s | bare CPU s | deployment heap max MiB | bare heap max MiB |');
  console.log('|---|---|---|---|---|---|---|---|');
  results.forEach((r, i) => {
    console.log(`| ${i + 1} | ${(r.deployment.ms / 1000).toFixed(2)} | ${(r.bare.ms / 1000).toFixed(2)} | ${(r.deployment.ms / r.bare.ms).toFixed(2)} | ${r.deployment.cpuSeconds.toFixed(2)} | ${r.bare.cpuSeconds.toFixed(2)} | ${r.deployment.heapMaxMiB.toFixed(1)} | ${r.bare.heapMaxMiB.toFixed(1)} |`);
  });
  const ratios = results.map((r) => r.deployment.ms / r.bare.ms);
  console.log(`\nratio deployment / bare: min ${Math.min(...ratios).toFixed(2)}, median ${median(ratios).toFixed(2)}, max ${Math.max(...ratios).toFixed(2)}`);
  const baselineName = `${podCount} bare pods created directly (scheduler binds them; no Deployment/ReplicaSet controllers), interleaved rounds`;
  const description = `${podCount} pods, one node, median of ${rounds} round(s); load ${loadBefore} → ${loadAfter}`;
  const of = (path: 'deployment' | 'bare', field: keyof Phase) => median(results.map((r) => r[path][field]));
  reportFigure({ name: `deployment 0→${podCount} all Ready`, value: of('deployment', 'ms'), unit: 'ms', baseline: of('bare', 'ms'), baselineName, better: 'lower', description });
  reportFigure({ name: 'control-plane CPU during scale-up', value: of('deployment', 'cpuSeconds'), unit: 'CPU s', baseline: of('bare', 'cpuSeconds'), baselineName, better: 'lower', description: `${description}; API server + controllers + the driver's pod list every 100 ms` });
  reportFigure({ name: 'control-plane heap max during scale-up', value: of('deployment', 'heapMaxMiB'), unit: 'MiB', baseline: of('bare', 'heapMaxMiB'), baselineName, better: 'lower', description });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
