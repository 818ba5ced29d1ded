/**
 * Static pod start latency through `knode agent` (the built CLI, as a separate process), from
 * the manifest file written to the pod Running in the agent's status (kubelet API /pods, polled
 * every 10 ms), side by side with the same work done directly (dockerode: pause container, the
 * same CNI ADD — bridge + host-local from the agent's own conflist, in the same netns — then
 * the app joining the sandbox), interleaved pod by pod in ≥ 3 rounds (ratios per round). Pods
 * through the agent stay running, so the later ones start on a busier node. Also the agent's RSS
 * and CPU (from /proc) in 3 windows of 10 s at 0 running pods and at each level of `loaded`.
 * The control plane is in-process on loopback.
 *
 * Baseline for RSS/CPU, measured in the same windows: a "driver floor" process — node with
 * dockerode only (nothing else loaded), listing the pods' containers every second (kubelet's
 * PLEG relist period, pkg/kubelet/pleg/generic.go) — the least any Docker-driven node agent must do.
 *
 * Run: `node dist-bench/bench/agent-static-pods.js [pods=30] [loaded=50,100]` (root, Docker, /usr/lib/cni).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { busyboxSpec, ensureLocalImage, pauseSpec } from '../cri/local-images.js';
import { PluginRunner } from '../lib/cni/invoke.js';
import type { JsonObject } from '../lib/cni/types.js';
import { startBenchCluster, until } from './lib/agent-node.js';
import { spreadOf } from './lib/machine-load.js';
import { percentile, reportFigure, roundRatios } from './lib/report.js';

const timedPods = Number(process.argv[2] ?? 30);
const loadedLevels = (process.argv[3] ?? '50,100').split(',').map(Number);
const runId = randomBytes(3).toString('hex');
const scope = `io.knode.bench=agent-static-${runId}`;
const clockTicks = 100;
const rounds = 3;
const windows = 3;

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

/** What the direct path needs to run the same CNI ADD/DEL as the agent: its conflist and netns. */
interface DirectCni {
  runner: PluginRunner;
  /** The bench's single-plugin conflist (bridge, delegating to host-local), as the agent reads it. */
  list: { name: string; cniVersion: string; plugins: JsonObject[] };
}

const cniArgs = (id: string): [string, string][] => [['IgnoreUnknown', '1'], ['K8S_POD_INFRA_CONTAINER_ID', id]];

/** The floor of a pod start: pause container, its network by the same CNI plugins, app joining it. */
async function directPod(docker: Docker, cni: DirectCni, pause: string, busybox: string, index: number): Promise<string[]> {
  const labels = { 'io.knode.bench': `agent-static-${runId}` };
  const sandbox = await docker.createContainer({ name: `knb-as-${runId}-${index}`, Image: pause, Labels: labels, HostConfig: { NetworkMode: 'none', IpcMode: 'shareable' } });
  await sandbox.start();
  const pid = (await sandbox.inspect()).State.Pid;
  for (const plugin of cni.list.plugins) {
    await cni.runner.exec('ADD', String(plugin.type), { ...plugin, name: cni.list.name, cniVersion: cni.list.cniVersion }, { containerId: sandbox.id, netns: `/proc/${pid}/ns/net`, ifName: 'eth0', args: cniArgs(sandbox.id) });
  }
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

/** Releases the direct pod's address (CNI DEL) and removes its containers (not timed). */
async function removeDirectPod(docker: Docker, cni: DirectCni, [appId, sandboxId]: string[]): Promise<void> {
  for (const plugin of [...cni.list.plugins].reverse()) {
    await cni.runner.exec('DEL', String(plugin.type), { ...plugin, name: cni.list.name, cniVersion: cni.list.cniVersion }, { containerId: sandboxId!, netns: '', ifName: 'eth0', args: cniArgs(sandboxId!) }).catch(() => undefined);
  }
  for (const id of [appId!, sandboxId!]) await docker.getContainer(id).remove({ force: true });
}

async function runningPods(port: number): Promise<Set<string>> {
  try {
    const list = (await (await fetch(`http://127.0.0.1:${port}/pods`)).json()) as { items: { metadata: { name: string }; status?: { phase?: string } }[] };
    return new Set(list.items.filter((p) => p.status?.phase === 'Running').map((p) => p.metadata.name));
  } catch {
    return new Set();
  }
}

/**
 * The RSS/CPU baseline: a node process with dockerode only (not this script, which loads the
 * control plane), relisting the pods' containers every second.
 */
function startDriverFloor(label: string): ChildProcess {
  const code = `import Docker from 'dockerode';
const docker = new Docker({ socketPath: process.env.DOCKER_SOCK ?? '/var/run/docker.sock' });
setInterval(() => void docker.listContainers({ all: true, filters: { label: [${JSON.stringify(label)}] } }).catch(() => undefined), 1000);
process.on('SIGTERM', () => process.exit(0));`;
  // Run from the repository so that 'dockerode' resolves to the project's own copy.
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  return spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
}

const manifest = (name: string, image: string) => `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: app, image: "${image}", command: ["sleep", "3600"]}\n`;

async function main(): Promise<void> {
  if (!Number.isInteger(timedPods) || timedPods < rounds || loadedLevels.some((level) => !Number.isInteger(level) || level < timedPods)) {
    throw new Error('usage: agent-static-pods [pods, at least 3: one round each] [loaded levels, comma-separated, each ≥ pods]');
  }
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCK ?? '/var/run/docker.sock' });
  const pause = await ensureLocalImage(docker, pauseSpec);
  const busybox = await ensureLocalImage(docker, busyboxSpec);
  const nodeName = `knb-${runId}`;
  let floor: ChildProcess | undefined;
  const { node, cleanup } = await startBenchCluster({ id: `as${runId}`, nodeName, scope, subnet: '10.252.0.0/24', docker }, () => [floor]);
  try {
    const { agent, readOnlyPort: port, manifests } = node;
    await until('agent API', async () => (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)), 30_000, 100);
    floor = startDriverFloor(scope);
    const conflist = JSON.parse(await readFile(join(node.dir, 'net.d', '10-bench.conflist'), 'utf8')) as DirectCni['list'];
    const cni: DirectCni = { runner: new PluginRunner({ binDirs: ['/usr/lib/cni'], hostNetns: `/var/run/netns/${node.netns}` }), list: conflist };
    await new Promise((resolve) => setTimeout(resolve, 2000));
    type Usage = Awaited<ReturnType<typeof measure>>;
    const usage: Array<{ pods: number; agent: Usage[]; floor: Usage[] }> = [];
    /** Agent and floor side by side in `windows` windows (each window is one round of the ratio). */
    const measureBoth = async (pods: number) => {
      const row = { pods, agent: [] as Usage[], floor: [] as Usage[] };
      for (let w = 0; w < windows; w++) {
        const [a, f] = await Promise.all([measure(agent.pid!), measure(floor!.pid!)]);
        row.agent.push(a);
        row.floor.push(f);
      }
      usage.push(row);
    };
    await measureBoth(0);

    // Rounds of interleaved pods (direct, then through the agent); a ratio per round.
    const direct: number[][] = Array.from({ length: rounds }, () => []);
    const viaAgent: number[][] = Array.from({ length: rounds }, () => []);
    for (let i = 0; i < timedPods; i++) {
      const round = Math.floor((i * rounds) / timedPods);
      let started = performance.now();
      const ids = await directPod(docker, cni, pause, busybox, i);
      direct[round]!.push(performance.now() - started);
      await removeDirectPod(docker, cni, ids);
      started = performance.now();
      await writeFile(join(manifests, `p${i}.yaml`), manifest(`p${i}`, busybox));
      await until(`p${i} Running`, async () => (await runningPods(port)).has(`p${i}-${nodeName}`));
      viaAgent[round]!.push(performance.now() - started);
    }
    let written = timedPods;
    for (const level of loadedLevels) {
      for (; written < level; written++) await writeFile(join(manifests, `p${written}.yaml`), manifest(`p${written}`, busybox));
      await until(`${level} pods Running`, async () => (await runningPods(port)).size >= level, 300_000 + level * 3000, 500);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await measureBoth(level);
    }

    const allDirect = direct.flat();
    const allAgent = viaAgent.flat();
    console.log(`\nStatic pod start latency, ${timedPods} pods in ${rounds} rounds, interleaved, same Docker Engine\n`);
    console.log('| path | p50 ms | p99 ms | mean ms |');
    console.log('|---|---|---|---|');
    for (const [name, values] of [['direct (dockerode pause + CNI ADD + app)', allDirect], ['knode agent: file written → Running in /pods', allAgent]] as const) {
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      console.log(`| ${name} | ${percentile(values, 50).toFixed(1)} | ${percentile(values, 99).toFixed(1)} | ${mean.toFixed(1)} |`);
    }
    const median = (values: readonly number[]) => spreadOf(values).median;
    console.log(`\n| running pods | agent RSS MiB (median of ${windows} windows' max) | agent CPU % of one core | floor RSS MiB | floor CPU % |`);
    console.log('|---|---|---|---|---|');
    for (const row of usage) {
      console.log(`| ${row.pods} | ${median(row.agent.map((u) => u.rssMiB)).toFixed(1)} | ${median(row.agent.map((u) => u.cpuPercent)).toFixed(2)} | ${median(row.floor.map((u) => u.rssMiB)).toFixed(1)} | ${median(row.floor.map((u) => u.cpuPercent)).toFixed(2)} |`);
    }

    const baselineName = 'direct: dockerode pause container, the same CNI ADD (bridge + host-local, same netns), app joining it; interleaved pod by pod';
    const description = `${timedPods} pods one at a time in ${rounds} rounds: manifest file written → Running in the agent's /pods (polled every 10 ms)`;
    for (const p of [50, 99]) {
      const perRound = (values: number[][]) => values.map((v) => percentile(v, p));
      reportFigure({ name: `static pod start p${p}`, value: percentile(allAgent, p), unit: 'ms', baseline: percentile(allDirect, p), baselineName, better: 'lower', description, roundRatios: roundRatios(perRound(viaAgent), perRound(direct)) });
    }
    const floorName = 'node + dockerode only, listing the pods\' containers every 1 s (PLEG relist floor), same windows';
    for (const row of usage) {
      const rss = (list: Usage[]) => list.map((u) => u.rssMiB);
      const cpu = (list: Usage[]) => list.map((u) => u.cpuPercent);
      reportFigure({ name: `agent RSS, ${row.pods} pods`, value: median(rss(row.agent)), unit: 'MiB', baseline: median(rss(row.floor)), baselineName: floorName, better: 'lower', description: `max VmRSS over 10 s, median of ${windows} windows`, roundRatios: roundRatios(rss(row.agent), rss(row.floor)) });
      reportFigure({ name: `agent CPU, ${row.pods} pods`, value: median(cpu(row.agent)), unit: '% of a core', baseline: median(cpu(row.floor)), baselineName: floorName, better: 'lower', description: `utime+stime over 10 s, median of ${windows} windows`, roundRatios: roundRatios(cpu(row.agent), cpu(row.floor)) });
    }
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
