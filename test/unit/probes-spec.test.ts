/** Probe validation/defaults, pod readiness, port resolution and the exec prober over a fake executor. */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import type { V1Pod, V1Probe } from '@kubernetes/client-node';
import { resolveProbe, ProbeValidationError } from '../../probes/spec.js';
import { podReadiness } from '../../probes/readiness.js';
import { probeExec, resolvePort, ProbeError } from '../../probes/prober.js';
import { ProbeManager } from '../../probes/manager.js';

import { ExecTimeoutError, type ProbeType } from '../../probes/types.js';
import { probeUrl } from '../../probes/http.js';
import { createLogger } from '../../lib/log.js';
import { FakeExecutor, FakePodStatusProvider, FakeProber, RecordingProbeListener } from '../helpers/probe-fakes.js';

describe('resolveProbe defaults', () => {
  it('applies the API defaults for unset and zero fields', () => {
    expect(resolveProbe({ tcpSocket: { port: 80 } }, 'liveness')).toEqual({
      handler: { kind: 'tcpSocket', host: undefined, port: 80 },
      initialDelaySeconds: 0,
      periodSeconds: 10,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    });
    expect(resolveProbe({ httpGet: { port: 'http' }, periodSeconds: 0, timeoutSeconds: 0 }, 'readiness')).toMatchObject({
      handler: { kind: 'httpGet', port: 'http', path: '', scheme: 'HTTP', headers: [] },
      periodSeconds: 10,
      timeoutSeconds: 1,
    });
    expect(resolveProbe({ grpc: { port: 9000 }, terminationGracePeriodSeconds: 5 }, 'startup')).toMatchObject({ handler: { kind: 'grpc', port: 9000 }, terminationGracePeriodSeconds: 5 });
  });
});

const invalid: Array<{ name: string; type: ProbeType; probe: V1Probe; problem: RegExp }> = [
  { name: 'liveness successThreshold 2', type: 'liveness', probe: { exec: { command: ['true'] }, successThreshold: 2 }, problem: /livenessProbe\.successThreshold: Invalid value: 2: must be 1/ },
  { name: 'startup successThreshold 3', type: 'startup', probe: { exec: { command: ['true'] }, successThreshold: 3 }, problem: /startupProbe\.successThreshold: Invalid value: 3: must be 1/ },
  { name: 'no handler', type: 'readiness', probe: { periodSeconds: 3 }, problem: /must specify a handler type/ },
  { name: 'two handlers', type: 'readiness', probe: { exec: { command: ['true'] }, tcpSocket: { port: 1 } }, problem: /may not specify more than 1 handler type/ },
  { name: 'empty command', type: 'liveness', probe: { exec: { command: [] } }, problem: /exec\.command: Required value/ },
  { name: 'port 0', type: 'liveness', probe: { tcpSocket: { port: 0 } }, problem: /must be between 1 and 65535/ },
  { name: 'port 70000', type: 'liveness', probe: { httpGet: { port: 70000 } }, problem: /must be between 1 and 65535/ },
  { name: 'bad port name', type: 'liveness', probe: { httpGet: { port: 'Not_A_Name' } }, problem: /IANA_SVC_NAME/ },
  { name: 'grpc named port', type: 'liveness', probe: { grpc: { port: 'grpc' as unknown as number } }, problem: /grpc\.port: Required value: a port number/ },
  { name: 'scheme FTP', type: 'liveness', probe: { httpGet: { port: 80, scheme: 'FTP' } }, problem: /Unsupported value: "FTP"/ },
  { name: 'negative delay', type: 'liveness', probe: { tcpSocket: { port: 80 }, initialDelaySeconds: -1 }, problem: /initialDelaySeconds: Invalid value: -1/ },
  { name: 'fractional period', type: 'liveness', probe: { tcpSocket: { port: 80 }, periodSeconds: 1.5 }, problem: /periodSeconds: Invalid value: 1.5/ },
  { name: 'grace on readiness', type: 'readiness', probe: { tcpSocket: { port: 80 }, terminationGracePeriodSeconds: 3 }, problem: /must not be set for readinessProbes/ },
  { name: 'grace 0', type: 'liveness', probe: { tcpSocket: { port: 80 }, terminationGracePeriodSeconds: 0 }, problem: /must be greater than 0/ },
  { name: 'header with CRLF', type: 'readiness', probe: { httpGet: { port: 80, httpHeaders: [{ name: 'X', value: 'a\r\nb' }] } }, problem: /must not contain CR or LF/ },
];

describe('resolveProbe rejects invalid probes', () => {
  it.each(invalid)('$name', ({ type, probe, problem }) => {
    let caught: unknown;
    try {
      resolveProbe(probe, type);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ProbeValidationError);
    expect((caught as Error).message).toMatch(problem);
  });

  it('addPod refuses a pod with an invalid probe and adds no worker for it', () => {
    const manager = new ProbeManager({ prober: new FakeProber(), listener: new RecordingProbeListener(), statusProvider: new FakePodStatusProvider(), registry: new Registry(), logger: createLogger('t', 'silent') });
    const pod: V1Pod = {
      metadata: { uid: 'u', name: 'p', namespace: 'n' },
      spec: { containers: [{ name: 'a', readinessProbe: { tcpSocket: { port: 80 } } }, { name: 'b', livenessProbe: { tcpSocket: { port: 80 }, successThreshold: 2 } }] },
    };
    expect(() => manager.addPod(pod)).toThrow(/spec\.containers\[1\]\.livenessProbe\.successThreshold: Invalid value: 2: must be 1/);
    expect(manager.workerCount).toBe(0);
    manager.stop();
  });
});

describe('podReadiness', () => {
  const base: V1Pod = { spec: { containers: [{ name: 'a' }, { name: 'b' }], readinessGates: [{ conditionType: 'example.com/lb' }] } };
  const cs = (name: string, ready: boolean) => ({ name, ready, image: '', imageID: '', restartCount: 0 });
  it.each([
    { name: 'all ready, gate True', statuses: [cs('a', true), cs('b', true)], gate: 'True', want: { containersReady: true, ready: true } },
    { name: 'all ready, gate False', statuses: [cs('a', true), cs('b', true)], gate: 'False', want: { containersReady: true, ready: false, reason: 'ReadinessGatesNotReady' } },
    { name: 'one unready', statuses: [cs('a', true), cs('b', false)], gate: 'True', want: { containersReady: false, ready: false, reason: 'ContainersNotReady', message: 'containers with unready status: [b]' } },
    { name: 'status missing', statuses: [cs('a', true)], gate: 'True', want: { containersReady: false, ready: false } },
  ])('$name', ({ statuses, gate, want }) => {
    expect(podReadiness(base, { phase: 'Running', containerStatuses: statuses, conditions: [{ type: 'example.com/lb', status: gate }] })).toMatchObject(want);
  });
});

describe('ports, URLs and the exec prober', () => {
  const container = { name: 'app', ports: [{ name: 'http', containerPort: 8080 }, { name: 'dns', containerPort: 53, protocol: 'UDP' }] };
  it('resolves numbers and TCP container port names', () => {
    expect(resolvePort(80, container)).toBe(80);
    expect(resolvePort('8081', container)).toBe(8081);
    expect(resolvePort('http', container)).toBe(8080);
    expect(() => resolvePort('dns', container)).toThrow(ProbeError);
    expect(() => resolvePort('nope', container)).toThrow(/couldn't find port "nope" in container "app"/);
  });

  it('builds probe URLs like the kubelet (default path /, IPv6 brackets)', () => {
    expect(probeUrl({ scheme: 'HTTP', host: '10.0.0.1', port: 80, path: '' }).href).toBe('http://10.0.0.1/');
    expect(probeUrl({ scheme: 'HTTPS', host: 'fd00::1', port: 8443, path: 'healthz?x=1' }).href).toBe('https://[fd00::1]:8443/healthz?x=1');
  });

  it('exec: exit 0 success, non-zero failure with output, timeout failure, other errors are probe errors', async () => {
    const executor = new FakeExecutor(async (_id, cmd) => {
      if (cmd[0] === 'slow') throw new ExecTimeoutError('deadline');
      if (cmd[0] === 'broken') throw new Error('no such container');
      return { exitCode: cmd[0] === 'true' ? 0 : 2, stdout: Buffer.from('out '), stderr: 'err' };
    });
    expect(await probeExec(executor, 'c', ['true'], 1000)).toEqual({ result: 'success', output: 'out err' });
    expect(await probeExec(executor, 'c', ['false'], 1000)).toEqual({ result: 'failure', output: 'out err' });
    expect(await probeExec(executor, 'c', ['slow', 'x'], 1000)).toEqual({ result: 'failure', output: 'command "slow x" timed out' });
    await expect(probeExec(executor, 'c', ['broken'], 1000)).rejects.toThrow(/no such container/);
    expect(executor.calls[0]).toEqual({ containerId: 'c', cmd: ['true'], timeoutMs: 1000 });
  });

  it('exec: an executor that never answers is cut off by the prober', async () => {
    const executor = new FakeExecutor(() => new Promise(() => undefined));
    expect(await probeExec(executor, 'c', ['hang'], 10)).toEqual({ result: 'failure', output: 'command "hang" timed out' });
  });
});

describe('agent-facing helpers', () => {
  it('probeUserAgent takes major.minor of the kubelet version', async () => {
    const { probeUserAgent } = await import('../../probes/prober.js');
    expect(probeUserAgent('v1.32.0-knode')).toBe('kube-probe/1.32');
    expect(probeUserAgent('1.30.2')).toBe('kube-probe/1.30');
    expect(() => probeUserAgent('latest')).toThrow(/major\.minor/);
  });

  it('executorFromRuntime passes whole seconds and maps DeadlineExceeded to a probe timeout', async () => {
    const { executorFromRuntime } = await import('../../probes/types.js');
    const seen: number[] = [];
    const runtime = {
      execSync: async (_id: string, cmd: string[], timeoutSeconds: number) => {
        seen.push(timeoutSeconds);
        if (cmd[0] === 'slow') throw Object.assign(new Error('timed out after 1s'), { code: 'DeadlineExceeded' });
        return { exitCode: 0, stdout: 'ok', stderr: '' };
      },
    };
    const executor = executorFromRuntime(runtime);
    expect(await probeExec(executor, 'c', ['true'], 1500)).toEqual({ result: 'success', output: 'ok' });
    expect(await probeExec(executor, 'c', ['slow'], 1000)).toEqual({ result: 'failure', output: 'command "slow" timed out' });
    expect(seen).toEqual([2, 1]);
  });
});
