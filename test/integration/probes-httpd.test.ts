/**
 * httpGet/tcpSocket probes against a real busybox httpd container (issue 6): readiness failing
 * flips Ready to False without a restart; liveness failing (its /healthz removed) asks the agent
 * to kill the container with the probe's grace period, and the replacement container (new ID)
 * is probed afresh. The test plays the agent's part (kill, restart, restartCount, lastState).
 * The container uses the host network with httpd bound to 127.0.0.1 only: probes go over the
 * root namespace's loopback, no interface, route or rule is created.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type Docker from 'dockerode';
import { Registry } from 'prom-client';
import type { V1ContainerStatus, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { createLogger } from '../../lib/log.js';
import { ProbeManager } from '../../probes/manager.js';
import { HandlerProber } from '../../probes/prober.js';
import { podReadiness } from '../../probes/readiness.js';
import { type PodStatusProvider } from '../../probes/types.js';
import { removeLabelledContainers, testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { FakeExecutor, RecordingProbeListener } from '../helpers/probe-fakes.js';

const env = await prerequisites('root', 'docker', 'command:busybox');
const runLabel = `io.knode.test=probes-httpd-${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];

async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}


describe.skipIf(env.skip)('http probes against a real busybox httpd container', () => {
  let docker: Docker;
  let image = '';
  let port = 0;

  async function startHttpd(): Promise<string> {
    const container = await docker.createContainer({
      name: `knode-probes-httpd-${randomBytes(4).toString('hex')}`,
      Image: image,
      Cmd: ['sh', '-c', `mkdir -p /www && echo ok > /www/healthz && echo ok > /www/ready && exec httpd -f -p 127.0.0.1:${port} -h /www`],
      Labels: { [labelKey]: labelValue },
      HostConfig: { NetworkMode: 'host' },
    });
    await container.start();
    return container.id;
  }

  async function execIn(id: string, cmd: string[]): Promise<void> {
    const exec = await docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    stream.resume();
    await new Promise((resolve) => stream.on('end', resolve));
  }

  beforeAll(async () => {
    docker = await testDocker();
    image = await ensureLocalImage(docker, busyboxSpec);
    port = await freeLoopbackPort();
  });

  afterAll(async () => {
    if (docker) await removeLabelledContainers(docker, runLabel);
  });

  it('readiness failure flips Ready without a restart; liveness failure restarts with reason and grace period', async () => {
    const uid = `pod-${randomBytes(4).toString('hex')}`;
    const pod: V1Pod = {
      metadata: { uid, name: 'httpd', namespace: 'probes' },
      spec: {
        containers: [{
          name: 'web',
          ports: [{ name: 'http', containerPort: port }],
          livenessProbe: { httpGet: { port: 'http', path: '/healthz' }, periodSeconds: 1, failureThreshold: 2, terminationGracePeriodSeconds: 3 },
          readinessProbe: { httpGet: { port: 'http', path: '/ready' }, periodSeconds: 1, failureThreshold: 1 },
          startupProbe: { tcpSocket: { port }, periodSeconds: 1, failureThreshold: 30 },
        }],
      },
    };
    let containerId = await startHttpd();
    let restartCount = 0;
    let lastState: V1ContainerStatus['lastState'];
    const status = (): V1PodStatus => ({
      phase: 'Running',
      podIP: '127.0.0.1',
      containerStatuses: [{ name: 'web', containerID: containerId, image, imageID: '', ready: false, restartCount, lastState, state: { running: { startedAt: new Date() } } }],
    });
    const provider: PodStatusProvider = { getPodStatus: (podUid) => (podUid === uid ? status() : undefined) };
    const listener = new RecordingProbeListener();
    const manager = new ProbeManager({ prober: new HandlerProber(new FakeExecutor()), listener, statusProvider: provider, registry: new Registry(), logger: createLogger('probes-test', 'silent') });
    const ready = (): boolean => podReadiness(pod, manager.updatePodStatus(uid, status())).ready;
    try {
      manager.addPod(pod);
      manager.start();
      await waitFor('Ready', () => (ready() ? true : undefined));
      expect(manager.getResult(containerId, 'startup')).toBe('success');

      await execIn(containerId, ['rm', '/www/ready']);
      await waitFor('not Ready', () => (ready() ? undefined : true));
      expect(listener.events.some((event) => event.message === 'Readiness probe failed: HTTP probe failed with statuscode: 404')).toBe(true);
      expect(listener.kills).toHaveLength(0);

      await execIn(containerId, ['rm', '/www/healthz']);
      const kill = await waitFor('a liveness kill', () => listener.kills[0]);
      expect(kill).toMatchObject({ containerId, reason: 'LivenessProbe', gracePeriodSeconds: 3, message: 'Container web failed liveness probe, will be restarted' });
      expect(listener.events.some((event) => event.reason === 'Unhealthy' && event.message === 'Liveness probe failed: HTTP probe failed with statuscode: 404')).toBe(true);

      // The agent's part: kill with the grace period, record lastState, start a new container.
      await docker.getContainer(containerId).stop({ t: kill.gracePeriodSeconds });
      lastState = { terminated: { exitCode: 137, reason: 'Error', message: kill.message } };
      restartCount += 1;
      const old = containerId;
      containerId = await startHttpd();
      await waitFor('Ready again after the restart', () => (ready() ? true : undefined));
      // The liveness worker adopts the new container at its next tick and drops the old result.
      await waitFor('liveness reset', () => (manager.getResult(old, 'liveness') === undefined ? true : undefined));
      expect(manager.getResult(containerId, 'liveness')).toBe('success');
      expect(status().containerStatuses![0]).toMatchObject({ restartCount: 1, lastState: { terminated: { message: 'Container web failed liveness probe, will be restarted' } } });
      expect(listener.kills).toHaveLength(1);
    } finally {
      manager.stop();
    }
  });
});
