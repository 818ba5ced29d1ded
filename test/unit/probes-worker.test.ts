/**
 * Worker state machine, table-driven, with a fake prober and a test clock (issue 6):
 * thresholds, initial delay, startup gating and reset on restart for liveness, readiness and
 * startup probes.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import type { V1Container, V1Pod, V1PodStatus, V1Probe } from '@kubernetes/client-node';
import { FakeClock } from '../helpers/fake-clock.js';
import { ProbeManager } from '../../probes/manager.js';
import { ProbeError } from '../../probes/prober.js';
import { type ProbeOutcome, type ProbeType } from '../../probes/types.js';
import { createLogger } from '../../lib/log.js';
import { FakePodStatusProvider, FakeProber, RecordingProbeListener } from '../helpers/probe-fakes.js';

const logger = createLogger('probes-test', 'silent');
const uid = 'uid-1';

function pod(container: Partial<V1Container>, extra: Partial<V1Pod['spec']> = {}): V1Pod {
  return {
    metadata: { uid, name: 'web', namespace: 'ns1' },
    spec: { containers: [{ name: 'app', image: 'busybox', ...container }], ...extra },
  };
}

function running(containerId: string, startedAtMs = 0): V1PodStatus {
  return {
    phase: 'Running',
    podIP: '10.244.0.5',
    containerStatuses: [{ name: 'app', containerID: containerId, image: 'busybox', imageID: '', ready: false, restartCount: 0, state: { running: { startedAt: new Date(startedAtMs) } } }],
  };
}

const exec: V1Probe = { exec: { command: ['true'] } };

function setup(container: Partial<V1Container>, outcomes: (type: ProbeType) => ProbeOutcome, extra: Partial<V1Pod['spec']> = {}) {
  const clock = new FakeClock(0);
  const statuses = new FakePodStatusProvider();
  const listener = new RecordingProbeListener();
  const calls: ProbeType[] = [];
  // Each probe's exec command is its type, so the fake prober knows which worker calls it.
  const tagged: Partial<V1Container> = { ...container };
  for (const type of ['liveness', 'readiness', 'startup'] as const) {
    const probe = container[`${type}Probe`];
    if (probe) tagged[`${type}Probe`] = { ...probe, exec: { command: [type] } };
  }
  const prober = new FakeProber((spec) => {
    const type = (spec.handler.kind === 'exec' ? spec.handler.command[0] : undefined) as ProbeType;
    calls.push(type);
    return outcomes(type);
  });
  const registry = new Registry();
  const manager = new ProbeManager({ prober, listener, statusProvider: statuses, registry, clock, logger, random: () => 0 });
  manager.addPod(pod(tagged, extra));
  statuses.statuses.set(uid, running('docker://c1'));
  return { clock, statuses, listener, calls, manager, registry };
}

const ok: ProbeOutcome = { result: 'success', output: '' };
const bad: ProbeOutcome = { result: 'failure', output: 'boom' };

type Row = {
  name: string;
  type: ProbeType;
  probe: V1Probe;
  /** Outcome of each successive probe ('s' success, 'f' failure, 'w' warning). */
  script: string;
  /** Cached result after each period tick. */
  expected: Array<'success' | 'failure' | 'unknown'>;
  kills: number;
};

const rows: Row[] = [
  { name: 'readiness starts Failure, one success makes it Success', type: 'readiness', probe: { ...exec, periodSeconds: 1 }, script: 'sss', expected: ['success', 'success', 'success'], kills: 0 },
  { name: 'readiness successThreshold 3', type: 'readiness', probe: { ...exec, periodSeconds: 1, successThreshold: 3 }, script: 'sssf', expected: ['failure', 'failure', 'success', 'success'], kills: 0 },
  { name: 'readiness failureThreshold 3 and it never kills', type: 'readiness', probe: { ...exec, periodSeconds: 1 }, script: 'sffffs', expected: ['success', 'success', 'success', 'failure', 'failure', 'success'], kills: 0 },
  { name: 'readiness warning counts as success', type: 'readiness', probe: { ...exec, periodSeconds: 1 }, script: 'w', expected: ['success'], kills: 0 },
  { name: 'liveness starts Success, failureThreshold 3 → Failure and one kill, then on hold', type: 'liveness', probe: { ...exec, periodSeconds: 1 }, script: 'ffffff', expected: ['success', 'success', 'failure', 'failure', 'failure', 'failure'], kills: 1 },
  { name: 'liveness: a success in between resets the run', type: 'liveness', probe: { ...exec, periodSeconds: 1, failureThreshold: 2 }, script: 'fsfsf', expected: ['success', 'success', 'success', 'success', 'success'], kills: 0 },
  { name: 'liveness failureThreshold 1', type: 'liveness', probe: { ...exec, periodSeconds: 1, failureThreshold: 1 }, script: 'f', expected: ['failure'], kills: 1 },
  { name: 'startup starts Unknown; success ends probing', type: 'startup', probe: { ...exec, periodSeconds: 1 }, script: 'fs', expected: ['unknown', 'success', 'success'], kills: 0 },
  { name: 'startup failureThreshold 2 kills', type: 'startup', probe: { ...exec, periodSeconds: 1, failureThreshold: 2 }, script: 'ff', expected: ['unknown', 'failure', 'failure'], kills: 1 },
];

describe('probe worker thresholds (table)', () => {
  it.each(rows)('$name', async (row) => {
    const script = [...row.script];
    const { clock, listener, calls, manager } = setup({ [`${row.type}Probe`]: row.probe }, () => {
      const step = script.shift();
      return step === 'f' ? bad : step === 'w' ? { result: 'warning', output: 'Probe terminated redirects' } : ok;
    });
    manager.start();
    const seen: string[] = [];
    for (let i = 0; i < row.expected.length; i++) {
      await clock.tick(i === 0 ? 0 : 1000);
      seen.push(manager.getResult('docker://c1', row.type) ?? 'none');
    }
    expect(seen).toEqual(row.expected);
    expect(listener.kills).toHaveLength(row.kills);
    if (row.kills > 0) {
      const kill = listener.kills[0]!;
      expect(kill.reason).toBe(row.type === 'liveness' ? 'LivenessProbe' : 'StartupProbe');
      expect(kill.message).toBe(`Container app failed ${row.type} probe, will be restarted`);
      expect(kill.gracePeriodSeconds).toBe(30);
      // On hold: no probe after the kill until a new container ID.
      const before = calls.length;
      await clock.tick(5000);
      expect(calls.length).toBe(before);
    }
    // Only changes are pushed.
    const pushed = listener.updates.filter((u) => u.probeType === row.type).map((u) => u.result);
    expect(pushed).toEqual(pushed.filter((r, i) => i === 0 || r !== pushed[i - 1]));
  });
});

describe('probe worker timing and gating', () => {
  it('does not probe before initialDelaySeconds, counted from the container start', async () => {
    const { clock, calls, manager, statuses } = setup({ livenessProbe: { ...exec, periodSeconds: 2, initialDelaySeconds: 5 } }, () => ok);
    statuses.statuses.set(uid, running('docker://c1', 1000));
    manager.start();
    await clock.tick(5000); // ticks at 0, 2000, 4000: container up for < 5 s
    expect(calls).toHaveLength(0);
    await clock.tick(1000); // tick at 6000: up 5 s
    expect(calls).toHaveLength(1);
    await clock.tick(4000);
    expect(calls).toHaveLength(3);
  });

  it('probes every periodSeconds on a fixed schedule, with first-tick jitter after a start', async () => {
    const clock = new FakeClock(0);
    const statuses = new FakePodStatusProvider();
    statuses.statuses.set(uid, running('docker://c1'));
    const prober = new FakeProber(() => ok);
    const ticks: number[] = [];
    const manager = new ProbeManager({ prober, listener: new RecordingProbeListener(), statusProvider: statuses, registry: new Registry(), clock, logger, random: () => 0.5, onTick: (_t, _s, actual) => ticks.push(actual) });
    manager.addPod(pod({ livenessProbe: { ...exec, periodSeconds: 10 } }));
    manager.start();
    await clock.tick(36_000);
    expect(ticks).toEqual([5000, 15000, 25000, 35000]);
    manager.stop();
    manager.stop();
    await clock.tick(20_000);
    expect(ticks).toHaveLength(4);
    expect(clock.pendingTimers).toBe(0);
  });

  it('startup gating: liveness and readiness wait for the startup probe to succeed', async () => {
    let startupOk = false;
    const { clock, calls, manager, statuses } = setup(
      { startupProbe: { ...exec, periodSeconds: 1, failureThreshold: 30 }, livenessProbe: { ...exec, periodSeconds: 1 }, readinessProbe: { ...exec, periodSeconds: 1 } },
      (type) => (type === 'startup' && !startupOk ? bad : ok),
    );
    manager.start();
    await clock.tick(3000);
    expect(new Set(calls)).toEqual(new Set(['startup']));
    expect(manager.updatePodStatus(uid, statuses.statuses.get(uid)!).containerStatuses![0]).toMatchObject({ started: false, ready: false });
    startupOk = true;
    await clock.tick(1000);
    expect(manager.getResult('docker://c1', 'startup')).toBe('success');
    calls.length = 0;
    await clock.tick(3000);
    expect(calls).not.toContain('startup');
    expect(calls.filter((c) => c === 'liveness')).toHaveLength(3);
    expect(manager.updatePodStatus(uid, statuses.statuses.get(uid)!).containerStatuses![0]).toMatchObject({ started: true, ready: true });
  });

  it('a new container ID resets the worker (fresh counters, initial result, probing resumes)', async () => {
    const script = [...'ffsf'];
    const { clock, listener, calls, manager, statuses } = setup({ livenessProbe: { ...exec, periodSeconds: 1, failureThreshold: 2, terminationGracePeriodSeconds: 7 } }, () => (script.shift() === 'f' ? bad : ok));
    manager.start();
    await clock.tick(1000);
    expect(manager.getResult('docker://c1', 'liveness')).toBe('failure');
    expect(listener.kills[0]).toMatchObject({ containerId: 'docker://c1', gracePeriodSeconds: 7, probeOutput: 'boom' });
    expect(listener.events.filter((e) => e.message === 'Liveness probe failed: boom')).toHaveLength(2);
    statuses.statuses.set(uid, running('docker://c2', 3000));
    await clock.tick(2000);
    expect(manager.getResult('docker://c1', 'liveness')).toBeUndefined();
    expect(manager.getResult('docker://c2', 'liveness')).toBe('success');
    // One failure after the restart does not reach the threshold of 2 (old run was reset).
    await clock.tick(1000);
    expect(calls).toHaveLength(4);
    expect(manager.getResult('docker://c2', 'liveness')).toBe('success');
    expect(listener.kills).toHaveLength(1);
  });

  it('a container that is not running caches Failure; restartPolicy Never + terminated stops the worker', async () => {
    const { clock, calls, manager, statuses, listener } = setup({ readinessProbe: { ...exec, periodSeconds: 1 } }, () => ok, { restartPolicy: 'Never' });
    manager.start();
    await clock.tick(0);
    expect(manager.getResult('docker://c1', 'readiness')).toBe('success');
    const status = running('docker://c1');
    status.containerStatuses![0]!.state = { terminated: { exitCode: 1 } };
    statuses.statuses.set(uid, status);
    await clock.tick(1000);
    // Failure was cached and pushed, then the worker ended and dropped its result (kubelet).
    expect(listener.updates.map((u) => u.result)).toEqual(['failure', 'success', 'failure']);
    expect(manager.getResult('docker://c1', 'readiness')).toBeUndefined();
    expect(manager.hasWorker(uid, 'app', 'readiness')).toBe(false);
    await clock.tick(5000);
    expect(calls).toHaveLength(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('pod deletion requested: liveness is set to Success and stops, no kill during shutdown', async () => {
    const { clock, listener, calls, manager, statuses } = setup({ livenessProbe: { ...exec, periodSeconds: 1, failureThreshold: 1 } }, () => bad);
    statuses.terminating.add(uid);
    manager.start();
    await clock.tick(5000);
    expect(calls).toHaveLength(0);
    expect(listener.kills).toHaveLength(0);
    expect(manager.hasWorker(uid, 'app', 'liveness')).toBe(false);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a probe error is reported but not counted', async () => {
    const { clock, listener, manager } = setup({ livenessProbe: { ...exec, periodSeconds: 1, failureThreshold: 1 } }, () => {
      throw new ProbeError('couldn\'t find port "web" in container "app"');
    });
    manager.start();
    await clock.tick(3000);
    expect(listener.kills).toHaveLength(0);
    expect(manager.getResult('docker://c1', 'liveness')).toBe('success');
    expect(listener.events[0]!.message).toBe('Liveness probe errored: couldn\'t find port "web" in container "app"');
  });

  it('without a readiness probe a container is ready once running and started', () => {
    const { manager, statuses } = setup({ livenessProbe: exec }, () => ok);
    expect(manager.updatePodStatus(uid, statuses.statuses.get(uid)!).containerStatuses![0]).toMatchObject({ started: true, ready: true });
    const waiting = running('docker://c1');
    waiting.containerStatuses![0]!.state = { waiting: { reason: 'ContainerCreating' } };
    expect(manager.updatePodStatus(uid, waiting).containerStatuses![0]).toMatchObject({ started: false, ready: false });
  });

  it('removePod stops workers and drops cached results and metric series', async () => {
    const { clock, manager, registry } = setup({ livenessProbe: { ...exec, periodSeconds: 1 }, readinessProbe: { ...exec, periodSeconds: 1 } }, () => ok);
    manager.start();
    await clock.tick(2000);
    const metrics = await registry.getSingleMetricAsString('prober_probe_total');
    expect(metrics).toMatch(/prober_probe_total\{probe_type="Liveness",container="app",pod="web",namespace="ns1",result="successful"\} 3/);
    expect(manager.workerCount).toBe(2);
    manager.removePod(uid);
    manager.removePod(uid);
    expect(manager.workerCount).toBe(0);
    expect(manager.getResult('docker://c1', 'liveness')).toBeUndefined();
    expect(await registry.getSingleMetricAsString('prober_probe_total')).not.toMatch(/pod="web"/);
    expect(clock.pendingTimers).toBe(0);
  });

  it('ready()/started() by container name, never using the previous container after a restart', async () => {
    const { clock, calls, manager, statuses } = setup({ startupProbe: { ...exec, periodSeconds: 10 }, readinessProbe: { ...exec, periodSeconds: 10 } }, () => ok);
    expect(manager.ready(uid, 'app')).toBeUndefined();
    expect(manager.started(uid, 'app')).toBeUndefined();
    manager.start();
    await clock.tick(0); // startup succeeds; readiness still gated
    expect(manager.started(uid, 'app', 'docker://c1')).toBe(true);
    expect(manager.ready(uid, 'app', 'docker://c1')).toBe(false);
    await clock.tick(10_000);
    expect(manager.ready(uid, 'app', 'docker://c1')).toBe(true);
    // Restart: the new container has no result yet; asking triggers the readiness worker at
    // once, which adopts c2 (initial Failure) and waits for c2's startup probe.
    statuses.statuses.set(uid, running('docker://c2'));
    const before = calls.length;
    expect(manager.ready(uid, 'app', 'docker://c2')).toBeUndefined();
    await clock.tick(0);
    expect(calls.length).toBe(before);
    expect(manager.ready(uid, 'app', 'docker://c2')).toBe(false);
    expect(manager.getResult('docker://c1', 'readiness')).toBeUndefined();
    await clock.tick(10_000); // startup of c2 succeeds, then readiness probes
    expect(manager.started(uid, 'app', 'docker://c2')).toBe(true);
    await clock.tick(10_000);
    expect(manager.ready(uid, 'app', 'docker://c2')).toBe(true);
    expect(manager.ready(uid, 'nope')).toBeUndefined();
  });

  it('cleanupPods keeps desired pods only', () => {
    const { manager } = setup({ livenessProbe: exec }, () => ok);
    manager.cleanupPods(new Set([uid]));
    expect(manager.workerCount).toBe(1);
    manager.cleanupPods(new Set());
    expect(manager.workerCount).toBe(0);
  });
});
