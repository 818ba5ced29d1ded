/**
 * The exec prober and a whole liveness loop against a REAL busybox container on the Docker
 * Engine. The dockerode exec adapter below implements probes' ContainerExecutor; the agent's
 * CRI ExecSync will take its place in the product.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { Registry } from 'prom-client';
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { createLogger } from '../../lib/log.js';
import { ProbeManager } from '../../probes/manager.js';
import { HandlerProber, probeExec } from '../../probes/prober.js';
import { ExecTimeoutError, type ContainerExecutor, type ExecResult, type PodStatusProvider } from '../../probes/types.js';
import { removeLabelledContainers, testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { RecordingProbeListener } from '../helpers/probe-fakes.js';

const env = await prerequisites('root', 'docker', 'command:busybox');
const runLabel = `io.knode.test=probes-exec-${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];

/** ExecSync over dockerode: run, collect stdout/stderr, read the exit code; timeout → ExecTimeoutError. */
class DockerodeExecutor implements ContainerExecutor {
  constructor(private readonly docker: Docker) {}

  async execSync(containerId: string, cmd: string[], timeoutMs: number): Promise<ExecResult> {
    const exec = await this.docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    stdout.on('data', (chunk: Buffer) => out.push(chunk));
    stderr.on('data', (chunk: Buffer) => err.push(chunk));
    this.docker.modem.demuxStream(stream, stdout, stderr);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve, reject) => {
          stream.on('end', resolve);
          stream.on('close', resolve);
          stream.on('error', reject);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new ExecTimeoutError(`exec ${JSON.stringify(cmd)} in ${containerId.slice(0, 12)} timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      stream.destroy();
    }
    const info = await exec.inspect();
    return { exitCode: info.ExitCode ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
  }
}
const _executor: ContainerExecutor = new DockerodeExecutor({} as Docker);
void _executor;

async function startBusybox(docker: Docker, image: string, name: string): Promise<string> {
  const container = await docker.createContainer({
    name,
    Image: image,
    Cmd: ['sh', '-c', 'touch /tmp/healthy; exec sleep 600'],
    Labels: { [labelKey]: labelValue },
    HostConfig: { NetworkMode: 'none' },
  });
  await container.start();
  return container.id;
}


describe.skipIf(env.skip)('exec probes against a real busybox container', () => {
  let docker: Docker;
  let image = '';
  let containerId = '';

  beforeAll(async () => {
    docker = await testDocker();
    image = await ensureLocalImage(docker, busyboxSpec);
    containerId = await startBusybox(docker, image, `knode-probes-exec-${randomBytes(4).toString('hex')}`);
  });

  afterAll(async () => {
    if (docker) await removeLabelledContainers(docker, runLabel);
  });

  it('exit 0 is success, exit 1 is failure with its output, a command past its timeout is a failure', async () => {
    const executor = new DockerodeExecutor(docker);
    expect(await probeExec(executor, containerId, ['cat', '/tmp/healthy'], 5000)).toEqual({ result: 'success', output: '' });
    expect(await probeExec(executor, containerId, ['sh', '-c', 'echo out; echo err >&2; exit 1'], 5000)).toEqual({ result: 'failure', output: 'out\nerr\n' });
    const started = Date.now();
    expect(await probeExec(executor, containerId, ['sleep', '30'], 1000)).toEqual({ result: 'failure', output: 'command "sleep 30" timed out' });
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('a liveness exec probe that starts failing asks for a kill; the restarted container is probed afresh', async () => {
    const executor = new DockerodeExecutor(docker);
    const listener = new RecordingProbeListener();
    const uid = `pod-${randomBytes(4).toString('hex')}`;
    const pod: V1Pod = {
      metadata: { uid, name: 'liveness-exec', namespace: 'probes' },
      spec: {
        terminationGracePeriodSeconds: 20,
        containers: [{ name: 'app', livenessProbe: { exec: { command: ['cat', '/tmp/healthy'] }, periodSeconds: 1, failureThreshold: 2, timeoutSeconds: 5, terminationGracePeriodSeconds: 4 } }],
      },
    };
    let current = containerId;
    const status = (): V1PodStatus => ({ phase: 'Running', containerStatuses: [{ name: 'app', containerID: current, image, imageID: '', ready: false, restartCount: 0, state: { running: { startedAt: new Date(0) } } }] });
    const provider: PodStatusProvider = { getPodStatus: (podUid) => (podUid === uid ? status() : undefined) };
    const manager = new ProbeManager({ prober: new HandlerProber(executor), listener, statusProvider: provider, registry: new Registry(), logger: createLogger('probes-test', 'silent') });
    try {
      manager.addPod(pod);
      manager.start();
      await waitFor('a successful probe', () => (listener.events.length === 0 && manager.getResult(current, 'liveness') === 'success' ? true : undefined), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(listener.kills).toHaveLength(0);
      await executor.execSync(current, ['rm', '/tmp/healthy'], 5000);
      const kill = await waitFor('a kill request', () => listener.kills[0]);
      expect(kill).toMatchObject({ containerId: current, reason: 'LivenessProbe', gracePeriodSeconds: 4, message: 'Container app failed liveness probe, will be restarted' });
      expect(kill.probeOutput).toContain('No such file or directory');
      expect(listener.events.filter((event) => event.reason === 'Unhealthy')[0]!.message).toMatch(/^Liveness probe failed: cat: can't open '\/tmp\/healthy': No such file or directory/);
      expect(manager.getResult(current, 'liveness')).toBe('failure');
      // Act as the agent: kill with the grace period and start a new container (new ID).
      await docker.getContainer(current).stop({ t: kill.gracePeriodSeconds });
      const old = current;
      current = await startBusybox(docker, image, `knode-probes-exec-${randomBytes(4).toString('hex')}`);
      await waitFor('the new container probed healthy', () => (manager.getResult(current, 'liveness') === 'success' && manager.getResult(old, 'liveness') === undefined ? true : undefined));
      const probesBefore = listener.events.length;
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(listener.kills).toHaveLength(1);
      expect(listener.events.length).toBe(probesBefore);
    } finally {
      manager.stop();
    }
  });
});
