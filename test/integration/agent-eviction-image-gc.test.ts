/**
 * Image garbage collection through the real agent on real Docker: three throw-away images
 * (commits of busybox, tagged knt-gc-<run>:a|b|c), a hostNetwork pod running image b. With
 * imageGCHighThresholdPercent under the disk's usage, one pass of the agent's image GC
 * (CRI ImageService: listImages / removeImage / imageFsInfo; in use from listContainers) removes
 * a and c and keeps b. The pass is run by the test once the pod runs (the cron schedule is set
 * far away), so it cannot race the pod's container creation. The Docker engine is shared: every image this test did not create is
 * pinned through the agent's `pinnedImages` option, so nothing else can be collected.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { DockerRuntime } from '../../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { readFsStats } from '../../eviction/signals.js';
import { kubeletApiVersion, parseKubeletConfig } from '../../lib/config/kubelet.js';
import { createLogger } from '../../lib/log.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { removeAgentPods, testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites('root', 'docker');
const runId = randomBytes(4).toString('hex');
const scopeKey = 'io.knode.test';
const scope = { [scopeKey]: `agent-eviction-gc-${runId}` };
const nodeName = `knt-gc-${runId}`;
const repo = `knt-gc-${runId}`;
const ours = (tags: readonly string[]) => tags.some((tag) => tag.startsWith(`${repo}:`));

describe.skipIf(env.skip)('agent: image garbage collection on real Docker', () => {
  let docker: Docker;
  let dir: string;
  let cp: TestControlPlane;
  let core: CoreV1Api;
  let agent: Agent | undefined;
  const ids = new Map<string, string>();

  const imageExists = async (ref: string) => docker.getImage(ref).inspect().then(() => true, () => false);

  beforeAll(async () => {
    docker = await testDocker();
    const busybox = await ensureLocalImage(docker, busyboxSpec);
    for (const tag of ['a', 'b', 'c']) {
      const container = await docker.createContainer({ Image: busybox, Cmd: ['true'], Labels: { [scopeKey]: scope[scopeKey] } });
      try {
        const committed = (await container.commit({ repo, tag, comment: `knode test ${runId}` })) as { Id: string };
        ids.set(tag, committed.Id);
      } finally {
        await container.remove({ force: true });
      }
    }
    dir = await mkdtemp(join(tmpdir(), 'knode-agent-gc-'));
    cp = await startTestControlPlane({ controllers: false });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    // A high threshold just under the image filesystem's current usage: GC is due at once.
    const rootDir = ((await docker.info()) as { DockerRootDir?: string }).DockerRootDir ?? '/var/lib/docker';
    const fs = await readFsStats(rootDir);
    const usedPercent = 100 - Math.trunc((fs.availableBytes * 100) / fs.capacityBytes);
    expect(usedPercent, 'the image filesystem must be at least 2% used').toBeGreaterThanOrEqual(2);
    const config = parseKubeletConfig(
      {
        apiVersion: kubeletApiVersion,
        kind: 'KubeletConfiguration',
        enableServer: false,
        nodeStatusUpdateFrequency: '1s',
        imageGCHighThresholdPercent: usedPercent - 1,
        imageGCLowThresholdPercent: usedPercent - 2,
        imageMinimumGCAge: '0s',
        // No pressure eviction from this test's agent (only image GC is under test here).
        evictionHard: { 'memory.available': '1Mi' },
      },
      'test',
    ).config;
    agent = new Agent({
      nodeName,
      config,
      kubeConfig: kc,
      runtime: new DockerRuntime({ docker, sandboxRoot: join(dir, 'sandboxes'), scopeLabels: scope, sandboxStopTimeoutSeconds: 2, logger: createLogger('cri', 'silent') }),
      rootDir: join(dir, 'root'),
      podLogsDir: join(dir, 'pod-logs'),
      nodeIP: '10.255.0.1',
      // Shared engine: only this test's images may be collected.
      eviction: { imageGCSchedule: '0 0 0 1 1 *', pinnedImages: (tags) => !ours(tags) },
      log: createLogger('agent', process.env.KNODE_TEST_LOG_LEVEL ?? 'silent', process.stderr),
    });
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    if (docker) {
      await removeAgentPods(docker, `${scopeKey}=${scope[scopeKey]}`);
      for (const tag of ['a', 'b', 'c']) await docker.getImage(`${repo}:${tag}`).remove({ force: true }).catch(() => undefined);
    }
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('removes the unused throw-away images and keeps the one a pod uses', async () => {
    // The pod first, so that image b is in use before the first GC pass.
    await core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: 'user', namespace: 'default' },
        spec: { nodeName, hostNetwork: true, terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image: `${repo}:b`, imagePullPolicy: 'Never', command: ['/bin/sh', '-c', 'exec sleep 3600'] }] },
      },
    });
    await agent!.start();
    await waitFor('pod Running', async () => (await core.readNamespacedPod({ name: 'user', namespace: 'default' })).status?.phase === 'Running', 45_000, 250);
    const gc = await waitFor('image GC started', () => agent!.eviction?.imageGC, 30_000, 100);
    const result = await gc.garbageCollect();
    expect(result.wantedBytes).toBeGreaterThan(0);
    expect(new Set(result.removed)).toEqual(new Set([ids.get('a'), ids.get('c')]));
    expect(await imageExists(`${repo}:a`)).toBe(false);
    expect(await imageExists(`${repo}:c`)).toBe(false);
    expect(await imageExists(`${repo}:b`)).toBe(true);
    expect(await imageExists(busyboxSpec.ref)).toBe(true);
    const records = agent!.eviction!.imageGC!.recordsSnapshot();
    expect(records.get(ids.get('b')!)?.lastUsed).toBeGreaterThan(0);
    expect(records.has(ids.get('a')!)).toBe(false);
  }, 120_000);
});
