/**
 * Pod start latency through the CRI adapter vs the same containers made directly with
 * dockerode, in the same run, interleaved pod by pod (so drift hits both alike):
 *
 *   direct: create+start a pause container (network none, shareable IPC), then create+start an
 *           app container joining it (container:<id> network and IPC);
 *   cri:    runPodSandbox (pause + pod files + CNI ADD of bridge/host-local in a bench netns) +
 *           createContainer + startContainer.
 *
 * The pods are taken in ≥ 3 rounds; each round's p50/p99 ratio is reported (min/median/max in
 * bench/results.md). The CNI ADD share of the cri figure is measured separately.
 * Run: `node dist-bench/bench/cri-start.js [pods=30] [rounds=3]` (root, Docker on
 * /var/run/docker.sock, /usr/lib/cni reference plugins).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { run } from '../lib/exec.js';
import { createLogger } from '../lib/log.js';
import { CniNetwork, type PodNetwork } from '../cri/cni/network.js';
import type { Attachment, CniResult } from '../lib/cni/types.js';
import { DockerRuntime } from '../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage, pauseSpec } from '../cri/local-images.js';
import { onTerminate, percentile, reportFigure, roundRatios } from './lib/report.js';

const pods = Number(process.argv[2] ?? 30);
const rounds = Number(process.argv[3] ?? 3);
const runId = randomBytes(3).toString('hex');
const label = `io.knode.bench=cri-start-${runId}`;

/** Wraps a PodNetwork to time ADD. */
class TimedNetwork implements PodNetwork {
  readonly addMs: number[] = [];
  constructor(private readonly inner: PodNetwork) {}
  async setUp(attachment: Attachment): Promise<CniResult> {
    const started = performance.now();
    try {
      return await this.inner.setUp(attachment);
    } finally {
      this.addMs.push(performance.now() - started);
    }
  }
  tearDown(attachment: Attachment): Promise<void> {
    return this.inner.tearDown(attachment);
  }
  check(attachment: Attachment): Promise<void> {
    return this.inner.check(attachment);
  }
  result(containerId: string, ifName: string): Promise<CniResult | undefined> {
    return this.inner.result(containerId, ifName);
  }
  gc(...args: Parameters<PodNetwork['gc']>): Promise<void> {
    return this.inner.gc(...args);
  }
  status(): Promise<void> {
    return this.inner.status();
  }
}

async function directPod(docker: Docker, pause: string, busybox: string, index: number): Promise<string[]> {
  const sandbox = await docker.createContainer({
    name: `knb-direct-${runId}-${index}`,
    Image: pause,
    Labels: { 'io.knode.bench': `cri-start-${runId}` },
    HostConfig: { NetworkMode: 'none', IpcMode: 'shareable' },
  });
  await sandbox.start();
  const app = await docker.createContainer({
    name: `knb-direct-${runId}-${index}-app`,
    Image: busybox,
    Cmd: ['sleep', '3600'],
    Labels: { 'io.knode.bench': `cri-start-${runId}` },
    HostConfig: { NetworkMode: `container:${sandbox.id}`, IpcMode: `container:${sandbox.id}` },
  });
  await app.start();
  return [app.id, sandbox.id];
}

async function main(): Promise<void> {
  if (!Number.isInteger(pods) || !Number.isInteger(rounds) || rounds < 1 || pods < rounds) throw new Error('usage: cri-start [pods=30] [rounds=3] (pods ≥ rounds ≥ 1)');
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCK ?? '/var/run/docker.sock' });
  const pause = await ensureLocalImage(docker, pauseSpec);
  const busybox = await ensureLocalImage(docker, busyboxSpec);
  const netns = `knt-bench-${runId}`;
  const dir = await mkdtemp(join(tmpdir(), 'knode-bench-cri-'));
  const cleanup = async () => {
    const left = await docker.listContainers({ all: true, filters: { label: [label] } });
    for (const info of left) await docker.getContainer(info.Id).remove({ force: true }).catch(() => undefined);
    await run(['ip', 'netns', 'del', netns], { allowFailure: true });
    await rm(dir, { recursive: true, force: true });
  };
  onTerminate(cleanup);
  await run(['ip', 'netns', 'add', netns]);
  try {
    await run(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
    await mkdir(join(dir, 'net.d'));
    await writeFile(
      join(dir, 'net.d', '10-bench.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'bench',
        plugins: [{ type: 'bridge', bridge: `kbb${runId}`, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet: '10.251.0.0/24' }]] } }],
      }),
    );
    const network = new TimedNetwork(new CniNetwork({ confDir: join(dir, 'net.d'), binDirs: ['/usr/lib/cni'], cacheDir: join(dir, 'cache'), hostNetns: `/var/run/netns/${netns}` }));
    const runtime = new DockerRuntime({ docker, network, sandboxRoot: join(dir, 'sandboxes'), scopeLabels: { 'io.knode.bench': `cri-start-${runId}` }, logger: createLogger('cri', 'silent'), sandboxStopTimeoutSeconds: 0 });
    const direct: number[] = [];
    const cri: number[] = [];
    /** Where each round's pods begin in `direct`/`cri` (the last round takes the remainder). */
    const roundStarts = Array.from({ length: rounds }, (_, r) => Math.floor((r * pods) / rounds));
    for (let i = 0; i < pods; i++) {
      let started = performance.now();
      const ids = await directPod(docker, pause, busybox, i);
      direct.push(performance.now() - started);
      for (const id of ids) await docker.getContainer(id).remove({ force: true });

      const sandboxConfig = { metadata: { name: `bench${i}`, namespace: 'bench', uid: `${runId}-${i}`, attempt: 0 } };
      started = performance.now();
      const sandboxId = await runtime.runPodSandbox(sandboxConfig);
      const app = await runtime.createContainer(sandboxId, { metadata: { name: 'app', attempt: 0 }, image: { image: busybox }, command: ['sleep', '3600'] }, sandboxConfig);
      await runtime.startContainer(app);
      cri.push(performance.now() - started);
      await runtime.stopPodSandbox(sandboxId);
      await runtime.removePodSandbox(sandboxId);
    }
    const rows: Array<[string, number[]]> = [
      ['dockerode direct (pause + app)', direct],
      ['CRI adapter (sandbox + CNI + app)', cri],
      ['  of which CNI ADD (bridge+host-local)', network.addMs],
    ];
    console.log(`\nCRI pod start latency, ${pods} pods, interleaved, same Docker Engine\n`);
    console.log('| path | p50 ms | p99 ms | mean ms |');
    console.log('|---|---|---|---|');
    for (const [name, values] of rows) {
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      console.log(`| ${name} | ${percentile(values, 50).toFixed(1)} | ${percentile(values, 99).toFixed(1)} | ${mean.toFixed(1)} |`);
    }
    console.log(`\nratio cri/direct: p50 ${(percentile(cri, 50) / percentile(direct, 50)).toFixed(2)}x, p99 ${(percentile(cri, 99) / percentile(direct, 99)).toFixed(2)}x`);
    const baselineName = 'dockerode direct: pause container, then app joining its network/IPC (no CNI), interleaved';
    const description = `${pods} pods one at a time; runPodSandbox (pause + CNI bridge/host-local) + createContainer + startContainer`;
    const perRound = (values: number[], p: number) => roundStarts.map((start, r) => percentile(values.slice(start, roundStarts[r + 1] ?? pods), p));
    for (const p of [50, 99]) {
      const ratios = roundRatios(perRound(cri, p), perRound(direct, p));
      console.log(`p${p} ratio per round: ${ratios.map((r) => r.toFixed(2)).join(', ')}`);
      reportFigure({ name: `CRI pod start p${p}`, value: percentile(cri, p), unit: 'ms', baseline: percentile(direct, p), baselineName, better: 'lower', description: `${description}; ${rounds} rounds`, roundRatios: ratios });
    }
    reportFigure({ name: 'CNI ADD share of CRI pod start p50', value: percentile(network.addMs, 50), unit: 'ms', baseline: null, baselineName: 'none: part of the figure above (bridge + host-local reference plugins)', better: 'lower' });
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
