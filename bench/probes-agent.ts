/**
 * Probe CPU of the deployed agent (issue 24: benchmarks measure what users run): `knode agent`
 * (the built CLI, a child process) running static pods with probes against real containers —
 * per pod a readiness httpGet and a liveness tcpSocket on busybox httpd (container "app") and a
 * liveness exec (`true`, container "sidecar", through Docker's exec API) — next to the floor: a
 * node process with dockerode and bare timers making the same requests to the same containers
 * (HTTP GET, TCP connect, Docker exec create/start/inspect) and listing the containers every
 * second (the PLEG relist floor of bench/agent-static-pods.ts).
 *
 * The CPU a probe costs is the difference a process's CPU makes with and without probes, over
 * the probes it ran: the agent's from its own /proc ticks, probes counted by its
 * prober_probe_total; the floor's likewise. Phase 1 runs the pods without probes (both
 * processes measured side by side: their base cost); phase 2 the same pods with probes, the
 * agent's and the floor's windows alternating in ≥ 3 rounds (the floor's probes run only in
 * its own windows; the agent's run throughout, as a node's do).
 *
 * Pods must be reachable from the agent as on a node, so the script re-executes itself in a
 * test netns of its own (knt-bench-pa-*: loopback, and the pods' bridge made there by the
 * reference bridge + host-local plugins); the control plane is in-process on its loopback.
 * It enters the netns with `nsenter --net`, not `ip netns exec`, which mounts a sysfs of its
 * own without /sys/fs/cgroup (the agent needs the cgroups).
 *
 * Run: `node dist-bench/bench/probes-agent.js [pods=30] [httpTcpPeriod=1] [execPeriod=10]`
 * (root, Docker, /usr/lib/cni).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { readFile, writeFile } from 'node:fs/promises';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { run } from '../lib/exec.js';
import { busyboxSpec, ensureLocalImage } from '../cri/local-images.js';
import { startBenchCluster, until } from './lib/agent-node.js';
import { spreadOf } from './lib/machine-load.js';
import { reportFigure, roundRatios } from './lib/report.js';

const pods = Number(process.argv[2] ?? 30);
const httpTcpPeriod = Number(process.argv[3] ?? 1);
const execPeriod = Number(process.argv[4] ?? 10);
const rounds = 3;
const windowMs = 10_000;
const clockTicks = 100;
const runId = randomBytes(3).toString('hex');
const scope = `io.knode.bench=probes-agent-${runId}`;

async function cpuTicks(pid: number): Promise<number> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return Number(stat[11]) + Number(stat[12]);
}

/** CPU ms a process used over `run` (which takes about windowMs). */
async function cpuDuring(pid: number, during: () => Promise<void>): Promise<number> {
  const before = await cpuTicks(pid);
  await during();
  return ((await cpuTicks(pid)) - before) * (1000 / clockTicks);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function manifest(name: string, probes: boolean): string {
  const http = probes ? `\n    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: ${httpTcpPeriod}}\n    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: ${httpTcpPeriod}}` : '';
  const exec = probes ? `\n    livenessProbe: {exec: {command: ["true"]}, periodSeconds: ${execPeriod}}` : '';
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: "${busyboxSpec.ref}"
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]${http}
  - name: sidecar
    image: "${busyboxSpec.ref}"
    command: ["sleep", "3600"]${exec}
`;
}

interface PodView {
  name: string;
  uid: string;
  ip: string;
  sidecar: string;
  ready: boolean;
}

async function podViews(port: number): Promise<PodView[]> {
  try {
    type Item = { metadata: { name: string; uid: string }; status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[]; containerStatuses?: { name: string; containerID?: string }[] } };
    const list = (await (await fetch(`http://127.0.0.1:${port}/pods`)).json()) as { items: Item[] };
    return list.items
      .filter((p) => p.status?.phase === 'Running' && p.status.podIP)
      .map((p) => ({
        name: p.metadata.name,
        uid: p.metadata.uid,
        ip: p.status!.podIP!,
        sidecar: (p.status!.containerStatuses?.find((c) => c.name === 'sidecar')?.containerID ?? '').replace(/^docker:\/\//, ''),
        ready: p.status!.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      }));
  } catch {
    return [];
  }
}

/** prober_probe_total of the agent (its main port: TLS, self-signed; anonymous), summed over every label. */
async function probesRun(port: number): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: '/metrics', rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics: ${res.statusCode} ${body}`))));
    }).on('error', reject);
  });
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith('prober_probe_total{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/**
 * The floor process: dockerode's container list every second, and on "start" bare
 * self-correcting timer chains making the probes' requests; "stop" ends them and answers with
 * how many ran (and failed).
 */
const floorCode = `import Docker from 'dockerode';
import http from 'node:http';
import net from 'node:net';
const docker = new Docker({ socketPath: process.env.DOCKER_SOCK ?? '/var/run/docker.sock' });
const label = process.env.KNODE_FLOOR_LABEL;
setInterval(() => void docker.listContainers({ all: true, filters: { label: [label] } }).catch(() => undefined), 1000);
let timers = [];
let ran = 0;
let failed = 0;
const httpGet = (ip) => new Promise((resolve) => {
  const req = http.get({ host: ip, port: 8080, path: '/', agent: false, timeout: 1000 }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode === 200)); });
  req.on('timeout', () => req.destroy());
  req.on('error', () => resolve(false));
});
const tcp = (ip) => new Promise((resolve) => {
  const socket = net.connect({ host: ip, port: 8080, timeout: 1000 }, () => { socket.destroy(); resolve(true); });
  socket.on('timeout', () => socket.destroy());
  socket.on('error', () => resolve(false));
});
const exec = async (id) => {
  const e = await docker.getContainer(id).exec({ Cmd: ['true'], AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  await new Promise((resolve) => { stream.on('end', resolve); stream.on('close', resolve); stream.on('error', resolve); stream.resume(); });
  return (await e.inspect()).ExitCode === 0;
};
process.on('message', (message) => {
  if (message.op === 'start') {
    ran = 0; failed = 0;
    const start = Date.now();
    for (const pod of message.pods) {
      for (const [kind, period] of [[() => httpGet(pod.ip), message.httpTcpPeriod], [() => tcp(pod.ip), message.httpTcpPeriod], [() => exec(pod.sidecar), message.execPeriod]]) {
        let due = start + Math.floor(Math.random() * period * 1000);
        const fire = () => {
          const now = Date.now();
          while (due <= now) due += period * 1000;
          timers.push(setTimeout(fire, due - now));
          ran++;
          kind().then((ok) => void (ok || failed++), () => failed++);
        };
        timers.push(setTimeout(fire, due - start));
      }
    }
    process.send({ op: 'started' });
  } else if (message.op === 'stop') {
    for (const timer of timers) clearTimeout(timer);
    timers = [];
    process.send({ op: 'stopped', ran, failed });
  }
});
process.on('disconnect', () => process.exit(0));`;

function startFloor(): ChildProcess {
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  return spawn(process.execPath, ['--input-type=module', '-e', floorCode], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, KNODE_FLOOR_LABEL: scope } });
}

function ask<T>(child: ChildProcess, message: object, answer: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (reply: { op: string } & T) => {
      if (reply.op !== answer) return;
      child.off('message', onMessage);
      resolve(reply);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`floor process exited (${code})`)));
    child.send(message);
  });
}

async function inside(): Promise<void> {
  if (!Number.isInteger(pods) || pods < 1 || !(httpTcpPeriod > 0) || !(execPeriod > 0)) throw new Error('usage: probes-agent [pods] [httpTcpPeriod s] [execPeriod s]');
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCK ?? '/var/run/docker.sock' });
  await ensureLocalImage(docker, busyboxSpec);
  await run(['ip', 'link', 'set', 'lo', 'up']);
  const nodeName = `knb-pa-${runId}`;
  let floor: ChildProcess | undefined;
  const { node, cleanup } = await startBenchCluster({ id: `pa${runId}`, nodeName, scope, subnet: '10.251.0.0/24', docker, inheritNetns: true }, () => [floor]);
  try {
    const { agent, readOnlyPort: port, kubeletPort, manifests } = node;
    await until('agent API', async () => (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)), 30_000, 100);
    floor = startFloor();
    const writeAll = async (probes: boolean) => {
      for (let i = 0; i < pods; i++) await writeFile(join(manifests, `p${i}.yaml`), manifest(`p${i}`, probes));
    };
    await writeAll(false);
    await until(`${pods} pods Running`, async () => (await podViews(port)).length >= pods, 300_000 + pods * 5000, 500);
    await sleep(5000);

    // Phase 1: no probes; the base cost of each process, side by side.
    const agentBase: number[] = [];
    const floorBase: number[] = [];
    for (let w = 0; w < rounds; w++) {
      const [a, f] = await Promise.all([cpuDuring(agent.pid!, () => sleep(windowMs)), cpuDuring(floor.pid!, () => sleep(windowMs))]);
      agentBase.push(a);
      floorBase.push(f);
    }

    // Phase 2: the same pods with probes (new manifests: the pods are recreated).
    const before = new Set((await podViews(port)).map((p) => p.uid));
    await writeAll(true);
    await until(`${pods} pods with probes Running and Ready`, async () => {
      const views = (await podViews(port)).filter((p) => !before.has(p.uid));
      return views.length >= pods && views.every((p) => p.ready && p.sidecar);
    }, 300_000 + pods * 5000, 500);
    await sleep(Math.max(5000, execPeriod * 1000));
    const targets = (await podViews(port)).filter((p) => !before.has(p.uid)).map((p) => ({ ip: p.ip, sidecar: p.sidecar }));

    const agentPerProbe: number[] = [];
    const floorPerProbe: number[] = [];
    const agentRates: number[] = [];
    const floorRates: number[] = [];
    let floorFailures = 0;
    const baseAgent = spreadOf(agentBase).median;
    const baseFloor = spreadOf(floorBase).median;
    for (let r = 0; r < rounds; r++) {
      const probesBefore = await probesRun(kubeletPort);
      const agentCpu = await cpuDuring(agent.pid!, () => sleep(windowMs));
      const agentProbes = (await probesRun(kubeletPort)) - probesBefore;
      let counted = { ran: 0, failed: 0 };
      await ask(floor, { op: 'start', pods: targets, httpTcpPeriod, execPeriod }, 'started');
      const floorCpu = await cpuDuring(floor.pid!, async () => {
        await sleep(windowMs);
        counted = await ask<{ ran: number; failed: number }>(floor!, { op: 'stop' }, 'stopped');
      });
      floorFailures += counted.failed;
      agentPerProbe.push((agentCpu - baseAgent) / agentProbes);
      floorPerProbe.push((floorCpu - baseFloor) / counted.ran);
      agentRates.push(agentProbes / (windowMs / 1000));
      floorRates.push(counted.ran / (windowMs / 1000));
      console.log(`  round ${r + 1}: agent ${agentProbes} probes, ${agentCpu.toFixed(0)} ms CPU (base ${baseAgent.toFixed(0)}); floor ${counted.ran} probes (${counted.failed} failed), ${floorCpu.toFixed(0)} ms CPU (base ${baseFloor.toFixed(0)})`);
    }
    const fmt = (values: number[]) => {
      const s = spreadOf(values);
      return `min ${s.min.toFixed(3)} / median ${s.median.toFixed(3)} / max ${s.max.toFixed(3)}`;
    };
    console.log(`\nprobes-agent: ${pods} pods × (httpGet + tcpSocket every ${httpTcpPeriod} s, exec every ${execPeriod} s), ${rounds} rounds of ${windowMs / 1000} s windows`);
    console.log(`  knode agent CPU per probe (ms): ${fmt(agentPerProbe)}; probes/s ${fmt(agentRates)}; base CPU ${fmt(agentBase.map((v) => v / windowMs * 100))} % of a core`);
    console.log(`  floor CPU per probe (ms): ${fmt(floorPerProbe)}; probes/s ${fmt(floorRates)}; base CPU ${fmt(floorBase.map((v) => v / windowMs * 100))} %; failed ${floorFailures}`);
    // A failed probe still made its request (a timeout or a refused exec); many would mean the
    // floor did different work than the agent.
    const floorRan = floorRates.reduce((sum, rate) => sum + rate * (windowMs / 1000), 0);
    if (floorFailures > floorRan / 100) throw new Error(`the floor's probes failed ${floorFailures} of ${floorRan} times: its figures would not be the same work`);
    reportFigure({
      name: 'probe CPU per probe (knode agent)',
      value: spreadOf(agentPerProbe).median,
      unit: 'ms',
      baseline: spreadOf(floorPerProbe).median,
      baselineName: 'node + dockerode with bare timers making the same HTTP GET / TCP connect / Docker exec to the same containers (plus the 1 s container relist); CPU with probes minus without, per probe',
      better: 'lower',
      description: `${pods} static pods × (readiness httpGet + liveness tcpSocket every ${httpTcpPeriod} s, liveness exec every ${execPeriod} s); the deployed agent's CPU (/proc) with probes minus without, over prober_probe_total; ${rounds} alternating rounds of ${windowMs / 1000} s; floor probes failed: ${floorFailures}`,
      roundRatios: roundRatios(agentPerProbe, floorPerProbe),
    });
  } finally {
    await cleanup();
  }
}

/** Re-executes this script inside a fresh test netns (the agent and its pods live there). */
async function outside(): Promise<void> {
  const name = `knt-bench-pa-${runId}`;
  await run(['ip', 'netns', 'add', name]);
  try {
    const child = spawn('nsenter', [`--net=/var/run/netns/${name}`, process.execPath, process.argv[1] ?? '', ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, KNODE_BENCH_NETNS: name, KNODE_BENCH_PARENT_NS: readlinkSync('/proc/self/ns/net') } });
    const forward = () => child.kill('SIGTERM');
    process.once('SIGTERM', forward);
    process.once('SIGINT', forward);
    const code = await new Promise<number>((resolve) => child.once('exit', (exit) => resolve(exit ?? 1)));
    process.exitCode = code;
  } finally {
    await run(['ip', 'netns', 'del', name], { allowFailure: true });
  }
}

if (process.env.KNODE_BENCH_NETNS && readlinkSync('/proc/self/ns/net') === process.env.KNODE_BENCH_PARENT_NS) throw new Error('KNODE_BENCH_NETNS is set but this process is still in the network namespace it was started from');
(process.env.KNODE_BENCH_NETNS ? inside() : outside()).catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
