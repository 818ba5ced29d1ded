/**
 * The benchmarks' machine-readable protocol. A benchmark keeps printing its own human table and,
 * for each key figure, one extra stdout line:
 *
 *   KNODE-BENCH {"name":"pod start p50","value":612.3,"unit":"ms","baseline":420.1,...}
 *
 * `npm run bench` (bench/run.ts) reads those lines from each child's stdout and writes
 * bench/results.json and bench/results.md (./results.ts). Every baseline is measured in the same
 * run as its figure; a figure without a meaningful baseline says so (baseline null, and
 * baselineName says why) rather than invent one.
 */
import { z } from 'zod';

export const MARKER = 'KNODE-BENCH ';

export interface Figure {
  /** Short and unique within its benchmark, e.g. "pod start p50". */
  name: string;
  value: number;
  /** ms, µs, Gbit/s, MiB, % of one core, … */
  unit: string;
  /** The same quantity for the reference path, measured in the same run; null when none exists. */
  baseline: number | null;
  /** What the baseline is (or, when baseline is null, why there is none). */
  baselineName: string;
  /** Which direction is better for this figure (and for its ratio = value / baseline). */
  better: 'lower' | 'higher';
  /** Conditions of the measurement (sizes, samples, …). */
  description?: string;
  /**
   * The ratio value/baseline of each interleaved round (≥ 3 rounds for a trusted figure): the
   * results table shows their min/median/max. Build it with `roundRatios` below.
   */
  roundRatios?: number[];
}

const figureSchema = z.object({
  name: z.string().min(1),
  value: z.number().refine(Number.isFinite, 'value must be a finite number'),
  unit: z.string(),
  baseline: z.number().refine(Number.isFinite, 'baseline must be a finite number').nullable(),
  baselineName: z.string(),
  better: z.enum(['lower', 'higher']),
  description: z.string().optional(),
  roundRatios: z.array(z.number().refine(Number.isFinite, 'round ratios must be finite')).max(1000).optional(),
});

/** The line a benchmark prints for a figure; throws on a non-finite value (a bug in the bench). */
export function formatFigure(figure: Figure): string {
  const parsed = figureSchema.safeParse(figure);
  if (!parsed.success) throw new Error(`invalid benchmark figure ${JSON.stringify(figure)}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'figure'}: ${i.message}`).join('; ')}`);
  return `${MARKER}${JSON.stringify(parsed.data)}`;
}

/** Prints one figure for the runner (stdout, one line). */
export function reportFigure(figure: Figure): void {
  process.stdout.write(`${formatFigure(figure)}\n`);
}

export interface ParsedOutput {
  figures: Figure[];
  /** Lines that carry the marker but do not hold a valid figure. */
  errors: string[];
}

/** Extracts the figures from a benchmark's stdout; other lines are the human report. */
export function parseFigures(stdout: string): ParsedOutput {
  const figures: Figure[] = [];
  const errors: string[] = [];
  for (const raw of stdout.split('\n')) {
    const line = raw.trimEnd();
    if (!line.startsWith(MARKER)) continue;
    let json: unknown;
    try {
      json = JSON.parse(line.slice(MARKER.length));
    } catch (error) {
      errors.push(`not JSON: ${line.slice(0, 200)} (${(error as Error).message})`);
      continue;
    }
    const parsed = figureSchema.safeParse(json);
    if (parsed.success) figures.push(parsed.data);
    else errors.push(`invalid figure: ${line.slice(0, 200)} (${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`);
  }
  return { figures, errors };
}

/** value / baseline, or null when there is no usable baseline (none, zero or negative). */
export function ratio(value: number, baseline: number | null): number | null {
  if (baseline === null || !Number.isFinite(baseline) || baseline <= 0 || !Number.isFinite(value)) return null;
  return value / baseline;
}

/**
 * The per-round ratios of a figure measured in interleaved rounds: `values[i] / baselines[i]`
 * (rounds without a usable baseline are left out).
 */
export function roundRatios(values: readonly number[], baselines: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(values.length, baselines.length); i++) {
    const r = ratio(values[i]!, baselines[i]!);
    if (r !== null) out.push(r);
  }
  return out;
}

/** p-th percentile (nearest rank) of the samples; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let handlerInstalled = false;

/**
 * Registers clean-up to run when the runner stops this benchmark (SIGTERM on timeout, SIGINT on
 * Ctrl-C) — node would otherwise exit without running `finally` blocks, leaving netns and
 * containers behind. Clean-ups must be idempotent: the normal path runs its own as well.
 */
export function onTerminate(cleanup: () => Promise<unknown> | unknown): void {
  cleanups.push(cleanup);
  if (handlerInstalled) return;
  handlerInstalled = true;
  const handler = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\n${signal}: cleaning up the benchmark's resources\n`);
    const all = (async () => {
      for (const fn of [...cleanups].reverse()) await Promise.resolve().then(fn).catch((error: unknown) => process.stderr.write(`clean-up failed: ${String(error)}\n`));
    })();
    const cap = new Promise((resolve) => setTimeout(resolve, 20_000).unref());
    void Promise.race([all, cap]).then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
}
