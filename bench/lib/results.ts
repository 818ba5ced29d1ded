/**
 * bench/results.json and bench/results.md: one entry per figure (plus one per failed run), each
 * with the date, machine and status of the run that produced it, so that a partial run
 * (`npm run bench -- NAME…`) replaces only its own benchmarks' entries. Pure, except
 * currentMachine().
 */
import os from 'node:os';
import { spreadOf } from './machine-load.js';
import { ratio, type Figure } from './report.js';

export type RunStatus = 'ok' | 'failed' | 'timeout' | 'interrupted';

/** One benchmark process as the runner saw it. */
export interface BenchRun {
  bench: string;
  args: string[];
  status: RunStatus;
  exitCode: number | null;
  /** Wall time of the whole benchmark process. */
  seconds: number;
  /** ISO 8601 start of the run. */
  date: string;
  machine: string;
  /** 1-minute load average when it started (other work on the machine adds noise). */
  loadAverage: number;
  /** 1-minute load average when it ended (the benchmark's own load included). */
  loadAfter?: number;
  /** Percent of CPU time stolen by the hypervisor during the run. */
  stealPercent?: number;
  /** It started with more than one runnable task per core from outside: its figures do not count. */
  loaded?: boolean;
  error?: string;
}

export interface Entry {
  bench: string;
  name: string;
  value: number | null;
  unit: string;
  baseline: number | null;
  baselineName: string;
  /** value / baseline; null without a usable baseline. */
  ratio: number | null;
  better: 'lower' | 'higher' | null;
  description?: string;
  status: RunStatus;
  date: string;
  machine: string;
  seconds: number;
  loadAverage: number;
  loadAfter?: number;
  stealPercent?: number;
  loaded?: boolean;
  /** Per-round ratios (see Figure.roundRatios). */
  roundRatios?: number[];
  args: string[];
  error?: string;
}

/** The name of the entry that stands for the run itself when it did not complete. */
export const RUN_ENTRY = '(run)';

/** Entries for one run: its figures, and a "(run)" entry carrying the error when it failed. */
export function entriesForRun(run: BenchRun, figures: readonly Figure[], parseErrors: readonly string[]): Entry[] {
  let { status, error } = run;
  if (status === 'ok' && parseErrors.length > 0) [status, error] = ['failed', `unreadable KNODE-BENCH lines: ${parseErrors.join(' | ')}`];
  else if (status === 'ok' && figures.length === 0) [status, error] = ['failed', 'exited 0 but reported no KNODE-BENCH figures'];
  const common = {
    bench: run.bench,
    status,
    date: run.date,
    machine: run.machine,
    seconds: run.seconds,
    loadAverage: run.loadAverage,
    ...(run.loadAfter === undefined ? {} : { loadAfter: run.loadAfter }),
    ...(run.stealPercent === undefined ? {} : { stealPercent: run.stealPercent }),
    ...(run.loaded ? { loaded: true } : {}),
    args: run.args,
  };
  const entries: Entry[] = figures.map((figure) => ({
    ...common,
    name: figure.name,
    value: figure.value,
    unit: figure.unit,
    baseline: figure.baseline,
    baselineName: figure.baselineName,
    ratio: ratio(figure.value, figure.baseline),
    better: figure.better,
    ...(figure.description === undefined ? {} : { description: figure.description }),
    ...(figure.roundRatios === undefined ? {} : { roundRatios: figure.roundRatios }),
  }));
  if (status !== 'ok') entries.push({ ...common, name: RUN_ENTRY, value: null, unit: '', baseline: null, baselineName: '', ratio: null, better: null, error: error ?? status });
  return entries;
}

/**
 * The entries after a run of `ran`: every previous entry of a benchmark that did not run is kept
 * (with its own date); `known`, when given, drops benchmarks that no longer exist. Grouped by
 * benchmark name, each keeping the order its figures were reported in.
 */
export function mergeEntries(previous: readonly Entry[], fresh: readonly Entry[], ran: ReadonlySet<string>, known?: ReadonlySet<string>): Entry[] {
  const kept = previous.filter((entry) => !ran.has(entry.bench) && (known === undefined || known.has(entry.bench)));
  return [...kept, ...fresh].sort((a, b) => (a.bench < b.bench ? -1 : a.bench > b.bench ? 1 : 0));
}

/** Reads a results.json; throws with context when it is not an array of entries. */
export function parseResults(text: string): Entry[] {
  const data: unknown = JSON.parse(text);
  if (!Array.isArray(data)) throw new Error('results.json is not an array');
  for (const [i, entry] of data.entries()) {
    const e = entry as Partial<Entry> | null;
    if (typeof e !== 'object' || e === null || typeof e.bench !== 'string' || typeof e.name !== 'string' || typeof e.date !== 'string') {
      throw new Error(`results.json entry ${i} lacks bench/name/date`);
    }
  }
  return data as Entry[];
}

export interface MachineFacts {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  node: string;
}

export function describeMachine(facts: MachineFacts): string {
  const gib = (facts.memoryBytes / 2 ** 30).toFixed(1);
  return `${facts.cpuModel.trim().replace(/\s+/g, ' ')}, ${facts.cores} cores, ${gib} GiB RAM, ${facts.kernel}, Node ${facts.node}`;
}

export function currentMachine(): string {
  const cpus = os.cpus();
  return describeMachine({ cpuModel: cpus[0]?.model ?? 'unknown CPU', cores: cpus.length, memoryBytes: os.totalmem(), kernel: `${os.type()} ${os.release()}`, node: process.version });
}

/** The error line of a stack trace if there is one, else the last lines of stderr. */
export function errorSummary(stderr: string): string {
  const lines = stderr.trim().split('\n').map((line) => line.trim()).filter(Boolean);
  const error = [...lines].reverse().find((line) => /^(\w*Error|Error)\b.*:/.test(line));
  return (error ?? lines.slice(-3).join(' | ')).slice(0, 400);
}

/** A figure with about three significant digits. */
export function formatNumber(value: number): string {
  const abs = Math.abs(value);
  if (abs === 0) return '0';
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  if (abs >= 0.01) return value.toFixed(3);
  return value.toPrecision(2);
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const withUnit = (value: number | null, unit: string) => (value === null ? '–' : `${formatNumber(value)}${unit ? ` ${unit}` : ''}`);
const utc = (iso: string) => `${iso.slice(0, 16).replace('T', ' ')} UTC`;

function ratioCell(entry: Entry): string {
  if (entry.ratio === null) return '–';
  return `${entry.ratio.toFixed(2)}× ${entry.better === 'higher' ? '↑' : '↓'}`;
}

/** "min / median / max (n)" of the per-round ratios, or '–' when the figure has none. */
function spreadCell(entry: Entry): string {
  const rounds = entry.roundRatios ?? [];
  if (rounds.length === 0) return '–';
  const { min, median, max } = spreadOf(rounds);
  return `${min.toFixed(2)} / ${median.toFixed(2)} / ${max.toFixed(2)} (${rounds.length})`;
}

function loadCell(entry: Entry): string {
  const after = entry.loadAfter === undefined ? '' : ` → ${entry.loadAfter.toFixed(2)}`;
  const steal = entry.stealPercent === undefined ? '' : `, steal ${entry.stealPercent.toFixed(1)} %`;
  return `${entry.loadAverage.toFixed(2)}${after}${steal}${entry.loaded ? ' **loaded**' : ''}`;
}

function runsOf(entries: readonly Entry[]): Entry[] {
  const seen = new Map<string, Entry>();
  for (const entry of entries) if (!seen.has(entry.bench)) seen.set(entry.bench, entry);
  return [...seen.values()];
}

/** The header line: the date range and the machine(s) of the entries. */
export function summaryLine(entries: readonly Entry[]): string {
  const runs = runsOf(entries);
  if (runs.length === 0) return 'No benchmark results yet: run `npm run build && npm run bench`.';
  const dates = runs.map((run) => run.date).sort();
  const first = utc(dates[0]!);
  const last = utc(dates[dates.length - 1]!);
  const machines = [...new Set(runs.map((run) => run.machine))];
  const when = first === last ? first : `${first} – ${last}`;
  return `Measured ${when} on ${machines.length === 1 ? machines[0] : `${machines.length} different machines (see the runs table)`}.`;
}

/** bench/results.md: the figures table and the runs table. */
export function renderMarkdown(entries: readonly Entry[]): string {
  const lines = [
    '<!-- generated by `npm run bench` (bench/run.ts) from bench/results.json -->',
    summaryLine(entries),
    '',
    'Ratio = knode ÷ baseline, both measured in the same run on the same machine (↓: lower is better, ↑: higher is better).',
    'Rounds: the ratio of each interleaved round, min / median / max (number of rounds). A run marked',
    '**loaded** started with a load average above one per core from outside the benchmark: its figures',
    'are shown struck through and do not count.',
    '',
    '| benchmark | figure | knode | baseline | ratio | rounds | baseline is |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const entry of entries) {
    if (entry.name === RUN_ENTRY) {
      lines.push(`| ${cell(entry.bench)} | **${entry.status.toUpperCase()}** | – | – | – | – | ${cell(entry.error ?? '')} |`);
      continue;
    }
    const failed = entry.status === 'ok' ? '' : ` (${entry.status} run)`;
    const strike = (text: string) => (entry.loaded && text !== '–' ? `~~${text}~~` : text);
    lines.push(`| ${cell(entry.bench)} | ${cell(entry.name)}${failed} | ${strike(withUnit(entry.value, entry.unit))} | ${strike(withUnit(entry.baseline, entry.unit))} | ${strike(ratioCell(entry))} | ${spreadCell(entry)} | ${cell(entry.baselineName)} |`);
  }
  const showMachine = new Set(runsOf(entries).map((run) => run.machine)).size > 1;
  lines.push('', `| benchmark | status | duration | started | load avg before → after, steal | arguments${showMachine ? ' | machine' : ''} |`, `|---|---|---|---|---|---${showMachine ? '|---' : ''}|`);
  for (const run of runsOf(entries)) {
    const args = run.args.length > 0 ? `\`${run.args.join(' ')}\`` : '(defaults)';
    lines.push(`| ${cell(run.bench)} | ${run.status} | ${run.seconds.toFixed(0)} s | ${utc(run.date)} | ${loadCell(run)} | ${cell(args)}${showMachine ? ` | ${cell(run.machine)}` : ''} |`);
  }
  return `${lines.join('\n')}\n`;
}
