/**
 * The Docker runtime across a Docker daemon restart. The daemon is a SEPARATE dockerd this test
 * starts inside a test netns, with its own data root, exec root, pidfile, socket and containerd
 * namespace (never the shared engine). Pods are hostNetwork, i.e. in that node netns.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { DockerRuntime } from '../../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { isCriError, type PodSandboxConfig } from '../../cri/runtime.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { TestDockerd } from '../helpers/test-dockerd.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:dockerd');
const runId = randomBytes(4).toString('hex');


describe.skipIf(env.skip)('cri docker runtime: Docker daemon restart', () => {
  let dir: string;
  let net: TestNetwork;
  let node: Netns;
  let docker: Docker;

  let dockerd: TestDockerd;
  const startDaemon = (): Promise<void> => dockerd.start();
  const stopDaemon = (): Promise<void> => dockerd.stop();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kcd-'));
    net = new TestNetwork();
    node = await net.node('dockerd');
    dockerd = new TestDockerd(node, dir, runId);
    docker = dockerd.docker;
    await startDaemon();
  });

  afterAll(async () => {
    await dockerd?.stop();
    await net?.cleanup();
    if (dir) {
      await dockerd?.unmount();
      await rm(dir, { recursive: true, force: true });
    }
  });

  function sandboxConfig(attempt: number): PodSandboxConfig {
    return {
      metadata: { name: 'survivor', namespace: 'kube-system', uid: `uid-${runId}`, attempt },
      labels: { app: 'survivor' },
      linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
    };
  }

  it('reconnects after the daemon restarts and reports what survived', async () => {
    const options = { docker, sandboxRoot: join(dir, 'sandboxes'), scopeLabels: { 'io.knode.test': `restart-${runId}` }, logger: createLogger('cri', 'silent'), sandboxStopTimeoutSeconds: 1 };
    const runtime = new DockerRuntime(options);
    const image = await ensureLocalImage(docker, busyboxSpec);
    const config = sandboxConfig(0);
    const sandboxId = await runtime.runPodSandbox(config);
    expect((await runtime.podSandboxStatus(sandboxId)).linux.namespaces.options.network).toBe('NODE');
    const containerId = await runtime.createContainer(sandboxId, { metadata: { name: 'main', attempt: 0 }, image: { image }, command: ['sleep', '3600'] }, config);
    await runtime.startContainer(containerId);
    expect((await runtime.containerStatus(containerId)).state).toBe('CONTAINER_RUNNING');

    await stopDaemon();
    await expect(runtime.listPodSandbox()).rejects.toSatisfy((error: unknown) => isCriError(error, 'Unavailable'));
    const down = await runtime.status();
    expect(down.conditions.find((c) => c.type === 'RuntimeReady')?.status).toBe(false);

    await startDaemon();
    // the same runtime object (and a fresh one) see the stopped sandbox and container
    const sandboxes = await waitFor('the sandbox list after restart', async () => runtime.listPodSandbox());
    expect(sandboxes.map((s) => [s.id, s.state, s.metadata.name])).toEqual([[sandboxId, 'SANDBOX_NOTREADY', 'survivor']]);
    const fresh = new DockerRuntime(options);
    const status = await fresh.containerStatus(containerId);
    expect(status.state).toBe('CONTAINER_EXITED');
    expect(status.podSandboxId).toBe(sandboxId);
    expect((await fresh.status()).conditions.find((c) => c.type === 'RuntimeReady')?.status).toBe(true);

    // the agent's recovery: a new sandbox attempt runs, the old one is removed
    const next = await runtime.runPodSandbox(sandboxConfig(1));
    const again = await runtime.createContainer(next, { metadata: { name: 'main', attempt: 1 }, image: { image }, command: ['sleep', '3600'] }, sandboxConfig(1));
    await runtime.startContainer(again);
    expect((await runtime.execSync(again, ['echo', 'alive'], 10)).stdout).toBe('alive\n');
    await runtime.removePodSandbox(sandboxId);
    expect((await runtime.listPodSandbox()).map((s) => s.id)).toEqual([next]);
    await runtime.stopPodSandbox(next);
    await runtime.removePodSandbox(next);
    expect(await runtime.listContainers()).toEqual([]);
  });
});
