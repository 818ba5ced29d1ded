/**
 * Eviction benchmark: the cost of sampling the node's signals (the fast memory poll and a full
 * housekeeping observation) next to the floor of reading the same kernel files directly, and the
 * cost of one eviction decision (rank + message) for 110 pods (the default maxPods) and 1,000.
 *
 *   node dist-bench/bench/eviction-signals.js [--iterations 2000]
 */
import { readFile } from 'node:fs/promises';
import { statfs } from 'node:fs/promises';
import { NodeSignals } from '../eviction/signals.js';
import { detectCgroupLayout } from '../eviction/cgroup-memory.js';
import { chooseEviction } from '../eviction/policy.js';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodUsage, Threshold } from '../eviction/types.js';
import { reportFigure } from './lib/report.js';

/** A one-container pod to rank (the UID is the name). */
function benchPod(name: string, priority: number, requests: Record<string, string> | undefined): V1Pod {
  return { metadata: { name, namespace: 'default', uid: name }, spec: { priority, containers: [{ name: 'c', image: 'busybox', resources: { requests } }] } };
}

function parseIterations(argv: string[]): number {
  if (argv.length === 0) return 2000;
  const value = Number(argv[1]);
  if (argv[0] !== '--iterations' || !Number.isInteger(value) || value <= 0) throw new Error('usage: eviction-signals [--iterations N]');
  return value;
}

async function timeIt(iterations: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < Math.min(50, iterations); i++) await fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await fn();
  return Number(process.hrtime.bigint() - start) / 1000 / iterations;
}

async function main(): Promise<void> {
  const iterations = parseIterations(process.argv.slice(2));
  const layout = await detectCgroupLayout();
  const signals = new NodeSignals({ rootDir: '/', imageFsPath: '/var/lib/docker' });
  const files = layout.version === 1 ? ['memory.usage_in_bytes', 'memory.stat'] : ['memory.stat'];
  const floorMemory = await timeIt(iterations, () => Promise.all([...files.map((f) => readFile(`${layout.memoryRoot}/${f}`)), readFile('/proc/meminfo')]));
  const memory = await timeIt(iterations, () => signals.observeMemory());
  const floorAll = await timeIt(iterations, () =>
    Promise.all([
      ...files.map((f) => readFile(`${layout.memoryRoot}/${f}`)),
      readFile('/proc/meminfo'),
      statfs('/'),
      statfs('/var/lib/docker'),
      readFile('/proc/sys/kernel/pid_max'),
      readFile('/proc/sys/kernel/threads-max'),
      readFile('/proc/loadavg'),
    ]),
  );
  const all = await timeIt(iterations, () => signals.observe());

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
  const rows: [string, number, number | undefined, string][] = [
    [`memory.available (cgroup v${layout.version}) — fast poll`, memory, floorMemory, 'reading the same cgroup files and /proc/meminfo directly'],
    ['all signals — housekeeping observe()', all, floorAll, 'reading the same kernel files and statfs() directly'],
    ['eviction decision, 110 pods', await decide(110), undefined, 'none: a pure ranking has no reference implementation here'],
    ['eviction decision, 1000 pods', await decide(1000), undefined, 'none: a pure ranking has no reference implementation here'],
  ];
  console.log('operation'.padEnd(48), 'knode µs'.padStart(10), 'floor µs'.padStart(10), 'ratio'.padStart(7));
  for (const [name, value, floor] of rows) {
    console.log(name.padEnd(48), value.toFixed(1).padStart(10), (floor?.toFixed(1) ?? '-').padStart(10), (floor ? (value / floor).toFixed(2) : '-').padStart(7));
  }
  for (const [name, value, floor, baselineName] of rows) {
    reportFigure({ name, value, unit: 'µs', baseline: floor ?? null, baselineName, better: 'lower', description: floor === undefined ? `mean of ${Math.max(20, Math.floor(iterations / 20))} decisions` : `mean of ${iterations} iterations` });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
