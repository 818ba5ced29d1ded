import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { shebangEnv } from '../../bench/lib/knode-process.js';
import { formatFigure, MARKER, parseFigures, percentile, ratio, roundRatios, type Figure } from '../../bench/lib/report.js';
import { isLoaded, parseCpuTicks, spreadOf, stealPercent } from '../../bench/lib/machine-load.js';
import { describeMachine, entriesForRun, errorSummary, formatNumber, mergeEntries, parseResults, renderMarkdown, RUN_ENTRY, summaryLine, type BenchRun, type Entry } from '../../bench/lib/results.js';
import { argsVariable, parseRunnerArgs, plans, resolvePlan } from '../../bench/lib/plans.js';

const figure = (over: Partial<Figure> = {}): Figure => ({ name: 'pod start p50', value: 600, unit: 'ms', baseline: 400, baselineName: 'dockerode direct', better: 'lower', ...over });
const run = (over: Partial<BenchRun> = {}): BenchRun => ({ bench: 'cri-start', args: ['30'], status: 'ok', exitCode: 0, seconds: 42, date: '2026-11-22T07:31:00.000Z', machine: 'AMD EPYC, 2 cores', loadAverage: 1.5, ...over });

describe('KNODE-BENCH lines', () => {
  it('round-trips a figure through the line a benchmark prints', () => {
    const line = formatFigure(figure({ description: '30 pods' }));
    expect(line.startsWith(MARKER)).toBe(true);
    expect(parseFigures(`human table\n${line}\nmore text\n`)).toEqual({ figures: [figure({ description: '30 pods' })], errors: [] });
  });

  it('ignores the human report and tolerates CRLF', () => {
    const out = ['| path | p50 |', `${formatFigure(figure())}\r`, 'KNODE-BENCHMARK not ours', ` ${formatFigure(figure({ name: 'indented' }))}`].join('\n');
    const parsed = parseFigures(out);
    expect(parsed.figures.map((f) => f.name)).toEqual(['pod start p50']);
    expect(parsed.errors).toEqual([]);
  });

  it('keeps a null baseline', () => {
    expect(parseFigures(formatFigure(figure({ baseline: null, baselineName: 'none' }))).figures[0]!.baseline).toBeNull();
  });

  it.each([
    ['not JSON', `${MARKER}{oops`, /not JSON/],
    ['missing unit', `${MARKER}{"name":"x","value":1,"baseline":null,"baselineName":"","better":"lower"}`, /unit/],
    ['NaN serialised as null', `${MARKER}{"name":"x","value":null,"unit":"ms","baseline":null,"baselineName":"","better":"lower"}`, /value/],
    ['bad direction', `${MARKER}{"name":"x","value":1,"unit":"ms","baseline":null,"baselineName":"","better":"up"}`, /better/],
  ])('reports a broken line: %s', (_what, line, pattern) => {
    const parsed = parseFigures(line);
    expect(parsed.figures).toEqual([]);
    expect(parsed.errors).toHaveLength(1);
    expect(parsed.errors[0]).toMatch(pattern);
  });

  it('refuses to print a non-finite figure', () => {
    expect(() => formatFigure(figure({ value: Number.NaN }))).toThrow(/pod start p50.*value: /);
    expect(() => formatFigure(figure({ baseline: Number.POSITIVE_INFINITY }))).toThrow(/baseline: /);
  });
});

describe('ratio and percentile', () => {
  it.each([
    [600, 400, 1.5],
    [2, 8, 0.25],
    [5, null, null],
    [5, 0, null],
    [5, -1, null],
    [Number.NaN, 1, null],
  ])('ratio(%s, %s) = %s', (value, baseline, expected) => {
    expect(ratio(value, baseline)).toBe(expected);
  });

  it('takes the nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });
});

describe('entries of a run', () => {
  it('carries the run facts and the ratio on every figure', () => {
    const [entry] = entriesForRun(run(), [figure()], []);
    expect(entry).toMatchObject({ bench: 'cri-start', name: 'pod start p50', value: 600, baseline: 400, ratio: 1.5, status: 'ok', date: run().date, machine: run().machine, seconds: 42, args: ['30'] });
  });

  it('records a failed run, keeping the figures it reported before failing', () => {
    const entries = entriesForRun(run({ status: 'failed', exitCode: 1, error: 'exit code 1: boom' }), [figure()], []);
    expect(entries.map((e) => [e.name, e.status])).toEqual([
      ['pod start p50', 'failed'],
      [RUN_ENTRY, 'failed'],
    ]);
    expect(entries[1]).toMatchObject({ value: null, ratio: null, error: 'exit code 1: boom' });
  });

  it('records a timeout', () => {
    const entries = entriesForRun(run({ status: 'timeout', error: 'time limit of 900 s reached' }), [], []);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ name: RUN_ENTRY, status: 'timeout', error: 'time limit of 900 s reached' });
  });

  it('treats a clean exit without figures, or with broken figure lines, as a failure', () => {
    expect(entriesForRun(run(), [], [])[0]).toMatchObject({ name: RUN_ENTRY, status: 'failed', error: expect.stringMatching(/no KNODE-BENCH figures/) });
    const broken = entriesForRun(run(), [figure()], ['not JSON: x']);
    expect(broken.at(-1)).toMatchObject({ name: RUN_ENTRY, status: 'failed', error: expect.stringMatching(/unreadable/) });
  });
});

describe('the error of a failed run', () => {
  it('picks the error line out of a stack trace', () => {
    const stderr = 'some log\nError: timed out waiting for p3 Running\n    at until (file:///x.js:1:1)\n    at main (file:///x.js:2:2)\n';
    expect(errorSummary(stderr)).toBe('Error: timed out waiting for p3 Running');
    expect(errorSummary('CommandError: command "ip netns add x" failed: exists\n    at run (y)')).toMatch(/^CommandError: command/);
  });

  it('falls back to the last lines', () => {
    expect(errorSummary('a\nb\nc\nd\n')).toBe('b | c | d');
    expect(errorSummary('')).toBe('');
  });
});

describe('merging a partial run', () => {
  const old = (bench: string, name: string, date = '2026-11-20T10:00:00.000Z'): Entry => entriesForRun(run({ bench, date }), [figure({ name })], [])[0]!;

  it('replaces only the benchmarks that ran, keeping the others with their own dates', () => {
    const previous = [old('cri-start', 'a'), old('cri-start', 'b'), old('probes-load', 'c')];
    const fresh = entriesForRun(run({ bench: 'cri-start', date: '2026-11-22T08:00:00.000Z' }), [figure({ name: 'a2' })], []);
    const merged = mergeEntries(previous, fresh, new Set(['cri-start']));
    expect(merged.map((e) => [e.bench, e.name, e.date.slice(0, 10)])).toEqual([
      ['cri-start', 'a2', '2026-11-22'],
      ['probes-load', 'c', '2026-11-20'],
    ]);
  });

  it('groups by benchmark and keeps the reported order within one', () => {
    const fresh = entriesForRun(run({ bench: 'agent' }), [figure({ name: 'z' }), figure({ name: 'a' })], []);
    const merged = mergeEntries([old('zeta', 'q'), old('beta', 'r')], fresh, new Set(['agent']));
    expect(merged.map((e) => `${e.bench}/${e.name}`)).toEqual(['agent/z', 'agent/a', 'beta/r', 'zeta/q']);
  });

  it('a complete run drops benchmarks that no longer exist; a failed rerun replaces old figures', () => {
    const previous = [old('gone', 'x'), old('cri-start', 'a')];
    const failed = entriesForRun(run({ status: 'timeout', error: 'limit' }), [], []);
    const merged = mergeEntries(previous, failed, new Set(['cri-start']), new Set(['cri-start']));
    expect(merged.map((e) => [e.bench, e.name, e.status])).toEqual([['cri-start', RUN_ENTRY, 'timeout']]);
  });

  it('reads back what it writes, and rejects what is not a results file', () => {
    const entries = [old('cri-start', 'a')];
    expect(parseResults(JSON.stringify(entries))).toEqual(entries);
    expect(() => parseResults('{}')).toThrow(/not an array/);
    expect(() => parseResults('[{"name":"x"}]')).toThrow(/entry 0/);
    expect(() => parseResults('nope')).toThrow();
  });
});

describe('the markdown table', () => {
  it('formats numbers to about three significant digits', () => {
    expect([1234.5, 612.34, 41.23, 1.234, 0.1234, 0.00123, 0].map(formatNumber)).toEqual(['1235', '612', '41.2', '1.23', '0.123', '0.0012', '0']);
  });

  it('shows the date range and machine, every figure with its baseline and ratio, failures and the runs', () => {
    const entries = [
      ...entriesForRun(run(), [figure(), figure({ name: 'throughput', value: 5, unit: 'Gbit/s', baseline: 10, better: 'higher', baselineName: 'hand | VXLAN' })], []),
      ...entriesForRun(run({ bench: 'proxy-iptables', status: 'timeout', date: '2026-11-22T07:45:00.000Z', error: 'time limit of 900 s reached', args: [] }), [], []),
      ...entriesForRun(run({ bench: 'eviction-signals', date: '2026-11-22T07:50:00.000Z' }), [figure({ name: 'decision', unit: 'µs', baseline: null, baselineName: 'none: pure' })], []),
    ];
    const md = renderMarkdown(entries);
    expect(md).toContain('Measured 2026-11-22 07:31 UTC – 2026-11-22 07:50 UTC on AMD EPYC, 2 cores.');
    expect(md).toContain('| cri-start | pod start p50 | 600 ms | 400 ms | 1.50× ↓ | – | dockerode direct |');
    expect(md).toContain('| cri-start | throughput | 5.00 Gbit/s | 10.0 Gbit/s | 0.50× ↑ | – | hand \\| VXLAN |');
    expect(md).toContain('| proxy-iptables | **TIMEOUT** | – | – | – | – | time limit of 900 s reached |');
    expect(md).toContain('| eviction-signals | decision | 600 µs | – | – | – | none: pure |');
    expect(md).toContain('| cri-start | ok | 42 s | 2026-11-22 07:31 UTC | 1.50 | `30` |');
    expect(md).toContain('| proxy-iptables | timeout | 42 s | 2026-11-22 07:45 UTC | 1.50 | (defaults) |');
    expect(md).not.toContain('| machine |');
  });

  it('marks figures of a failed run and names several machines', () => {
    const entries = [...entriesForRun(run({ status: 'failed', error: 'exit code 1' }), [figure()], []), ...entriesForRun(run({ bench: 'b', machine: 'other box' }), [figure()], [])];
    const md = renderMarkdown(entries);
    expect(md).toContain('| cri-start | pod start p50 (failed run) |');
    expect(md).toContain('on 2 different machines');
    expect(md).toContain('| b | ok | 42 s | 2026-11-22 07:31 UTC | 1.50 | `30` | other box |');
  });

  it('says how to produce results when there are none', () => {
    expect(summaryLine([])).toMatch(/npm run bench/);
  });

  it('describes the machine', () => {
    expect(describeMachine({ cpuModel: 'AMD  EPYC ', cores: 2, memoryBytes: 24 * 2 ** 30, kernel: 'Linux 6.18.44', node: 'v20.20.2' })).toBe('AMD EPYC, 2 cores, 24.0 GiB RAM, Linux 6.18.44, Node v20.20.2');
  });
});

describe('runner options and plans', () => {
  it('parses names, --full, --timeout and --list', () => {
    expect(parseRunnerArgs(['cri-start', 'dist/bench/probes-load.js', '--timeout', '60', '--full'], {})).toEqual({ names: ['cri-start', 'probes-load'], full: true, timeoutSeconds: 60, list: false, settleSeconds: 120 });
    expect(parseRunnerArgs(['--timeout=5', '--list'], { KNODE_BENCH_FULL: '1' })).toEqual({ names: [], full: true, timeoutSeconds: 5, list: true, settleSeconds: 120 });
    expect(() => parseRunnerArgs(['--timeout', 'x'], {})).toThrow(/positive number/);
    expect(() => parseRunnerArgs(['--timeout'], {})).toThrow(/needs a number/);
    expect(() => parseRunnerArgs(['--fast'], {})).toThrow(/unknown option/);
  });

  it('resolves arguments: defaults, --full, and the per-bench environment override', () => {
    expect(resolvePlan('proxy-ipvs-qemu', { full: false, env: {} }).args).toEqual(['1000,10000']);
    expect(resolvePlan('proxy-ipvs-qemu', { full: true, env: {} }).args).toEqual(['1000,10000,20000']);
    expect(argsVariable('proxy-ipvs-qemu')).toBe('KNODE_BENCH_ARGS_PROXY_IPVS_QEMU');
    expect(resolvePlan('proxy-ipvs-qemu', { full: false, env: { KNODE_BENCH_ARGS_PROXY_IPVS_QEMU: ' 500  ' } }).args).toEqual(['500']);
    expect(resolvePlan('new-bench', { full: true, env: {} })).toEqual({ args: [], timeoutSeconds: 900 });
  });

  it('resolves the time limit: --timeout over KNODE_BENCH_TIMEOUT over the plan', () => {
    expect(resolvePlan('cri-start', { full: false, env: {} }).timeoutSeconds).toBe(plans['cri-start']!.timeoutSeconds);
    expect(resolvePlan('proxy-iptables', { full: true, env: {} }).timeoutSeconds).toBe(7200);
    expect(resolvePlan('cri-start', { full: false, env: { KNODE_BENCH_TIMEOUT: '30' } }).timeoutSeconds).toBe(30);
    expect(resolvePlan('cri-start', { full: false, env: { KNODE_BENCH_TIMEOUT: '30' }, timeoutSeconds: 10 }).timeoutSeconds).toBe(10);
    expect(() => resolvePlan('cri-start', { full: false, env: { KNODE_BENCH_TIMEOUT: '-1' } })).toThrow(/KNODE_BENCH_TIMEOUT/);
  });
});

describe('machine load, steal and round spreads', () => {
  it('reads the steal column of /proc/stat and the share stolen between two readings', () => {
    const before = parseCpuTicks('cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 1 2 3\n');
    const after = parseCpuTicks('cpu  200 0 100 1600 20 0 0 80 0 0\n');
    expect(before).toEqual({ total: 1000, steal: 40 });
    expect(stealPercent(before, after)).toBeCloseTo(4, 5);
    expect(stealPercent(after, after)).toBe(0);
    expect(() => parseCpuTicks('intr 1 2\n')).toThrow(/no aggregate cpu line/);
  });

  it('counts a run as loaded above one task per core', () => {
    expect(isLoaded(2.0, 2)).toBe(false);
    expect(isLoaded(2.1, 2)).toBe(true);
  });

  it('gives per-round ratios and their min/median/max, and shows them and the load in the table', () => {
    expect(roundRatios([10, 20, 30], [5, 10, 0])).toEqual([2, 2]);
    expect(spreadOf([3, 1, 2, 10])).toEqual({ min: 1, median: 2.5, max: 10 });
    const run: BenchRun = { bench: 'b', args: [], status: 'ok', exitCode: 0, seconds: 3, date: '2026-12-07T07:00:00.000Z', machine: 'm', loadAverage: 0.5, loadAfter: 1.5, stealPercent: 0.25 };
    const entries = entriesForRun(run, [{ name: 'f', value: 2, unit: 'ms', baseline: 1, baselineName: 'ref', better: 'lower', roundRatios: [1.9, 2.0, 2.2] }], []);
    const md = renderMarkdown(entries);
    expect(md).toContain('| b | f | 2.00 ms | 1.00 ms | 2.00× ↓ | 1.90 / 2.00 / 2.20 (3) | ref |');
    expect(md).toContain('0.50 → 1.50, steal 0.3 %');
    const loaded = renderMarkdown(entriesForRun({ ...run, loaded: true }, [{ name: 'f', value: 2, unit: 'ms', baseline: 1, baselineName: 'ref', better: 'lower' }], []));
    expect(loaded).toContain('| b | f | ~~2.00 ms~~ | ~~1.00 ms~~ | ~~2.00× ↓~~ | – | ref |');
    expect(loaded).toContain('**loaded**');
  });
});

describe('daemons started by benchmarks', () => {
  it('get the environment bin/knode gives node (its env -S shebang)', () => {
    expect(shebangEnv(fileURLToPath(new URL('../../bin/knode', import.meta.url)))).toEqual({ MALLOC_ARENA_MAX: '2' });
    const dir = mkdtempSync(join(tmpdir(), 'knode-shebang-'));
    writeFileSync(join(dir, 'plain'), '#!/usr/bin/env node\n');
    expect(shebangEnv(join(dir, 'plain'))).toEqual({});
    rmSync(dir, { recursive: true });
  });
});
