/**
 * `npm run bench`: runs every benchmark in bench/ one after another (they measure the machine,
 * so never in parallel), streams each one's human report, keeps it under bench/results/<name>.txt,
 * collects the KNODE-BENCH figure lines (./lib/report.ts) and writes bench/results.json and
 * bench/results.md after each benchmark. A benchmark that fails or runs past its time limit is
 * recorded as such and the others still run. `npm run bench -- NAME…` runs only the named ones
 * and merges them into the existing results.
 *
 *   npm run build && npm run bench -- [--full] [--timeout SECONDS] [--settle SECONDS] [--list] [NAME…]
 * Sizes and limits: ./lib/plans.ts (KNODE_BENCH_FULL, KNODE_BENCH_TIMEOUT, KNODE_BENCH_ARGS_<NAME>).
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isLoaded, readCpuTicks, stealPercent } from './lib/machine-load.js';
import { parseFigures } from './lib/report.js';
import { currentMachine, entriesForRun, errorSummary, mergeEntries, parseResults, renderMarkdown, type BenchRun, type Entry, type RunStatus } from './lib/results.js';
import { parseRunnerArgs, resolvePlan } from './lib/plans.js';

const here = dirname(fileURLToPath(import.meta.url));
const benchDir = join(here, '..', '..', 'bench');
const resultsDir = join(benchDir, 'results');
const jsonPath = join(benchDir, 'results.json');
const mdPath = join(benchDir, 'results.md');
/** After SIGTERM, how long a benchmark gets to clean up before its process group is killed. */
const graceMs = 30_000;

function benchmarks(): string[] {
  return readdirSync(here)
    .filter((file) => file.endsWith('.js') && file !== 'run.js')
    .map((file) => basename(file, '.js'))
    .sort();
}

let current: { pid: number; stop: (status: RunStatus) => void } | undefined;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

interface Outcome {
  status: RunStatus;
  exitCode: number | null;
  seconds: number;
  stdout: string;
  error?: string;
}

/** Runs one benchmark in its own process group, with a time limit. */
function runOne(name: string, args: string[], timeoutSeconds: number): Promise<Outcome> {
  const started = Date.now();
  const out = createWriteStream(join(resultsDir, `${name}.txt`));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', join(here, `${name}.js`), ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderrTail = '';
    let stopped: RunStatus | undefined;
    let killer: NodeJS.Timeout | undefined;
    const stop = (status: RunStatus) => {
      if (stopped || child.pid === undefined) return;
      stopped = status;
      process.stdout.write(`\n=== ${name}: ${status === 'timeout' ? `time limit of ${timeoutSeconds} s reached` : 'interrupted'}, stopping it (SIGTERM, then SIGKILL after ${graceMs / 1000} s)\n`);
      child.kill('SIGTERM');
      killer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), graceMs);
    };
    const timer = setTimeout(() => stop('timeout'), timeoutSeconds * 1000);
    if (child.pid !== undefined) current = { pid: child.pid, stop };
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      process.stdout.write(chunk);
      out.write(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderrTail = (stderrTail + chunk.toString('utf8')).slice(-2000);
      process.stderr.write(chunk);
      out.write(chunk);
    });
    const finish = (exitCode: number | null, spawnError?: Error) => {
      clearTimeout(timer);
      clearTimeout(killer);
      // Whatever the benchmark left running in its group (agent, iperf3, qemu) goes with it.
      if (stopped && child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
      current = undefined;
      out.end();
      const seconds = (Date.now() - started) / 1000;
      const lastError = errorSummary(stderrTail.split('\n').filter((line) => !line.includes("cleaning up the benchmark's resources")).join('\n'));
      if (spawnError) resolve({ status: 'failed', exitCode: null, seconds, stdout, error: `could not start: ${spawnError.message}` });
      else if (stopped === 'timeout') resolve({ status: 'timeout', exitCode, seconds, stdout, error: `time limit of ${timeoutSeconds} s reached${lastError ? `; last output: ${lastError}` : ''}` });
      else if (stopped) resolve({ status: stopped, exitCode, seconds, stdout, error: 'interrupted by the user' });
      else if (exitCode !== 0) resolve({ status: 'failed', exitCode, seconds, stdout, error: `exit code ${exitCode}${lastError ? `: ${lastError}` : ''}` });
      else resolve({ status: 'ok', exitCode, seconds, stdout });
    };
    child.on('error', (error) => finish(null, error));
    child.on('close', (code, signal) => finish(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : null)));
  });
}

/**
 * Waits (up to `seconds`) for the one-minute load average to fall to half a task per core, so that
 * a benchmark does not start in the tail of the previous one's load.
 */
async function settle(seconds: number): Promise<void> {
  const target = os.cpus().length / 2;
  const deadline = Date.now() + seconds * 1000;
  while ((os.loadavg()[0] ?? 0) > target && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2000));
}

function readPrevious(): Entry[] {
  if (!existsSync(jsonPath)) return [];
  try {
    return parseResults(readFileSync(jsonPath, 'utf8'));
  } catch (error) {
    const aside = `${jsonPath}.unreadable-${Date.now()}`;
    renameSync(jsonPath, aside);
    process.stderr.write(`bench: ${jsonPath} is unreadable (${(error as Error).message}); moved to ${aside}, starting afresh\n`);
    return [];
  }
}

function save(entries: Entry[]): void {
  writeFileSync(`${jsonPath}.tmp`, `${JSON.stringify(entries, null, 2)}\n`);
  renameSync(`${jsonPath}.tmp`, jsonPath);
  writeFileSync(mdPath, renderMarkdown(entries));
}

async function main(): Promise<number> {
  const options = parseRunnerArgs(process.argv.slice(2), process.env);
  const available = benchmarks();
  if (options.list) {
    for (const name of available) {
      const plan = resolvePlan(name, { full: options.full, env: process.env, timeoutSeconds: options.timeoutSeconds });
      process.stdout.write(`${name.padEnd(24)} limit ${String(plan.timeoutSeconds).padStart(5)} s  args: ${plan.args.join(' ') || '(none)'}\n`);
    }
    return 0;
  }
  const unknown = options.names.filter((name) => !available.includes(name));
  if (unknown.length > 0) {
    process.stderr.write(`bench: no such benchmark: ${unknown.join(', ')} (have: ${available.join(', ')}; run npm run build first?)\n`);
    return 2;
  }
  const names = options.names.length > 0 ? options.names : available;
  const machine = currentMachine();
  mkdirSync(resultsDir, { recursive: true });
  let entries = readPrevious();
  const summary: string[] = [];
  let failed = 0;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    current?.stop('interrupted');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  for (const name of names) {
    if (interrupted) break;
    const { args, timeoutSeconds } = resolvePlan(name, { full: options.full, env: process.env, timeoutSeconds: options.timeoutSeconds });
    await settle(options.settleSeconds);
    const date = new Date().toISOString();
    const loadAverage = os.loadavg()[0] ?? 0;
    const loaded = isLoaded(loadAverage);
    const ticksBefore = readCpuTicks();
    process.stdout.write(`\n=== ${name} ${args.join(' ')} (limit ${timeoutSeconds} s, load ${loadAverage.toFixed(2)}${loaded ? ' — LOADED: its figures will be marked and must be re-measured' : ''})\n`);
    const outcome = await runOne(name, args, timeoutSeconds);
    const loadAfter = os.loadavg()[0] ?? 0;
    const steal = stealPercent(ticksBefore, readCpuTicks());
    const run: BenchRun = { bench: name, args, status: outcome.status, exitCode: outcome.exitCode, seconds: outcome.seconds, date, machine, loadAverage, loadAfter, stealPercent: steal, ...(loaded ? { loaded } : {}), ...(outcome.error ? { error: outcome.error } : {}) };
    const { figures, errors } = parseFigures(outcome.stdout);
    const fresh = entriesForRun(run, figures, errors);
    const status = fresh.find((entry) => entry.name === '(run)')?.status ?? 'ok';
    if (status !== 'ok') failed++;
    entries = mergeEntries(entries, fresh, new Set([name]));
    save(entries);
    summary.push(`${name.padEnd(24)} ${status.padEnd(11)} ${outcome.seconds.toFixed(1).padStart(7)} s  ${figures.length} figures${status === 'ok' ? '' : `  ${fresh.at(-1)?.error ?? ''}`}`);
  }
  // A complete run also drops the entries of benchmarks that no longer exist.
  if (options.names.length === 0 && !interrupted) save(mergeEntries(entries, [], new Set(), new Set(available)));
  process.stdout.write(`\n${summary.join('\n')}\nhuman reports in ${resultsDir}/, figures in ${jsonPath} and ${mdPath}\n`);
  return failed > 0 || interrupted ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
