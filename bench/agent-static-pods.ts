/**
 * Static pod start latency through `knode agent` (the built CLI, as a separate process), from
 * the manifest file written to the pod Running in the agent's status (kubelet API /pods, polled
 * every 10 ms), side by side with the same containers started directly through dockerode (pause
 * + app joining it), interleaved pod by pod. Pods through the agent stay running, so the later
 * ones start on a busier node. Also the agent's RSS and CPU (from /proc) over 10 s at 0 and 50
 * running pods (and at each level of `loaded`). CNI (bridge + host-local) runs inside a bench
 * netns; the control plane is in-process on loopback.
 *
 * Baseline for RSS/CPU, measured in the same windows: a "driver floor" process — the same node
 * binary with dockerode only, listing the pods' containers every second (kubelet's PLEG relist
 * period, pkg/kubelet/pleg/generic.go) — the least any Docker-driven node agent must do.
 *
 * Run: `node dist-bench/bench/agent-static-pods.js [pods=30] [loaded=50,100]` (root, Docker, /usr/lib/cni).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { createLogger } from '../lib/log.js';
import { busyboxSpec, ensureLocalImage, pauseSpec } from '../cri/local-images.js';
import { startControlPlane } from '../controlplane/control-plane.js';
import { MemoryStorage } from '../controlplane/storage/memory.js';
import { startBenchNode, stopChild, until, type BenchNode } from './lib/agent-node.js';
import { onTerminate, percentile, reportFigure } from './lib/report.js';

const timedPods = Number(process.argv[2] ?? 30);
const loadedLevels = (process.argv[3] ?? '50,100').split(',').map(Number);
const runId = randomBytes(3).toString('hex');
const scope = `io.knode.bench=agent-static-${runId}`;
const clockTicks = 100;

async function processUsage(pid: number): Promise<{ rssKiB: number; cpuTicks: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return { rssKiB, cpuTicks: Number(stat[11]) + Number(stat[12]) };
}

/** RSS (max) and CPU (% of one core) of the process over a window. */
async function measure(pid: number, windowMs = 10_000): Promise<{ rssMiB: number; cpuPercent: number }> {
  const start = await processUsage(pid);
  let rss = start.rssKiB;
  const started = Date.now();
  while (Date.now() - started < windowMs) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    rss = Math.max(rss, (await processUsage(pid)).rssKiB);
  }
  const end = await processUsage(pid);
  const seconds = (Date.now() - started) / 1000;
  return { rssMiB: rss / 1024, cpuPercent: ((end.cpuTicks - start.cpuTicks) / clockTicks / seconds) * 100 };
}

async function directPod(docker: Docker, pause: string, busybox: string, index: number): Promise<string[]> {
  const labels = { 'io.knode.bench': `agent-static-${runId}` };
  const sandbox = await docker.createContainer({ name: `knb-as-${runId}-${index}`, Image: pause, Labels: labels, HostConfig: { NetworkMode: 'none', IpcMode: 'shareable' } });
  await sandbox.start();
  const app = await docker.createContainer({
    name: `knb-as-${runId}-${index}-app`,
    Image: busybox,
    Cmd: ['sleep', '3600'],
    Labels: labels,
    HostConfig: { NetworkMode: `container:${sandbox.id}`, IpcMode: `container:${sandbox.id}` },
  });
  await app.start();
  return [app.id, sandbox.id];
}

async function runningPods(port: number): Promise<Set<string>> {
  try {
    const list = (await (await fetch(`http://127.0.0.1:${port}/pods`)).json()) as { items: { metadata: { name: string }; status?: { phase?: string } }[] };
    return new Set(list.items.filter((p) => p.status?.phase === 'Running').map((p) => p.metadata.name));
  } catch {
    return new Set();
  }
}

/** The RSS/CPU baseline: dockerode only, relisting the pods' containers every second. */
function driverFloor(label: string): void {
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCK ?? '/var/run/docker.sock' });
  setInterval(() => void docker.listContainers({ all: true, filters: { label: [label] } }).catch(() => undefined), 1000);
  process.on('SIGTERM', () => process.exit(0));
}

const manifest = (name: string, image: string) => `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: app, image: "${image}", command: ["sleep", "3600"]}\n`;

async function main(): Promise<void> {
  if (process.argv[2] === '--driver-floor') return driverFloor(process.argv[3]!);
  if (!Number.isInteger(timedPods) || timedPods < 1 || loadedLevels.some((level) => !Number.isInteger(level) || level < timedPods)) {
    throw new Error('usage: agent-static-pods [pods] [loaded levels, comma-separated, each ≥ pods]');
  }
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCK ?? '/var/run/docker.sock' });
  const pause = await ensureLocalImage(docker, pauseSpec);
  const busybox = await ensureLocalImage(docker, busyboxSpec);
  const nodeName = `knb-${runId}`;
  let floor: ChildProcess | undefined;
  let node: BenchNode | undefined;
  const cp = await startControlPlane({ storage: new MemoryStorage({}), log: createLogger('cp', 'silent'), host: '127.0.0.1', port: 0, clusterCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', controllers: { enabled: false } });
  const cleanup = async () => {
    await stopChild(floor);
    await node?.stop();
    await cp.stop();
  };
  onTerminate(cleanup);
  try {
    node = await startBenchNode({ id: `as${runId}`, nodeName, scope, subnet: '10.252.0.0/24', server: cp.url, docker });
    const { agent, readOnlyPort: port, manifests } = node;
    await until('agent API', async () => (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)), 30_000, 100);
    floor = spawn(process.execPath, [fileURLToPath(import.meta.url), '--driver-floor', scope], { stdio: ['ignore', 'ignore', 'inherit'] });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const usage: Array<{ pods: number; agent: Awaited<ReturnType<typeof measure>>; floor: Awaited<ReturnType<typeof measure>> }> = [];
    const measureBoth = async (pods: number) => {
      const [a, f] = await Promise.all([measure(agent.pid!), measure(floor!.pid!)]);
      usage.push({ pods, agent: a, floor: f });
    };
    await measureBoth(0);

    const direct: number[] = [];
    const viaAgent: number[] = [];
    for (let i = 0; i < timedPods; i++) {
      let started = performance.now();
      const ids = await directPod(docker, pause, busybox, i);
      direct.push(performance.now() - started);
      for (const id of ids) await docker.getContainer(id).remove({ force: true });
      started = performance.now();
      await writeFile(join(manifests, `p${i}.yaml`), manifest(`p${i}`, busybox));
      await until(`p${i} Running`, async () => (await runningPods(port)).has(`p${i}-${nodeName}`));
      viaAgent.push(performance.now() - started);
    }
    let written = timedPods;
    for (const level of loadedLevels) {
      for (; written < level; written++) await writeFile(join(manifests, `p${written}.yaml`), manifest(`p${written}`, busybox));
      await until(`${level} pods Running`, async () => (await runningPods(port)).size >= level, 300_000 + level * 3000, 500);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await measureBoth(level);
    }

    console.log(`\nStatic pod start latency, ${timedPods} pods, interleaved, same Docker Engine\n`);
    console.log('| path | p50 ms | p99 ms | mean ms |');
    console.log('|---|---|---|---|');
    for (const [name, values] of [['dockerode direct (pause + app)', direct], ['knode agent: file written → Running in /pods', viaAgent]] as const) {
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      console.log(`| ${name} | ${percentile(values, 50).toFixed(1)} | ${percentile(values, 99).toFixed(1)} | ${mean.toFixed(1)} |`);
    }
    console.log(`\n| running pods | agent RSS MiB (max over 10 s) | agent CPU % of one core | floor RSS MiB | floor CPU % |`);
    console.log('|---|---|---|---|---|');
    for (const row of usage) console.log(`| ${row.pods} | ${row.agent.rssMiB.toFixed(1)} | ${row.agent.cpuPercent.toFixed(1)} | ${row.floor.rssMiB.toFixed(1)} | ${row.floor.cpuPercent.toFixed(1)} |`);

    const baselineName = 'dockerode direct: pause container, then app joining its network/IPC (no CNI), interleaved';
    const description = `${timedPods} pods one at a time: manifest file written → Running in the agent's /pods (polled every 10 ms)`;
    for (const p of [50, 99]) {
      reportFigure({ name: `static pod start p${p}`, value: percentile(viaAgent, p), unit: 'ms', baseline: percentile(direct, p), baselineName, better: 'lower', description });
    }
    const floorName = 'node + dockerode only, listing the pods\' containers every 1 s (PLEG relist floor), same window';
    for (const row of usage) {
      reportFigure({ name: `agent RSS, ${row.pods} pods`, value: row.agent.rssMiB, unit: 'MiB', baseline: row.floor.rssMiB, baselineName: floorName, better: 'lower', description: 'max VmRSS over 10 s' });
      reportFigure({ name: `agent CPU, ${row.pods} pods`, value: row.agent.cpuPercent, unit: '% of a core', baseline: row.floor.cpuPercent, baselineName: floorName, better: 'lower', description: 'utime+stime over 10 s' });
    }
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
