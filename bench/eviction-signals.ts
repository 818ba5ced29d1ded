/**
 * Eviction benchmark: the cost of sampling the node's signals (the fast memory poll and a full
 * housekeeping observation) next to the floor of reading the same kernel files directly, and the
 * cost of one eviction decision (rank + message) for 110 pods (the default maxPods) and 1,000.
 *
 * Each knode figure and its floor are timed back to back in ≥ 3 interleaved rounds; the per-round
 * ratios are reported (min/median/max in bench/results.md), the figure is the mean over rounds.
 *
 *   node dist-bench/bench/eviction-signals.js [--iterations 2000] [--rounds 3]
 */
import { readFile } from 'node:fs/promises';
import { statfs } from 'node:fs/promises';
import { NodeSignals } from '../eviction/signals.js';
import { detectCgroupLayout } from '../eviction/cgroup-memory.js';
import { chooseEviction } from '../eviction/policy.js';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodUsage, Threshold } from '../eviction/types.js';
import { reportFigure, roundRatios } from './lib/report.js';

/** A one-container pod to rank (the UID is the name). */
function benchPod(name: string, priority: number, requests: Record<string, string> | undefined): V1Pod {
  return { metadata: { name, namespace: 'default', uid: name }, spec: { priority, containers: [{ name: 'c', image: 'busybox', resources: { requests } }] } };
}

function parseArgs(argv: string[]): { iterations: number; rounds: number } {
  const options = { iterations: 2000, rounds: 3 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, '');
    const value = Number(argv[i + 1]);
    if ((name !== 'iterations' && name !== 'rounds') || !Number.isInteger(value) || value <= 0 || value > 1e7) throw new Error('usage: eviction-signals [--iterations N] [--rounds N]');
    options[name] = value;
  }
  return options;
}

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

async function timeIt(iterations: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < Math.min(50, iterations); i++) await fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await fn();
  return Number(process.hrtime.bigint() - start) / 1000 / iterations;
}

async function main(): Promise<void> {
  const { iterations, rounds } = parseArgs(process.argv.slice(2));
  const layout = await detectCgroupLayout();
  const signals = new NodeSignals({ rootDir: '/', imageFsPath: '/var/lib/docker' });
  const files = layout.version === 1 ? ['memory.usage_in_bytes', 'memory.stat'] : ['memory.stat'];
  const readMemory = () => Promise.all([...files.map((f) => readFile(`${layout.memoryRoot}/${f}`)), readFile('/proc/meminfo')]);
  const readAll = () =>
    Promise.all([
      ...files.map((f) => readFile(`${layout.memoryRoot}/${f}`)),
      readFile('/proc/meminfo'),
      statfs('/'),
      statfs('/var/lib/docker'),
      readFile('/proc/sys/kernel/pid_max'),
      readFile('/proc/sys/kernel/threads-max'),
      readFile('/proc/loadavg'),
    ]);
  const timed = { floorMemory: [] as number[], memory: [] as number[], floorAll: [] as number[], all: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    timed.floorMemory.push(await timeIt(iterations, readMemory));
    timed.memory.push(await timeIt(iterations, () => signals.observeMemory()));
    timed.floorAll.push(await timeIt(iterations, readAll));
    timed.all.push(await timeIt(iterations, () => signals.observe()));
  }

  const threshold: Threshold = { signal: 'memory.available', value: { quantity: 100 * 2 ** 20 }, gracePeriodMs: 0, hard: true };
  const decide = async (count: number) => {
    const pods = Array.from({ length: count }, (_, i) =>
      benchPod(`p${i}`, i % 7, i % 3 === 0 ? { memory: `${i}Mi` } : undefined),
    );
    const usage = new Map<string, PodUsage>(pods.map((pod, i) => [pod.metadata!.uid!, { containers: [{ name: 'c', memoryWorkingSetBytes: ((i * 7919) % 1000) * 2 ** 20 }] }]));
    const observations = { 'memory.available': { available: 50 * 2 ** 20, capacity: 2 ** 34, time: 0 } };
    return timeIt(Math.max(20, Math.floor(iterations / 20)), () =>
      chooseEviction({ pods, usage, threshold, observations, maxPodGracePeriodSeconds: 0, dedicatedImageFs: false, now: 0 }),
    );
  };
  type Row = [name: string, values: number[], floors: number[] | undefined, baselineName: string];
  const rows: Row[] = [
    [`memory.available (cgroup v${layout.version}) — fast poll`, timed.memory, timed.floorMemory, 'reading the same cgroup files and /proc/meminfo directly'],
    ['all signals — housekeeping observe()', timed.all, timed.floorAll, 'reading the same kernel files and statfs() directly'],
    ['eviction decision, 110 pods', [await decide(110)], undefined, 'none: a pure ranking has no reference implementation here'],
    ['eviction decision, 1000 pods', [await decide(1000)], undefined, 'none: a pure ranking has no reference implementation here'],
  ];
  console.log('operation'.padEnd(48), 'knode µs'.padStart(10), 'floor µs'.padStart(10), 'ratio'.padStart(7));
  for (const [name, values, floors] of rows) {
    const [value, floor] = [mean(values), floors && mean(floors)];
    console.log(name.padEnd(48), value.toFixed(1).padStart(10), (floor?.toFixed(1) ?? '-').padStart(10), (floor ? (value / floor).toFixed(2) : '-').padStart(7));
  }
  for (const [name, values, floors, baselineName] of rows) {
    const common = { name, value: mean(values), unit: 'µs', baselineName, better: 'lower' } as const;
    if (floors === undefined) reportFigure({ ...common, baseline: null, description: `mean of ${Math.max(20, Math.floor(iterations / 20))} decisions` });
    else reportFigure({ ...common, baseline: mean(floors), description: `mean of ${iterations} iterations × ${rounds} interleaved rounds`, roundRatios: roundRatios(values, floors) });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
