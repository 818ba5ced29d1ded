/**
 * Pod-level cgroups through the real agent on real Docker and the real cgroup tree (cgroupfs
 * driver, cgroupsPerQOS=true), as the kubelet's pod container manager makes them
 * (pkg/kubelet/cm/pod_container_manager_linux.go, helpers_linux.go ResourceConfigForPod):
 * - a Burstable pod with limits on every container: /kubepods/burstable/pod<uid> has
 *   memory.limit_in_bytes and cpu.cfs_quota_us = the sums, cpu.shares from the summed requests;
 *   the kernel reports the pod limit as the hierarchical limit, each container's cgroup is
 *   nested inside the pod cgroup and charged to it;
 * - a Guaranteed pod directly under /kubepods; a BestEffort pod with 2 shares and no limit;
 *   the besteffort tier has 2 shares;
 * - deleting the pods removes their cgroups.
 * Only this test's pods' cgroups are read or written (the kubepods tiers are the agent's own).
 * hostNetwork pods: no CNI needed. No memory is allocated beyond what busybox sleep uses.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { CoreV1Api, KubeConfig, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { cgroupVersion } from '../../agent/cgroups/cgroups.js';
import { DockerRuntime } from '../../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage, pauseSpec } from '../../cri/local-images.js';
import { kubeletApiVersion, parseKubeletConfig } from '../../lib/config/kubelet.js';
import { createLogger } from '../../lib/log.js';
import { parseQuantity } from '../../lib/quantity.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { removeAgentPods, testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites('root', 'docker');
const cgroupMount = '/sys/fs/cgroup';
const version = await cgroupVersion(cgroupMount);
const runId = randomBytes(4).toString('hex');
const scopeKey = 'io.knode.test';
const scope = { [scopeKey]: `agent-pod-cgroups-${runId}` };
const nodeName = `knt-cgroups-${runId}`;
const Mi = 2 ** 20;

/** <mount>/<controller>/<path>/<file> on v1, <mount>/<path>/<file> on v2. */
const cgroupFile = (controller: string, path: string, file: string) => (version === 2 ? join(cgroupMount, path, file) : join(cgroupMount, controller, path, file));
const readCgroup = async (controller: string, path: string, file: string) => (await readFile(cgroupFile(controller, path, file), 'utf8')).trim();
const cgroupExists = (controller: string, path: string) => stat(cgroupFile(controller, path, '')).then(() => true, () => false);

describe.skipIf(env.skip || version === undefined)('agent: pod-level cgroups on the real cgroup tree', () => {
  let docker: Docker;
  let dir: string;
  let cp: TestControlPlane;
  let core: CoreV1Api;
  let agent: Agent | undefined;
  let busybox: string;

  const container = (name: string, limits?: Record<string, string>, requests?: Record<string, string>): V1Container => ({
    name,
    image: busybox,
    imagePullPolicy: 'Never',
    command: ['/bin/sh', '-c', 'exec sleep 3600'],
    ...(limits || requests ? { resources: { ...(limits ? { limits } : {}), ...(requests ? { requests } : {}) } } : {}),
  });
  const pod = (name: string, containers: V1Container[]): V1Pod => ({
    metadata: { name, namespace: 'default' },
    spec: { nodeName, hostNetwork: true, terminationGracePeriodSeconds: 1, containers },
  });
  const runningPod = (name: string) =>
    waitFor(`${name} Running`, async () => {
      const p = await core.readNamespacedPod({ name, namespace: 'default' });
      return p.status?.phase === 'Running' && p.status.containerStatuses?.every((s) => s.state?.running) ? p : undefined;
    }, 90_000, 250);
  /** The cgroup path (per hierarchy) of an app container's main process, from /proc/<pid>/cgroup. */
  const processCgroup = async (containerId: string, controller: string): Promise<string> => {
    const info = await docker.getContainer(containerId.replace(/^docker:\/\//, '')).inspect();
    const lines = (await readFile(`/proc/${info.State.Pid}/cgroup`, 'utf8')).trim().split('\n');
    const line = lines.find((l) => (version === 2 ? l.startsWith('0::') : l.split(':')[1]!.split(',').includes(controller)));
    return line!.split(':').slice(2).join(':');
  };

  beforeAll(async () => {
    docker = await testDocker();
    busybox = await ensureLocalImage(docker, busyboxSpec);
    await ensureLocalImage(docker, pauseSpec);
    dir = await mkdtemp(join(tmpdir(), 'knode-agent-cgroups-'));
    cp = await startTestControlPlane({ controllers: false });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    const config = parseKubeletConfig(
      {
        apiVersion: kubeletApiVersion,
        kind: 'KubeletConfiguration',
        enableServer: false,
        syncFrequency: '20s',
        nodeStatusUpdateFrequency: '2s',
        cgroupsPerQOS: true,
        cgroupDriver: 'cgroupfs',
        podPidsLimit: 128,
        // A busy shared test machine must not evict the test's pods or collect its images.
        evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
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
      log: createLogger('agent', process.env.KNODE_TEST_LOG_LEVEL ?? 'silent', process.stderr),
    });
    await agent.start();
  }, 150_000);

  afterAll(async () => {
    await agent?.stop();
    if (docker) await removeAgentPods(docker, `${scopeKey}=${scope[scopeKey]}`);
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('Burstable pod: the pod cgroup holds the summed limits and its containers, nested and charged', async () => {
    await core.createNamespacedPod({
      namespace: 'default',
      body: pod('burstable', [container('a', { cpu: '100m', memory: '32Mi' }, { cpu: '50m', memory: '8Mi' }), container('b', { cpu: '200m', memory: '32Mi' }, { cpu: '100m' })]),
    });
    const p = await runningPod('burstable');
    const path = `/kubepods/burstable/pod${p.metadata!.uid}`;
    if (version === 1) {
      expect(await readCgroup('memory', path, 'memory.limit_in_bytes')).toBe(String(64 * Mi));
      expect(await readCgroup('cpu', path, 'cpu.cfs_quota_us')).toBe('30000');
      expect(await readCgroup('cpu', path, 'cpu.cfs_period_us')).toBe('100000');
      expect(await readCgroup('cpu', path, 'cpu.shares')).toBe('153');
      expect(await readCgroup('pids', path, 'pids.max')).toBe('128');
      // The kernel's own view: the pod limit is the hierarchical limit of the pod cgroup.
      expect(await readCgroup('memory', path, 'memory.stat')).toMatch(new RegExp(`^hierarchical_memory_limit ${64 * Mi}$`, 'm'));
    } else {
      expect(await readCgroup('memory', path, 'memory.max')).toBe(String(64 * Mi));
      expect(await readCgroup('cpu', path, 'cpu.max')).toBe('30000 100000');
      expect(await readCgroup('cpu', path, 'cpu.weight')).toBe('6');
    }
    const usages: number[] = [];
    for (const status of p.status!.containerStatuses!) {
      for (const controller of ['cpu', 'memory']) expect(await processCgroup(status.containerID!, controller)).toMatch(new RegExp(`^${path}/[0-9a-f]{64}$`));
      const own = await processCgroup(status.containerID!, 'memory');
      usages.push(Number(await readCgroup('memory', own, version === 1 ? 'memory.usage_in_bytes' : 'memory.current')));
    }
    // Hierarchical accounting: the pod cgroup is charged at least what its containers use.
    const podUsage = Number(await readCgroup('memory', path, version === 1 ? 'memory.usage_in_bytes' : 'memory.current'));
    expect(usages.every((u) => u > 0)).toBe(true);
    expect(podUsage).toBeGreaterThanOrEqual(usages.reduce((a, b) => a + b, 0));
    expect(podUsage).toBeLessThanOrEqual(64 * Mi);
  }, 150_000);

  it('Guaranteed pod directly under kubepods, BestEffort pod with 2 shares and no limits; deletion removes them', async () => {
    await core.createNamespacedPod({ namespace: 'default', body: pod('guaranteed', [container('g', { cpu: '250m', memory: '48Mi' })]) });
    await core.createNamespacedPod({ namespace: 'default', body: pod('besteffort', [container('e')]) });
    const g = await runningPod('guaranteed');
    const e = await runningPod('besteffort');
    const gPath = `/kubepods/pod${g.metadata!.uid}`;
    const ePath = `/kubepods/besteffort/pod${e.metadata!.uid}`;
    expect(await processCgroup(g.status!.containerStatuses![0]!.containerID!, 'memory')).toMatch(new RegExp(`^${gPath}/`));
    expect(await processCgroup(e.status!.containerStatuses![0]!.containerID!, 'cpu')).toMatch(new RegExp(`^${ePath}/`));
    if (version === 1) {
      expect(await readCgroup('memory', gPath, 'memory.limit_in_bytes')).toBe(String(48 * Mi));
      expect(await readCgroup('cpu', gPath, 'cpu.cfs_quota_us')).toBe('25000');
      expect(await readCgroup('cpu', gPath, 'cpu.shares')).toBe('256');
      expect(await readCgroup('cpu', ePath, 'cpu.shares')).toBe('2');
      expect(await readCgroup('cpu', ePath, 'cpu.cfs_quota_us')).toBe('-1');
      expect(BigInt(await readCgroup('memory', ePath, 'memory.limit_in_bytes'))).toBeGreaterThan(BigInt(2 ** 40));
      expect(await readCgroup('cpu', '/kubepods/besteffort', 'cpu.shares')).toBe('2');
    } else {
      expect(await readCgroup('memory', gPath, 'memory.max')).toBe(String(48 * Mi));
      expect(await readCgroup('memory', ePath, 'memory.max')).toBe('max');
      expect(await readCgroup('cpu', '/kubepods/besteffort', 'cpu.weight')).toBe('1');
    }

    // enforceNodeAllocatable ["pods"] (the default), nothing reserved: kubepods is limited to the
    // node's memory capacity (the kernel rounds the limit down to whole pages).
    const capacity = parseQuantity(agent!.node!.status!.capacity!.memory!);
    const limit = await readCgroup('memory', '/kubepods', version === 1 ? 'memory.limit_in_bytes' : 'memory.max');
    expect(Number(limit)).toBe(Math.floor(capacity / 4096) * 4096);

    for (const name of ['guaranteed', 'besteffort', 'burstable']) await core.deleteNamespacedPod({ name, namespace: 'default' });
    for (const path of [gPath, ePath]) {
      await waitFor(`${path} removed`, async () => !(await cgroupExists('cpu', path)) && !(await cgroupExists('memory', path)), 60_000, 250);
    }
  }, 150_000);
});
