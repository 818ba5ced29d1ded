/**
 * Probe load benchmark (issue 6), an extra row: the ProbeManager in this process, not the
 * deployed agent (bench/probes-agent.ts measures `knode agent`, issue 24). 1,000 pods' worth of probes — per pod a readiness httpGet and a
 * liveness tcpSocket on container "app" against real HTTP/TCP servers on 127.0.0.1, and a
 * liveness exec on container "sidecar" through a fake runtime — run by the ProbeManager, then
 * the same requests from bare timers (the floor) in the same run. Prints CPU per
 * probe (this process only; the targets run in a child process) and scheduling drift (actual
 * start of a probe vs its configured period) p50/p99, with the knode/baseline ratio.
 *
 *   node dist-bench/bench/probes-load.js [--pods 1000] [--period 10] [--duration 60]
 * Inside a network namespace of its own (loopback only, as the issue asks):
 *   ip netns add knt-probes-bench && ip netns exec knt-probes-bench ip link set lo up
 *   ip netns exec knt-probes-bench node dist-bench/bench/probes-load.js; ip netns del knt-probes-bench
 * Drift is measured per tick (onTick: actual start vs scheduled time); "steady" figures leave
 * out each round's first period (worker creation, first-tick jitter, cold code).
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import type { V1Pod } from '@kubernetes/client-node';
import { createLogger } from '../lib/log.js';
import { ProbeManager } from '../probes/manager.js';
import { HandlerProber } from '../probes/prober.js';
import { percentile, reportFigure, roundRatios } from './lib/report.js';
import { FakeExecutor, FakePodStatusProvider, RecordingProbeListener } from '../test/helpers/probe-fakes.js';

interface Options {
  pods: number;
  periodSeconds: number;
  durationSeconds: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { pods: 1000, periodSeconds: 10, durationSeconds: 60 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`bad value for ${argv[i]}: ${argv[i + 1]}`);
    if (argv[i] === '--pods') options.pods = value;
    else if (argv[i] === '--period') options.periodSeconds = value;
    else if (argv[i] === '--duration') options.durationSeconds = value;
    else throw new Error(`unknown flag ${argv[i]} (--pods N --period S --duration S)`);
  }
  return options;
}

/** The child: an HTTP server answering 200 "ok" and a TCP server that accepts and closes. */
function serveTargets(): void {
  const httpServer = http.createServer((_req, res) => res.end('ok'));
  httpServer.maxConnections = 100_000;
  const tcpServer = net.createServer((socket) => socket.end());
  httpServer.listen(0, '127.0.0.1', () =>
    tcpServer.listen(0, '127.0.0.1', () => {
      process.send?.({ http: (httpServer.address() as net.AddressInfo).port, tcp: (tcpServer.address() as net.AddressInfo).port });
    }),
  );
  process.on('disconnect', () => process.exit(0));
}

interface Sample {
  drifts: number[];
  /** Drifts after the first period of the round (steady state, setup and first-tick costs excluded). */
  steady: number[];
  probes: number;
  cpuMs: number;
  /** CPU and probes after the first period (steady state). */
  steadyCpuMs: number;
  failures: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function runKnode(options: Options, ports: { http: number; tcp: number }): Promise<Sample> {
  const statuses = new FakePodStatusProvider();
  const drifts: number[] = [];
  const steady: number[] = [];
  let steadyFrom = Number.POSITIVE_INFINITY;
  const executor = new FakeExecutor(() => ({ exitCode: 0, stdout: '', stderr: '' }));
  const listener = new RecordingProbeListener();
  const manager = new ProbeManager({
    prober: new HandlerProber(executor),
    listener,
    statusProvider: statuses,
    registry: new Registry(),
    logger: createLogger('bench', 'silent'),
    onTick: (_type, scheduled, actual) => {
      drifts.push(actual - scheduled);
      if (actual >= steadyFrom) steady.push(actual - scheduled);
    },
  });
  const period = options.periodSeconds;
  for (let i = 0; i < options.pods; i++) {
    const uid = `bench-${i}`;
    const pod: V1Pod = {
      metadata: { uid, name: uid, namespace: 'bench' },
      spec: {
        containers: [
          { name: 'app', readinessProbe: { httpGet: { port: ports.http, path: '/healthz' }, periodSeconds: period }, livenessProbe: { tcpSocket: { port: ports.tcp }, periodSeconds: period } },
          { name: 'sidecar', livenessProbe: { exec: { command: ['true'] }, periodSeconds: period } },
        ],
      },
    };
    manager.addPod(pod);
    const running = { running: { startedAt: new Date(0) } };
    statuses.statuses.set(uid, {
      phase: 'Running',
      podIP: '127.0.0.1',
      containerStatuses: ['app', 'sidecar'].map((name) => ({ name, containerID: `fake://${uid}/${name}`, image: '', imageID: '', ready: false, restartCount: 0, state: running })),
    });
  }
  const cpu = process.cpuUsage();
  steadyFrom = Date.now() + period * 1000;
  manager.start();
  await sleep(period * 1000);
  const steadyCpu = process.cpuUsage();
  await sleep((options.durationSeconds - period) * 1000);
  const used = process.cpuUsage(cpu);
  const steadyUsed = process.cpuUsage(steadyCpu);
  manager.stop();
  const failures = listener.events.length;
  return { drifts, steady, probes: drifts.length, cpuMs: (used.user + used.system) / 1000, steadyCpuMs: (steadyUsed.user + steadyUsed.system) / 1000, failures };
}

function httpOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

function tcpOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** The floor: one bare timer chain per probe, same jitter, same requests, no probe machinery. */
async function runBaseline(options: Options, ports: { http: number; tcp: number }): Promise<Sample> {
  const period = options.periodSeconds * 1000;
  const drifts: number[] = [];
  const steady: number[] = [];
  let failures = 0;
  const timers: NodeJS.Timeout[] = [];
  const executor = new FakeExecutor(() => ({ exitCode: 0, stdout: '', stderr: '' }));
  const kinds: Array<() => Promise<boolean>> = [() => httpOnce(ports.http), () => tcpOnce(ports.tcp), async () => (await executor.execSync('c', ['true'], 1000)).exitCode === 0];
  const cpu = process.cpuUsage();
  const start = Date.now();
  for (let i = 0; i < options.pods; i++) {
    for (const kind of kinds) {
      // A self-correcting timer chain on a fixed schedule (setInterval would let lateness add up).
      let due = start + Math.floor(Math.random() * period);
      const fire = (): void => {
        const now = Date.now();
        drifts.push(now - due);
        if (now >= start + period) steady.push(now - due);
        while (due <= now) due += period;
        timers.push(setTimeout(fire, due - now));
        kind().then((ok) => void (ok || failures++), () => failures++);
      };
      timers.push(setTimeout(fire, due - start));
    }
  }
  await sleep(period);
  const steadyCpu = process.cpuUsage();
  await sleep(options.durationSeconds * 1000 - period);
  const used = process.cpuUsage(cpu);
  const steadyUsed = process.cpuUsage(steadyCpu);
  for (const timer of timers) clearTimeout(timer);
  return { drifts, steady, probes: drifts.length, cpuMs: (used.user + used.system) / 1000, steadyCpuMs: (steadyUsed.user + steadyUsed.system) / 1000, failures };
}

function merge(samples: Sample[]): Sample {
  return {
    drifts: samples.flatMap((sample) => sample.drifts),
    steady: samples.flatMap((sample) => sample.steady),
    probes: samples.reduce((sum, sample) => sum + sample.probes, 0),
    cpuMs: samples.reduce((sum, sample) => sum + sample.cpuMs, 0),
    steadyCpuMs: samples.reduce((sum, sample) => sum + sample.steadyCpuMs, 0),
    failures: samples.reduce((sum, sample) => sum + sample.failures, 0),
  };
}

function row(name: string, sample: Sample): string {
  return `${name.padEnd(22)} probes=${String(sample.probes).padStart(7)}  cpu/probe=${(sample.cpuMs / sample.probes).toFixed(3)} ms (steady ${(sample.steadyCpuMs / sample.steady.length).toFixed(3)})  drift p50=${percentile(sample.drifts, 50).toFixed(1)} ms  p99=${percentile(sample.drifts, 99).toFixed(1)} ms  steady p99=${percentile(sample.steady, 99).toFixed(1)} ms  max=${sample.drifts.reduce((a, b) => Math.max(a, b), 0).toFixed(0)} ms  failures=${sample.failures}`;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--targets') return serveTargets();
  const options = parseArgs(process.argv.slice(2));
  const child = fork(fileURLToPath(import.meta.url), ['--targets'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const ports = await new Promise<{ http: number; tcp: number }>((resolve, reject) => {
      child.once('message', (message) => resolve(message as { http: number; tcp: number }));
      child.once('exit', (code) => reject(new Error(`target server exited with ${code}`)));
    });
    console.log(`probes-load: ${options.pods} pods × 3 probes (httpGet, tcpSocket, exec), period ${options.periodSeconds}s, ${options.durationSeconds}s per side in 3 alternating rounds, node ${process.version}`);
    // Warm both paths up (module loading, JIT) so neither measured run pays the cold start,
    // then alternate rounds so that both see the same load from the rest of the machine.
    const warm = { ...options, pods: Math.max(1, Math.ceil(options.pods / 10)), durationSeconds: Math.min(options.periodSeconds, 5) };
    await runKnode(warm, ports);
    await runBaseline(warm, ports);
    const rounds = 3;
    const round = { ...options, durationSeconds: options.durationSeconds / rounds };
    const knodeRounds: Sample[] = [];
    const baseRounds: Sample[] = [];
    for (let i = 0; i < rounds; i++) {
      await sleep(1000);
      knodeRounds.push(await runKnode(round, ports));
      await sleep(1000);
      baseRounds.push(await runBaseline(round, ports));
    }
    const knode = merge(knodeRounds);
    const base = merge(baseRounds);
    console.log(row('knode ProbeManager', knode));
    console.log(row('baseline bare timers', base));
    const cpuRatio = knode.cpuMs / knode.probes / (base.cpuMs / base.probes);
    const steadyCpuRatio = knode.steadyCpuMs / knode.steady.length / (base.steadyCpuMs / base.steady.length);
    const driftRatio = percentile(knode.drifts, 99) / Math.max(1, percentile(base.drifts, 99));
    const steadyRatio = percentile(knode.steady, 99) / Math.max(1, percentile(base.steady, 99));
    const baselineName = 'bare self-correcting timers making the same HTTP/TCP/exec requests, alternating rounds in the same process';
    const description = `${options.pods} pods × 3 probes, period ${options.periodSeconds} s, ${options.durationSeconds} s per side in ${rounds} alternating rounds`;
    const steadyDescription = `${description}; first period of each round left out`;
    // Each figure over all rounds, with its ratio per round (knode round i vs baseline round i).
    const perRound = (metric: (sample: Sample) => number) => roundRatios(knodeRounds.map(metric), baseRounds.map(metric));
    const cpuPerProbe = (sample: Sample) => sample.cpuMs / sample.probes;
    const steadyCpuPerProbe = (sample: Sample) => sample.steadyCpuMs / sample.steady.length;
    const driftP99 = (sample: Sample) => percentile(sample.drifts, 99);
    const steadyDriftP99 = (sample: Sample) => percentile(sample.steady, 99);
    const hasSteady = knodeRounds.every((sample) => sample.steady.length > 0) && baseRounds.every((sample) => sample.steady.length > 0);
    reportFigure({ name: 'probe CPU per probe (ProbeManager in-process)', value: cpuPerProbe(knode), unit: 'ms', baseline: cpuPerProbe(base), baselineName, better: 'lower', description, roundRatios: perRound(cpuPerProbe) });
    if (hasSteady) reportFigure({ name: 'probe CPU per probe, steady state (ProbeManager in-process)', value: steadyCpuPerProbe(knode), unit: 'ms', baseline: steadyCpuPerProbe(base), baselineName, better: 'lower', description: steadyDescription, roundRatios: perRound(steadyCpuPerProbe) });
    reportFigure({ name: 'probe scheduling drift p99 (ProbeManager in-process)', value: driftP99(knode), unit: 'ms', baseline: driftP99(base), baselineName, better: 'lower', description, roundRatios: perRound(driftP99) });
    if (hasSteady) reportFigure({ name: 'probe scheduling drift p99, steady state (ProbeManager in-process)', value: steadyDriftP99(knode), unit: 'ms', baseline: steadyDriftP99(base), baselineName, better: 'lower', description: steadyDescription, roundRatios: perRound(steadyDriftP99) });
    console.log(`ratio knode/baseline: cpu per probe ×${cpuRatio.toFixed(2)} (steady ×${steadyCpuRatio.toFixed(2)}), drift p99 ×${driftRatio.toFixed(2)}, steady drift p99 ×${steadyRatio.toFixed(2)} (baseline p99 floored at 1 ms)`);
  } finally {
    child.disconnect();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
