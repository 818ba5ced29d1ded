import { describe, expect, it } from 'vitest';
import type { V1Container, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { generatePodStatus, type PodStatusInput } from '../../agent/status/pod-status.js';
import type { ContainerStatus, PodSandboxStatus } from '../../cri/runtime.js';

const S = 1e9;
function cs(name: string, attempt: number, state: ContainerStatus['state'], exitCode = 0, reason = ''): ContainerStatus {
  return {
    id: `${name}${attempt}`, podSandboxId: 'sb', metadata: { name, attempt }, state, createdAt: (100 + attempt) * S, startedAt: (101 + attempt) * S,
    finishedAt: state === 'CONTAINER_EXITED' ? (102 + attempt) * S : 0, exitCode, image: { image: 'i:1' }, imageRef: 'sha256:abc', reason, message: '',
    labels: {}, annotations: {}, mounts: [], logPath: '',
  };
}
const sandbox: PodSandboxStatus = {
  id: 'sb', metadata: { name: 'p', uid: 'u', namespace: 'ns', attempt: 0 }, state: 'SANDBOX_READY', createdAt: 99 * S,
  network: { ip: '10.244.0.7', additionalIps: [{ ip: 'fd00::7' }] }, linux: { namespaces: { options: {} } }, labels: {}, annotations: {}, runtimeHandler: '',
};
const pod = (restartPolicy: string, containers: V1Container[], initContainers?: V1Container[]): V1Pod => ({
  metadata: { name: 'p', namespace: 'ns', uid: 'u' },
  spec: { restartPolicy, containers, ...(initContainers ? { initContainers } : {}) },
});
const a: V1Container = { name: 'a', image: 'i:1' };
const b: V1Container = { name: 'b', image: 'i:1' };
const init1: V1Container = { name: 'init1', image: 'i:1' };
const side: V1Container = { name: 'side', image: 'i:1', restartPolicy: 'Always' };
const now = Date.UTC(2026, 0, 1);

function gen(partial: Partial<PodStatusInput> & Pick<PodStatusInput, 'pod'>): V1PodStatus {
  return generatePodStatus({ sandbox, containers: [], now, hostIP: '10.0.0.1', ...partial });
}
const cond = (status: V1PodStatus, type: string) => status.conditions!.find((c) => c.type === type)!;

describe('pod phase', () => {
  it.each([
    ['nothing created yet', pod('Always', [a]), [], 'Pending'],
    ['one running', pod('Always', [a, b]), [cs('a', 0, 'CONTAINER_RUNNING')], 'Pending'],
    ['all running', pod('Always', [a, b]), [cs('a', 0, 'CONTAINER_RUNNING'), cs('b', 0, 'CONTAINER_RUNNING')], 'Running'],
    ['Always, exited 0 (will restart)', pod('Always', [a]), [cs('a', 0, 'CONTAINER_EXITED', 0)], 'Running'],
    ['Never, exited 0', pod('Never', [a]), [cs('a', 0, 'CONTAINER_EXITED', 0)], 'Succeeded'],
    ['Never, one failed', pod('Never', [a, b]), [cs('a', 0, 'CONTAINER_EXITED', 0), cs('b', 0, 'CONTAINER_EXITED', 2)], 'Failed'],
    ['OnFailure, exited 0', pod('OnFailure', [a]), [cs('a', 0, 'CONTAINER_EXITED', 0)], 'Succeeded'],
    ['OnFailure, failed (will restart)', pod('OnFailure', [a]), [cs('a', 0, 'CONTAINER_EXITED', 1)], 'Running'],
    ['Never, one running one done', pod('Never', [a, b]), [cs('a', 0, 'CONTAINER_RUNNING'), cs('b', 0, 'CONTAINER_EXITED', 0)], 'Running'],
    ['init running', pod('Always', [a], [init1]), [cs('init1', 0, 'CONTAINER_RUNNING')], 'Pending'],
    ['init failed, Never', pod('Never', [a], [init1]), [cs('init1', 0, 'CONTAINER_EXITED', 1)], 'Failed'],
    ['init failed, Always (retried)', pod('Always', [a], [init1]), [cs('init1', 0, 'CONTAINER_EXITED', 1)], 'Pending'],
    ['init done, app running', pod('Always', [a], [init1]), [cs('init1', 0, 'CONTAINER_EXITED', 0), cs('a', 0, 'CONTAINER_RUNNING')], 'Running'],
    ['sidecar running, app running', pod('Always', [a], [side]), [cs('side', 0, 'CONTAINER_RUNNING'), cs('a', 0, 'CONTAINER_RUNNING')], 'Running'],
    ['sidecar not started', pod('Always', [a], [side]), [], 'Pending'],
  ] as const)('%s → %s', (_name, p, containers, phase) => {
    expect(gen({ pod: p, containers: [...containers] }).phase).toBe(phase);
  });

  it('terminal pods with Always are Succeeded or Failed', () => {
    expect(gen({ pod: pod('Always', [a]), containers: [cs('a', 0, 'CONTAINER_EXITED', 0)], terminal: true }).phase).toBe('Succeeded');
    expect(gen({ pod: pod('Always', [a]), containers: [cs('a', 0, 'CONTAINER_EXITED', 137)], terminal: true }).phase).toBe('Failed');
  });
});

describe('container statuses', () => {
  it('running container with IDs, IPs and conditions all true', () => {
    const status = gen({ pod: pod('Always', [a]), containers: [cs('a', 0, 'CONTAINER_RUNNING')] });
    const c = status.containerStatuses![0]!;
    expect(c).toMatchObject({ name: 'a', image: 'i:1', imageID: 'sha256:abc', containerID: 'docker://a0', ready: true, started: true, restartCount: 0 });
    expect(c.state!.running!.startedAt).toEqual(new Date(101_000));
    expect(status.podIP).toBe('10.244.0.7');
    expect(status.podIPs).toEqual([{ ip: '10.244.0.7' }, { ip: 'fd00::7' }]);
    expect(status.hostIP).toBe('10.0.0.1');
    expect(status.qosClass).toBe('BestEffort');
    for (const type of ['PodReadyToStartContainers', 'Initialized', 'ContainersReady', 'Ready', 'PodScheduled']) {
      expect(cond(status, type).status).toBe('True');
    }
  });

  it('CrashLoopBackOff: waiting with the exit in lastState', () => {
    const waiting = new Map([['a', { reason: 'CrashLoopBackOff', message: 'back-off 20s restarting failed container=a' }]]);
    const status = gen({ pod: pod('Always', [a]), containers: [cs('a', 0, 'CONTAINER_EXITED', 1), cs('a', 1, 'CONTAINER_EXITED', 1)], waiting });
    const c = status.containerStatuses![0]!;
    expect(c.state).toEqual({ waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s restarting failed container=a' } });
    expect(c.lastState!.terminated).toMatchObject({ exitCode: 1, reason: 'Error', containerID: 'docker://a1' });
    expect(c.restartCount).toBe(1);
    expect(c.ready).toBe(false);
    expect(cond(status, 'Ready')).toMatchObject({ status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status: [a]' });
  });

  it('terminated reasons: Completed, Error, OOMKilled', () => {
    const status = gen({ pod: pod('Never', [a, b, { name: 'c', image: 'i' }]), containers: [cs('a', 0, 'CONTAINER_EXITED', 0), cs('b', 0, 'CONTAINER_EXITED', 2), cs('c', 0, 'CONTAINER_EXITED', 137, 'OOMKilled')] });
    expect(status.containerStatuses!.map((c) => c.state!.terminated!.reason)).toEqual(['Completed', 'Error', 'OOMKilled']);
    expect(status.phase).toBe('Failed');
  });

  it('image and config errors are waiting reasons', () => {
    const waiting = new Map([
      ['a', { reason: 'ErrImagePull', message: 'pull failed' }],
      ['b', { reason: 'CreateContainerConfigError', message: 'configmap "x" not found' }],
    ]);
    const status = gen({ pod: pod('Always', [a, b]), containers: [], waiting });
    expect(status.containerStatuses!.map((c) => c.state!.waiting!.reason)).toEqual(['ErrImagePull', 'CreateContainerConfigError']);
    expect(status.phase).toBe('Pending');
  });

  it('app containers wait with PodInitializing until init containers finished', () => {
    const status = gen({ pod: pod('Always', [a], [init1]), containers: [cs('init1', 0, 'CONTAINER_RUNNING')] });
    expect(status.containerStatuses![0]!.state!.waiting!.reason).toBe('PodInitializing');
    expect(status.initContainerStatuses![0]!.state!.running).toBeDefined();
    expect(cond(status, 'Initialized')).toMatchObject({ status: 'False', reason: 'ContainersNotInitialized', message: 'containers with incomplete status: [init1]' });
    const done = gen({ pod: pod('Always', [a], [init1]), containers: [cs('init1', 0, 'CONTAINER_EXITED', 0)] });
    expect(done.containerStatuses![0]!.state!.waiting!.reason).toBe('ContainerCreating');
    expect(cond(done, 'Initialized').status).toBe('True');
  });

  it('readiness follows the probe result when there is a readiness probe', () => {
    const probed: V1Container = { ...a, readinessProbe: { exec: { command: ['true'] } } };
    const containers = [cs('a', 0, 'CONTAINER_RUNNING')];
    expect(gen({ pod: pod('Always', [probed]), containers }).containerStatuses![0]!.ready).toBe(false);
    expect(gen({ pod: pod('Always', [probed]), containers, probeReady: () => true }).containerStatuses![0]!.ready).toBe(true);
    const started: V1Container = { ...a, startupProbe: { exec: { command: ['true'] } } };
    expect(gen({ pod: pod('Always', [started]), containers }).containerStatuses![0]!.started).toBe(false);
  });

  it('keeps lastTransitionTime while a condition does not change, and startTime', () => {
    const first = gen({ pod: pod('Always', [a]), containers: [cs('a', 0, 'CONTAINER_RUNNING')] });
    const later = generatePodStatus({ pod: pod('Always', [a]), sandbox, containers: [cs('a', 0, 'CONTAINER_RUNNING')], now: now + 60_000, previous: first });
    expect(cond(later, 'Ready').lastTransitionTime).toEqual(new Date(now));
    expect(later.startTime).toEqual(first.startTime);
    const flipped = generatePodStatus({ pod: pod('Always', [a]), sandbox, containers: [cs('a', 0, 'CONTAINER_EXITED', 1)], now: now + 60_000, previous: first });
    expect(cond(flipped, 'Ready').lastTransitionTime).toEqual(new Date(now + 60_000));
  });

  it('no sandbox: not ready to start containers, no IP', () => {
    const status = generatePodStatus({ pod: pod('Always', [a]), containers: [], now });
    expect(cond(status, 'PodReadyToStartContainers').status).toBe('False');
    expect(status.podIP).toBeUndefined();
  });

  it('hostNetwork pods report the host IP', () => {
    const p = pod('Always', [a]);
    p.spec!.hostNetwork = true;
    const status = gen({ pod: p, sandbox: { ...sandbox, network: { ip: '', additionalIps: [] } }, containers: [cs('a', 0, 'CONTAINER_RUNNING')] });
    expect(status.podIP).toBe('10.0.0.1');
  });

  it('Succeeded pods report PodCompleted', () => {
    const status = gen({ pod: pod('Never', [a]), containers: [cs('a', 0, 'CONTAINER_EXITED', 0)] });
    expect(status.phase).toBe('Succeeded');
    expect(cond(status, 'Ready')).toMatchObject({ status: 'False', reason: 'PodCompleted' });
  });
});
