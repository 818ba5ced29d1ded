/**
 * `kubectl port-forward` through knode (kubectl → control plane → kubelet API → SPDY session →
 * nsenter + socat into the pod's netns) side by side with the node-side floor of the same
 * forward: `nsenter --net=<pod netns> socat - TCP4:localhost:<port>` spawned directly (what
 * cri-dockerd runs for every forwarded connection), interleaved round by round.
 *
 * Figures: download throughput of a file served by busybox httpd on the pod's own loopback
 * (WebSocket tunnel, kubectl's default, and plain SPDY), and the time to the first byte of a
 * small answer on a fresh connection. The pod is a static pod of a `knode agent` child process
 * (CNI bridge + host-local in a bench netns); the control plane is in-process on loopback.
 *
 * Each round downloads the file once per path and opens connections/rounds small GETs per path,
 * interleaved; the per-round ratios are reported (min/median/max in bench/results.md).
 *
 * The knode agent opens the first connection into a pod through nsenter + socat as well, and later
 * ones through its per-namespace helper (cri/docker/netns-dialer.ts): the warm-up GET and
 * download per path (not measured) are that first connection and a first transfer, so the
 * figures are for an established port-forward.
 *
 * Run: `node dist-bench/bench/port-forward.js [MiB=64] [rounds=3] [connections=30]` (root, Docker,
 * /usr/lib/cni, kubectl, socat).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import Docker from 'dockerode';
import { busyboxSpec, ensureLocalImage } from '../cri/local-images.js';
import { startBenchCluster, until } from './lib/agent-node.js';
import { percentile, reportFigure, roundRatios } from './lib/report.js';

const mebibytes = Number(process.argv[2] ?? 64);
const rounds = Number(process.argv[3] ?? 3);
const connections = Number(process.argv[4] ?? 30);
const runId = randomBytes(3).toString('hex');
const scope = `io.knode.bench=port-forward-${runId}`;
const podPort = 8080;

/** What one HTTP/1.0 GET over `open()` brings back: bytes, seconds, time to the first byte. */
interface Transfer {
  bytes: number;
  seconds: number;
  firstByteMs: number;
}

/**
 * Sends a GET on a fresh byte pipe and reads the answer to its end. The time is taken at the last
 * byte, not at the end of the stream: socat lingers 0.5 s after the server's FIN (its `-t`
 * half-close timeout) before it closes stdout, which is not transfer time.
 */
function transfer(open: () => { input: NodeJS.WritableStream; output: NodeJS.ReadableStream; close(): void }, path: string): Promise<Transfer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let first = 0;
    let last = 0;
    let bytes = 0;
    const pipe = open();
    const timer = setTimeout(() => (pipe.close(), reject(new Error(`GET ${path}: no end in 120 s`))), 120_000);
    pipe.output.on('data', (chunk: Buffer) => {
      last = performance.now();
      if (first === 0) first = last;
      bytes += chunk.length;
    });
    pipe.output.on('end', () => {
      clearTimeout(timer);
      pipe.close();
      resolve({ bytes, seconds: ((last || performance.now()) - started) / 1000, firstByteMs: first - started });
    });
    pipe.output.on('error', (error: Error) => (clearTimeout(timer), reject(error)));
    pipe.input.write(`GET ${path} HTTP/1.0\r\n\r\n`);
  });
}

/** The floor: socat spawned into the pod's netns, as the CRI port-forward does per connection. */
function viaSocat(pausePid: number) {
  return () => {
    const child = spawn('nsenter', [`--net=/proc/${pausePid}/ns/net`, 'socat', '-', `TCP4:localhost:${podPort}`], { stdio: ['pipe', 'pipe', 'ignore'] });
    return { input: child.stdin, output: child.stdout, close: () => child.kill() };
  };
}

/** A connection to kubectl's local listener (127.0.0.1 in this namespace: loopback only). */
function viaListener(port: number) {
  return () => {
    const socket = connect({ host: '127.0.0.1', port });
    return { input: socket, output: socket, close: () => socket.destroy() };
  };
}

/** `kubectl port-forward` on a free local port; resolves with it once kubectl listens. */
async function startKubectl(kubeconfig: string, pod: string, websocket: boolean): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn('kubectl', ['--kubeconfig', kubeconfig, 'port-forward', '--address', '127.0.0.1', `pod/${pod}`, `:${podPort}`], {
    env: { ...process.env, KUBECTL_PORT_FORWARD_WEBSOCKETS: websocket ? 'true' : 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  let port = 0;
  await until('kubectl port-forward listening', async () => {
    port = Number(/Forwarding from 127\.0\.0\.1:(\d+)/.exec(out)?.[1] ?? 0);
    return port > 0;
  }, 30_000, 50);
  return { child, port };
}

function mibPerSecond(transfers: Transfer[]): number {
  const sorted = transfers.map((t) => t.bytes / 1024 / 1024 / t.seconds).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  if (![mebibytes, rounds, connections].every((n) => Number.isInteger(n) && n > 0) || connections < rounds) throw new Error('usage: port-forward [MiB] [rounds] [connections ≥ rounds]');
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCK ?? '/var/run/docker.sock' });
  const busybox = await ensureLocalImage(docker, busyboxSpec);
  const nodeName = `knb-pf-${runId}`;
  const kubectls: ChildProcess[] = [];
  // The control plane dials the node's InternalIP: the root namespace's loopback only.
  const { node, server, cleanup } = await startBenchCluster({ id: `pf${runId}`, nodeName, scope, subnet: '10.253.0.0/24', docker, env: { KNODE_NODE_IP: '127.0.0.1' } }, () => kubectls);
  try {
    const { kubeconfig } = node;
    const script = `set -e; mkdir -p /www; echo hello > /www/small; head -c ${mebibytes * 1024 * 1024} /dev/zero > /www/big; exec httpd -f -p 127.0.0.1:${podPort} -h /www`;
    await writeFile(join(node.manifests, 'web.yaml'), `apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: web, image: "${busybox}", command: ["sh", "-c", ${JSON.stringify(script)}]}\n`);
    const pod = `web-${nodeName}`;
    let pausePid = 0;
    await until('the pod serving on its loopback', async () => {
      const [sandbox] = await docker.listContainers({ filters: { label: [scope, `io.kubernetes.pod.name=${pod}`, 'io.kubernetes.container.name=POD'] } });
      if (!sandbox) return false;
      pausePid = (await docker.getContainer(sandbox.Id).inspect()).State.Pid;
      const probe = await transfer(viaSocat(pausePid), '/small').catch(() => undefined);
      return probe !== undefined && probe.bytes > 0;
    }, 180_000, 500);
    await until('the mirror pod', async () => (await fetch(`${server}/api/v1/namespaces/default/pods/${pod}`)).ok, 60_000, 200);

    const websocket = await startKubectl(kubeconfig, pod, true);
    const spdy = await startKubectl(kubeconfig, pod, false);
    kubectls.push(websocket.child, spdy.child);
    const paths = { floor: viaSocat(pausePid), websocket: viaListener(websocket.port), spdy: viaListener(spdy.port) };
    const downloads: Record<keyof typeof paths, Transfer[]> = { floor: [], websocket: [], spdy: [] };
    const firstBytes: Record<keyof typeof paths, number[][]> = { floor: [], websocket: [], spdy: [] };
    // Warm-up, not measured: a first connection and a first download per path (JIT, buffers and
    // the kubelet's per-netns dialer: the figures are for an established port-forward).
    for (const name of Object.keys(paths) as (keyof typeof paths)[]) {
      await transfer(paths[name], '/small');
      await transfer(paths[name], '/big');
    }
    for (let round = 0; round < rounds; round++) {
      for (const name of Object.keys(paths) as (keyof typeof paths)[]) {
        const result = await transfer(paths[name], '/big');
        if (result.bytes < mebibytes * 1024 * 1024) throw new Error(`${name}: got ${result.bytes} bytes of ${mebibytes} MiB`);
        downloads[name].push(result);
        firstBytes[name].push([]);
      }
      const perRound = Math.floor((connections * (round + 1)) / rounds) - Math.floor((connections * round) / rounds);
      for (let i = 0; i < perRound; i++) {
        for (const name of Object.keys(paths) as (keyof typeof paths)[]) firstBytes[name][round]!.push((await transfer(paths[name], '/small')).firstByteMs);
      }
    }

    console.log(`\nport-forward: ${mebibytes} MiB × ${rounds} rounds, ${connections} small GETs per path, interleaved\n`);
    console.log('| path | download MiB/s (median) | first byte p50 ms | first byte p99 ms |');
    console.log('|---|---|---|---|');
    const labels = { floor: 'nsenter + socat into the pod netns (floor)', websocket: 'kubectl port-forward, WebSocket tunnel', spdy: 'kubectl port-forward, SPDY' };
    for (const name of Object.keys(paths) as (keyof typeof paths)[]) {
      console.log(`| ${labels[name]} | ${mibPerSecond(downloads[name]).toFixed(1)} | ${percentile(firstBytes[name].flat(), 50).toFixed(2)} | ${percentile(firstBytes[name].flat(), 99).toFixed(2)} |`);
    }
    const baselineName = 'nsenter --net=<pod netns> socat - TCP4:localhost:<port> spawned directly (the node-side relay cri-dockerd runs), same file, interleaved';
    const speeds = (name: keyof typeof paths) => downloads[name].map((t) => t.bytes / 1024 / 1024 / t.seconds);
    const firstByteP50s = (name: keyof typeof paths) => firstBytes[name].map((samples) => percentile(samples, 50));
    for (const name of ['websocket', 'spdy'] as const) {
      const download = roundRatios(speeds(name), speeds('floor'));
      const first = roundRatios(firstByteP50s(name), firstByteP50s('floor'));
      console.log(`${name}: download ratio per round ${download.map((r) => r.toFixed(2)).join(', ')}; first byte p50 ratio per round ${first.map((r) => r.toFixed(2)).join(', ')}`);
      reportFigure({ name: `download, ${name}`, value: mibPerSecond(downloads[name]), unit: 'MiB/s', baseline: mibPerSecond(downloads.floor), baselineName, better: 'higher', description: `${mebibytes} MiB from busybox httpd on the pod's loopback, median of ${rounds} interleaved rounds; kubectl → control plane → kubelet → socket opened in the pod netns`, roundRatios: download });
      reportFigure({ name: `first byte p50, ${name}`, value: percentile(firstBytes[name].flat(), 50), unit: 'ms', baseline: percentile(firstBytes.floor.flat(), 50), baselineName, better: 'lower', description: `${connections} fresh connections over ${rounds} interleaved rounds, GET of 6 bytes`, roundRatios: first });
    }
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
