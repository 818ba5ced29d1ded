import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors.js';
import { loadKubeletConfig } from '../../lib/config/kubelet.js';
import { evictionConfigFromKubelet } from '../../eviction/manager.js';
import { evaluate, initialEvictionState, type EvictionState } from '../../eviction/policy.js';
import { parseThresholds, taintsFor, thresholdsMet } from '../../eviction/thresholds.js';
import { pressureNodeConditions } from '../../eviction/node-conditions.js';
import type { Observations, Threshold } from '../../eviction/types.js';

const Mi = 2 ** 20;
const Gi = 2 ** 30;
const header = 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n';
const dir = mkdtempSync(join(tmpdir(), 'knode-eviction-config-'));
let counter = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const load = (body: string) => loadKubeletConfig(join(dir, (writeFileSync(join(dir, `c${++counter}.yaml`), header + body), `c${counter}.yaml`))).config;

const mem = (available: number, capacity = 8 * Gi): Observations => ({ 'memory.available': { available, capacity, time: 0 } });

describe('eviction config → thresholds', () => {
  it('uses the kubelet defaults when evictionHard is not set', () => {
    const thresholds = parseThresholds(load(''));
    expect(thresholds.map((t) => [t.signal, t.value, t.hard])).toEqual([
      ['memory.available', { quantity: 100 * Mi }, true],
      ['nodefs.available', { percentage: 0.1 }, true],
      ['nodefs.inodesFree', { percentage: 0.05 }, true],
      ['imagefs.available', { percentage: 0.15 }, true],
    ]);
  });

  it('builds soft thresholds with grace periods and minimum reclaim, skipping 0% and 100%', () => {
    const config = load(
      'evictionHard:\n  memory.available: 200Mi\n  nodefs.available: "0%"\n  pid.available: "100%"\n' +
        'evictionSoft:\n  memory.available: 1Gi\nevictionSoftGracePeriod:\n  memory.available: 1m30s\n' +
        'evictionMinimumReclaim:\n  memory.available: 50Mi\n  nodefs.available: "5%"\nevictionMaxPodGracePeriod: 20\nevictionPressureTransitionPeriod: 30s\n',
    );
    const manager = evictionConfigFromKubelet(config);
    expect(manager.thresholds).toEqual([
      { signal: 'memory.available', value: { quantity: 200 * Mi }, gracePeriodMs: 0, hard: true, minReclaim: { quantity: 50 * Mi } },
      { signal: 'memory.available', value: { quantity: Gi }, gracePeriodMs: 90_000, hard: false, minReclaim: { quantity: 50 * Mi } },
    ]);
    expect(manager.maxPodGracePeriodSeconds).toBe(20);
    expect(manager.pressureTransitionPeriodMs).toBe(30_000);
  });

  it.each([
    ['negative quantity', 'evictionHard:\n  memory.available: -100Mi\n', /evictionHard\.memory\.available.*must not be negative/],
    ['zero quantity', 'evictionHard:\n  memory.available: "0"\n', /evictionHard\.memory\.available.*must be positive/],
    ['unknown signal', 'evictionHard:\n  memory.free: 100Mi\n', /unknown eviction signal "memory\.free"/],
    ['unknown signal in minimum reclaim', 'evictionMinimumReclaim:\n  disk.available: 1Gi\n', /unknown eviction signal "disk\.available"/],
    ['soft without grace', 'evictionSoft:\n  nodefs.available: 15%\n', /soft eviction threshold "nodefs\.available" has no grace period/],
    ['percentage over 100', 'evictionHard:\n  nodefs.available: 150%\n', /over 100%/],
    ['negative grace period', 'evictionSoft:\n  memory.available: 1Gi\nevictionSoftGracePeriod:\n  memory.available: -1m\n', /must not be negative/],
  ])('rejects %s with one clear ConfigError', (_name, body, pattern) => {
    let caught: unknown;
    try {
      load(body);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).not.toContain('\n');
    expect((caught as Error).message).toMatch(pattern);
  });

  it('rejects hand-built configs the loader did not see', () => {
    const base = { evictionHard: {}, evictionSoft: {}, evictionSoftGracePeriod: {}, evictionMinimumReclaim: {} };
    expect(() => parseThresholds({ ...base, evictionSoft: { 'memory.available': '1Gi' } })).toThrow(/no evictionSoftGracePeriod/);
    expect(() => parseThresholds({ ...base, evictionHard: { 'memory.free': '1Gi' } })).toThrow(/unknown eviction signal/);
    expect(() => parseThresholds({ ...base, evictionHard: { 'memory.available': '-1' } })).toThrow(ConfigError);
  });
});

describe('thresholdsMet', () => {
  const hard: Threshold = { signal: 'memory.available', value: { quantity: 100 * Mi }, gracePeriodMs: 0, hard: true, minReclaim: { quantity: 50 * Mi } };
  const pct: Threshold = { signal: 'nodefs.available', value: { percentage: 0.1 }, gracePeriodMs: 0, hard: true };
  it.each([
    ['below quantity', [hard], mem(80 * Mi), false, ['memory.available']],
    ['exactly at quantity is not met (LessThan)', [hard], mem(100 * Mi), false, []],
    ['above quantity', [hard], mem(120 * Mi), false, []],
    ['min reclaim keeps it met until 150Mi', [hard], mem(120 * Mi), true, ['memory.available']],
    ['min reclaim resolved at 150Mi', [hard], mem(150 * Mi), true, []],
    ['percentage of capacity', [pct], { 'nodefs.available': { available: 9, capacity: 100, time: 0 } }, false, ['nodefs.available']],
    ['percentage not met', [pct], { 'nodefs.available': { available: 10, capacity: 100, time: 0 } }, false, []],
    ['unobserved signal is not met', [pct], mem(0), false, []],
  ] as const)('%s', (_name, thresholds, observations, minReclaim, expected) => {
    expect(thresholdsMet(thresholds, observations, minReclaim).map((t) => t.signal)).toEqual(expected);
  });
});

describe('evaluate over time (test clock): grace periods, transition period, minimum reclaim', () => {
  const hard: Threshold = { signal: 'memory.available', value: { quantity: 100 * Mi }, gracePeriodMs: 0, hard: true, minReclaim: { quantity: 50 * Mi } };
  const soft: Threshold = { signal: 'memory.available', value: { quantity: 500 * Mi }, gracePeriodMs: 60_000, hard: false };
  const disk: Threshold = { signal: 'nodefs.available', value: { percentage: 0.1 }, gracePeriodMs: 0, hard: true };
  const pid: Threshold = { signal: 'pid.available', value: { quantity: 100 }, gracePeriodMs: 0, hard: true };
  const period = 300_000;

  // Each step: [time (s), observations, expected actionable thresholds, expected conditions]
  type Step = [number, Observations, string[], string[]];
  function run(thresholds: Threshold[], steps: Step[]): void {
    let state: EvictionState = initialEvictionState();
    for (const [seconds, observations, actionable, conditions] of steps) {
      const result = evaluate(thresholds, observations, state, period, seconds * 1000);
      state = result.state;
      expect({ t: seconds, actionable: result.actionable.map((t) => `${t.signal}/${t.hard ? 'hard' : 'soft'}`), conditions: [...result.conditions].sort() }).toEqual({
        t: seconds,
        actionable,
        conditions,
      });
    }
  }

  it('hard threshold acts at once; condition held for the transition period after it clears', () => {
    run([hard], [
      [0, mem(2 * Gi), [], []],
      [10, mem(80 * Mi), ['memory.available/hard'], ['MemoryPressure']],
      [20, mem(2 * Gi), [], ['MemoryPressure']],
      [10 + 299, mem(2 * Gi), [], ['MemoryPressure']],
      [10 + 300, mem(2 * Gi), [], []],
    ]);
  });

  it('soft threshold acts only after its grace period; condition is set at once', () => {
    run([soft], [
      [0, mem(400 * Mi), [], ['MemoryPressure']],
      [59, mem(400 * Mi), [], ['MemoryPressure']],
      [60, mem(400 * Mi), ['memory.available/soft'], ['MemoryPressure']],
      [70, mem(600 * Mi), [], ['MemoryPressure']],
      // Met again: the grace period starts over.
      [80, mem(400 * Mi), [], ['MemoryPressure']],
      [139, mem(400 * Mi), [], ['MemoryPressure']],
      [140, mem(400 * Mi), ['memory.available/soft'], ['MemoryPressure']],
    ]);
  });

  it('a met threshold stays met until minimum reclaim is reached', () => {
    run([hard], [
      [0, mem(90 * Mi), ['memory.available/hard'], ['MemoryPressure']],
      [10, mem(120 * Mi), ['memory.available/hard'], ['MemoryPressure']],
      [20, mem(149 * Mi), ['memory.available/hard'], ['MemoryPressure']],
      [30, mem(150 * Mi), [], ['MemoryPressure']],
      // Resolved: now only the plain threshold counts again.
      [40, mem(120 * Mi), [], ['MemoryPressure']],
    ]);
  });

  it('several signals: memory is acted on first; disk and PID pressure have their own conditions', () => {
    const obs: Observations = {
      ...mem(50 * Mi),
      'nodefs.available': { available: 5, capacity: 100, time: 0 },
      'pid.available': { available: 10, capacity: 32768, time: 0 },
    };
    run([disk, pid, hard], [[0, obs, ['memory.available/hard', 'nodefs.available/hard', 'pid.available/hard'], ['DiskPressure', 'MemoryPressure', 'PIDPressure']]]);
  });

  it('taints match the conditions', () => {
    expect(taintsFor(new Set(['PIDPressure', 'MemoryPressure']), 0).map((t) => [t.key, t.effect])).toEqual([
      ['node.kubernetes.io/memory-pressure', 'NoSchedule'],
      ['node.kubernetes.io/pid-pressure', 'NoSchedule'],
    ]);
    expect(taintsFor(new Set(), 0)).toEqual([]);
  });
});

describe('pressure node conditions', () => {
  it('reports all three with the kubelet reasons; transition time moves only on a flip', () => {
    const t0 = new Date(1000);
    const t1 = new Date(2000);
    const first = pressureNodeConditions(new Set(['DiskPressure']), [], t0);
    expect(first.map((c) => [c.type, c.status, c.reason, c.message])).toEqual([
      ['MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'],
      ['DiskPressure', 'True', 'KubeletHasDiskPressure', 'kubelet has disk pressure'],
      ['PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'],
    ]);
    const second = pressureNodeConditions(new Set(['PIDPressure']), first, t1);
    expect(second.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime?.getTime(), c.lastHeartbeatTime?.getTime()])).toEqual([
      ['MemoryPressure', 'False', 'KubeletHasSufficientMemory', 1000, 2000],
      ['DiskPressure', 'False', 'KubeletHasNoDiskPressure', 2000, 2000],
      ['PIDPressure', 'True', 'KubeletHasInsufficientPID', 2000, 2000],
    ]);
  });
});
