/**
 * Container probes for real (issue 6): `knode agent` runs as a process inside a test node netns
 * (./helpers-node.ts), so httpGet/tcpSocket probes go from the node's network namespace to the
 * pod, as the kubelet's do. One API pod, two busybox containers, behind a Service:
 *   web:  httpd on :8080; liveness httpGet /healthz, readiness httpGet /ready (named port)
 *   side: httpd on :9000; readiness tcpSocket :9000, liveness exec `test -f /tmp/alive`
 * The test flips the files / kills the server with `docker exec` and checks what the API shows:
 * Ready conditions, the EndpointSlice's `conditions.ready` (EndpointSlice controller of the
 * stub), restarts with lastState.terminated, and `Unhealthy` events.
 */
import type Docker from 'dockerode';
import { CoreV1Api, DiscoveryV1Api, KubeConfig, type CoreV1Event, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { agentNodeUnavailable, startAgentNode, type AgentNode } from './helpers-node.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter');
const unavailable = env.skip ? 'prerequisites' : await agentNodeUnavailable();
if (unavailable && process.env.CI === 'true' && !env.skip) throw new Error(`agent-probes e2e cannot run: ${unavailable}`);

const ns = 'default';
const podName = 'probed';
const waitMs = 60_000;

describe.skipIf(Boolean(unavailable))('agent probes from the node netns (real containers, EndpointSlice through the stub)', () => {
  let docker: Docker;
  let cp: TestControlPlane;
  let node: AgentNode | undefined;
  let core: CoreV1Api;
  let discovery: DiscoveryV1Api;

  const readPod = () => core.readNamespacedPod({ name: podName, namespace: ns });
  const containerStatus = (pod: V1Pod, name: string) => pod.status?.containerStatuses?.find((c) => c.name === name);
  const podReady = (pod: V1Pod) => pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  const running = async (container: string) => {
    const [info] = (await node!.containers(podName)).filter((c) => c.Labels['io.kubernetes.container.name'] === container);
    if (!info) throw new Error(`no running container ${container}`);
    return info;
  };
  /** `docker exec` in the named container; returns the exit code. */
  const dockerExec = async (container: string, cmd: string[]): Promise<number> => {
    const exec = await docker.getContainer((await running(container)).Id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({});
    await new Promise<void>((resolve) => {
      stream.on('end', () => resolve());
      stream.on('error', () => resolve());
      stream.resume();
    });
    return (await exec.inspect()).ExitCode ?? -1;
  };
  const sliceEndpoint = async (ip: string) => {
    const slices = await discovery.listNamespacedEndpointSlice({ namespace: ns, labelSelector: 'kubernetes.io/service-name=web' });
    return slices.items.flatMap((s) => s.endpoints ?? []).find((e) => e.addresses.includes(ip));
  };
  const unhealthy = async (container: string, prefix: string): Promise<CoreV1Event | undefined> =>
    (await core.listNamespacedEvent({ namespace: ns })).items.find(
      (e) => e.reason === 'Unhealthy' && e.involvedObject.name === podName && e.involvedObject.fieldPath === `spec.containers{${container}}` && (e.message ?? '').startsWith(prefix),
    );
  const diagnose = (error: unknown): never => {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n--- agent log (tail) ---\n${node?.logs().slice(-6000)}`, { cause: error });
  };

  beforeAll(async () => {
    docker = await testDocker();
    const busybox = await ensureLocalImage(docker, busyboxSpec);
    cp = await startTestControlPlane(); // controllers on: the EndpointSlice controller runs
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    discovery = kc.makeApiClient(DiscoveryV1Api);
    node = await startAgentNode({ controlPlane: cp, docker, name: 'probes' });
    const probe = { periodSeconds: 1, timeoutSeconds: 1 };
    await core.createNamespacedService({ namespace: ns, body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } } });
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: podName, labels: { app: 'web' } },
        spec: {
          nodeName: node.nodeName,
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'web',
              image: busybox,
              command: ['/bin/sh', '-c', 'mkdir -p /www && echo ok > /www/healthz && echo ok > /www/ready && exec httpd -f -p 8080 -h /www'],
              ports: [{ name: 'http', containerPort: 8080 }],
              livenessProbe: { ...probe, failureThreshold: 2, httpGet: { path: '/healthz', port: 'http' } },
              readinessProbe: { ...probe, failureThreshold: 1, httpGet: { path: '/ready', port: 'http' } },
            },
            {
              name: 'side',
              image: busybox,
              command: ['/bin/sh', '-c', 'mkdir -p /srv && touch /tmp/alive && httpd -p 9000 -h /srv && exec sleep 3600'],
              readinessProbe: { ...probe, failureThreshold: 1, tcpSocket: { port: 9000 } },
              livenessProbe: { ...probe, failureThreshold: 2, exec: { command: ['test', '-f', '/tmp/alive'] } },
            },
          ],
        },
      },
    });
  }, 120_000);

  afterAll(async () => {
    await node?.stop();
    await cp?.stop();
  }, 60_000);

  it('runs the pod Ready (httpGet + tcpSocket readiness, httpGet + exec liveness pass) with a ready endpoint', async () => {
    try {
      const pod = await waitFor('pod Running and Ready', async () => {
        const p = await readPod();
        return p.status?.phase === 'Running' && podReady(p) && p.status.podIP ? p : undefined;
      }, 90_000);
      expect(node!.subnet.startsWith(pod.status!.podIP!.split('.').slice(0, 3).join('.'))).toBe(true);
      const endpoint = await waitFor('ready endpoint in the EndpointSlice', async () => {
        const e = await sliceEndpoint(pod.status!.podIP!);
        return e?.conditions?.ready === true ? e : undefined;
      }, waitMs);
      expect(endpoint.targetRef).toMatchObject({ kind: 'Pod', name: podName });
      expect(containerStatus(pod, 'web')!.restartCount).toBe(0);
      expect(containerStatus(pod, 'side')!.restartCount).toBe(0);
    } catch (error) {
      diagnose(error);
    }
  }, 120_000);

  it('a failing httpGet readiness probe flips Ready and the endpoint to not ready, and back', async () => {
    try {
      const ip = (await readPod()).status!.podIP!;
      expect(await dockerExec('web', ['rm', '/www/ready'])).toBe(0);
      const notReady = await waitFor('pod not Ready', async () => {
        const p = await readPod();
        return !podReady(p) ? p : undefined;
      }, waitMs);
      expect(containerStatus(notReady, 'web')!.ready).toBe(false);
      expect(notReady.status!.conditions!.find((c) => c.type === 'ContainersReady')!.status).toBe('False');
      await waitFor('endpoint not ready', async () => (await sliceEndpoint(ip))?.conditions?.ready === false, waitMs);
      expect((await waitFor('Unhealthy readiness event', () => unhealthy('web', 'Readiness probe failed: '), waitMs)).message).toMatch(/404/);
      // readiness never restarts anything
      expect(containerStatus(await readPod(), 'web')!.restartCount).toBe(0);
      expect(await dockerExec('web', ['sh', '-c', 'echo ok > /www/ready'])).toBe(0);
      await waitFor('pod Ready again', async () => podReady(await readPod()), waitMs);
      await waitFor('endpoint ready again', async () => (await sliceEndpoint(ip))?.conditions?.ready === true, waitMs);
    } catch (error) {
      diagnose(error);
    }
  }, 120_000);

  it('a failing tcpSocket readiness probe makes the container not ready, and ready again', async () => {
    try {
      expect(await dockerExec('side', ['killall', 'httpd'])).toBe(0);
      await waitFor('side not ready', async () => {
        const p = await readPod();
        return containerStatus(p, 'side')?.ready === false && !podReady(p);
      }, waitMs);
      expect(containerStatus(await readPod(), 'side')!.restartCount).toBe(0);
      expect(await dockerExec('side', ['httpd', '-p', '9000', '-h', '/srv'])).toBe(0);
      await waitFor('side ready again', async () => {
        const p = await readPod();
        return containerStatus(p, 'side')?.ready === true && podReady(p);
      }, waitMs);
    } catch (error) {
      diagnose(error);
    }
  }, 120_000);

  it('a failing httpGet liveness probe restarts the container, records lastState and an Unhealthy event', async () => {
    try {
      const before = (await running('web')).Id;
      expect(await dockerExec('web', ['rm', '/www/healthz'])).toBe(0);
      const restarted = await waitFor('web restarted', async () => {
        const p = await readPod();
        const s = containerStatus(p, 'web');
        return s && s.restartCount >= 1 && s.lastState?.terminated && s.state?.running ? s : undefined;
      }, waitMs);
      expect(restarted.containerID).not.toContain(before);
      expect(restarted.lastState!.terminated!.containerID).toContain(before);
      const event = await waitFor('Unhealthy liveness event', () => unhealthy('web', 'Liveness probe failed: '), waitMs);
      expect(event.type).toBe('Warning');
      expect(event.message).toMatch(/404/);
      expect(event.source?.component).toBe('kubelet');
      // the restarted container recreated its files: Ready again, and the other container untouched
      await waitFor('pod Ready after the restart', async () => podReady(await readPod()), waitMs);
      expect(containerStatus(await readPod(), 'side')!.restartCount).toBe(0);
    } catch (error) {
      diagnose(error);
    }
  }, 120_000);

  it('a failing exec liveness probe restarts the container with an Unhealthy event', async () => {
    try {
      expect(await dockerExec('side', ['rm', '/tmp/alive'])).toBe(0);
      const restarted = await waitFor('side restarted', async () => {
        const s = containerStatus(await readPod(), 'side');
        return s && s.restartCount >= 1 && s.lastState?.terminated && s.state?.running ? s : undefined;
      }, waitMs);
      expect(restarted.lastState!.terminated!.finishedAt).toBeDefined();
      await waitFor('Unhealthy exec liveness event', () => unhealthy('side', 'Liveness probe failed: '), waitMs);
      await waitFor('pod Ready after the restart', async () => podReady(await readPod()), waitMs);
    } catch (error) {
      diagnose(error);
    }
  }, 120_000);
});
