/**
 * How busy the machine is around a measurement: the load average and the share of CPU time stolen
 * by the hypervisor (/proc/stat's `steal` column). The runner (bench/run.ts) samples both before
 * and after each benchmark; a run that started with more than one runnable task per core from
 * outside is marked "loaded" in bench/results.md rather than reported as a clean figure.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** Cumulative CPU ticks from the first line of /proc/stat. */
export interface CpuTicks {
  total: number;
  steal: number;
}

/** Parses the aggregate `cpu` line of /proc/stat (user nice system idle iowait irq softirq steal …). */
export function parseCpuTicks(procStat: string): CpuTicks {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat has no aggregate cpu line');
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (fields.length < 8 || fields.some((n) => !Number.isFinite(n))) throw new Error(`unreadable /proc/stat cpu line: ${line}`);
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7]! };
}

export function readCpuTicks(): CpuTicks {
  return parseCpuTicks(readFileSync('/proc/stat', 'utf8'));
}

/** Percent of CPU time stolen between two readings (0 when no time passed). */
export function stealPercent(before: CpuTicks, after: CpuTicks): number {
  const total = after.total - before.total;
  return total > 0 ? (100 * (after.steal - before.steal)) / total : 0;
}

/** One-minute load average per core above which the machine counts as loaded (TESTING.md: ≈ 1 per core). */
export const LOADED_PER_CORE = 1;

export function isLoaded(loadAverage: number, cores = os.cpus().length): boolean {
  return loadAverage > LOADED_PER_CORE * cores;
}

/** Min, median and max of samples (NaN for none): the spread reported for ratios over rounds. */
export function spreadOf(values: readonly number[]): { min: number; median: number; max: number } {
  if (values.length === 0) return { min: Number.NaN, median: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { min: sorted[0]!, median, max: sorted.at(-1)! };
}
