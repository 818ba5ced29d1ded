/**
 * Real pressure, real containers, the real eviction manager (without the agent):
 * - disk: a tmpfs mounted by the test is nodefs; a BestEffort "pod" (busybox container) fills its
 *   emptyDir there; nodefs.available crosses evictionHard, DiskPressure goes True, the writer is
 *   evicted (its container stopped and its emptyDir removed, as the kubelet's pod cleanup), and
 *   DiskPressure goes back to False after the (shortened) transition period.
 * - memory: evictionHard memory.available is set 1536Mi under what is available now; a BestEffort
 *   container fills 3Gi of its /dev/shm (charged to its memory cgroup); the manager reads working
 *   sets from the containers' cgroups and evicts the BestEffort pod, not the Guaranteed one.
 * The PodKiller, PodStatsSource and ActivePodsSource here are small dockerode adapters: the agent
 * provides the real ones.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireMemoryPressureLock } from '../helpers/memory-pressure-lock.js';
import { parseKubeletConfig, kubeletApiVersion } from '../../lib/config/kubelet.js';
import { run } from '../../lib/exec.js';
import { createLogger } from '../../lib/log.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { prerequisites } from '../helpers/prereq.js';
import { removeLabelledContainers, testDocker } from '../helpers/docker.js';
import { EvictionManager, evictionConfigFromKubelet } from '../../eviction/manager.js';
import { NodeSignals } from '../../eviction/signals.js';
import { detectCgroupLayout, memoryCgroupOfPid, readWorkingSet } from '../../eviction/cgroup-memory.js';
import { makePod } from '../helpers/eviction-fakes.js';
import type { EvictedPodStatus, NodeConditionSink, PodKiller, PodUsage, PressureCondition } from '../../eviction/types.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites('root', 'docker', 'command:mount', 'command:umount');
const runId = randomBytes(4).toString('hex');
const labelKey = 'io.knode.test.eviction-pressure';
const Mi = 2 ** 20;
const silent = createLogger('eviction-pressure-test', process.env.KNODE_TEST_LOG ?? 'silent');

interface TestPod {
  pod: V1Pod;
  container: Docker.Container;
  emptyDir?: string;
}

/** Pods made of one busybox container each; the killer stops and removes them. */
class Harness implements PodKiller, NodeConditionSink {
  pods: TestPod[] = [];
  evicted: { name: string; gracePeriodSeconds: number; status: EvictedPodStatus; at: number }[] = [];
  history: { conditions: PressureCondition[]; at: number }[] = [];
  constructor(private readonly docker: Docker) {}

  async add(pod: V1Pod, cmd: string, options: { emptyDir?: string; shmSize?: number; memoryLimit?: number } = {}): Promise<void> {
    const container = await this.docker.createContainer({
      Image: busyboxSpec.ref,
      Cmd: ['sh', '-c', cmd],
      Labels: { [labelKey]: runId },
      HostConfig: {
        NetworkMode: 'none',
        Binds: options.emptyDir ? [`${options.emptyDir}:/data`] : undefined,
        ShmSize: options.shmSize,
        Memory: options.memoryLimit,
      },
    });
    await container.start();
    this.pods.push({ pod, container, emptyDir: options.emptyDir });
  }

  async activePods(): Promise<V1Pod[]> {
    return this.pods.map((p) => p.pod);
  }

  async evictPod(pod: V1Pod, gracePeriodSeconds: number, status: EvictedPodStatus): Promise<void> {
    const entry = this.pods.find((p) => p.pod === pod)!;
    this.pods = this.pods.filter((p) => p !== entry);
    this.evicted.push({ name: pod.metadata!.name!, gracePeriodSeconds, status, at: Date.now() });
    await entry.container.stop({ t: gracePeriodSeconds }).catch(() => undefined);
    await entry.container.remove({ force: true });
    if (entry.emptyDir) await rm(entry.emptyDir, { recursive: true, force: true });
  }

  setPressureConditions(conditions: ReadonlySet<PressureCondition>, at: number): void {
    this.history.push({ conditions: [...conditions].sort(), at });
  }

  has(condition: PressureCondition): boolean {
    return this.history.at(-1)?.conditions.includes(condition) ?? false;
  }
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? await dirBytes(path) : (await stat(path)).size;
  }
  return total;
}


const configWith = (body: object) => parseKubeletConfig({ apiVersion: kubeletApiVersion, kind: 'KubeletConfiguration', ...body }, '(test)').config;

describe.skipIf(env.skip)('eviction under real pressure', () => {
  let docker: Docker;
  let dir = '';
  let nodefs = '';
  let mounted = false;

  beforeAll(async () => {
    docker = await testDocker();
    await ensureLocalImage(docker, busyboxSpec);
    dir = await mkdtemp(join(tmpdir(), 'knode-evpressure-'));
    nodefs = join(dir, 'nodefs');
    await mkdir(nodefs);
    await run(['mount', '-t', 'tmpfs', '-o', 'size=64m', `knode-evtest-${runId}`, nodefs]);
    mounted = true;
  });

  afterAll(async () => {
    if (docker) await removeLabelledContainers(docker, `${labelKey}=${runId}`);
    if (mounted) await run(['umount', nodefs], { allowFailure: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('nodefs.available on a small tmpfs: DiskPressure True, the writer evicted, False after the transition period', async () => {
    const harness = new Harness(docker);
    const volume = (name: string) => join(nodefs, 'pods', name, 'volumes', 'kubernetes.io~empty-dir', 'data');
    for (const name of ['writer', 'idle']) await mkdir(volume(name), { recursive: true });
    const config = configWith({ evictionHard: { 'nodefs.available': '16Mi' }, evictionPressureTransitionPeriod: '2s' });
    const manager = new EvictionManager(evictionConfigFromKubelet(config, 250, 0), {
      observations: new NodeSignals({ rootDir: nodefs, imageFsPath: nodefs }),
      podStats: {
        podUsage: async (pods) => {
          const usage = new Map<string, PodUsage>();
          for (const pod of pods) {
            const name = pod.metadata!.name!;
            usage.set(name, { containers: [{ name: 'app', rootfsUsedBytes: 0, logsUsedBytes: 0 }], localVolumesUsedBytes: await dirBytes(volume(name)) });
          }
          return usage;
        },
      },
      activePods: harness,
      killer: harness,
      conditions: harness,
      logger: silent,
    });
    const guaranteedResources = { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '100m', memory: '64Mi' } };
    await harness.add(makePod({ name: 'idle', containers: [{ name: 'app', ...guaranteedResources }] }), 'dd if=/dev/zero of=/data/small bs=1M count=1; exec sleep 3600', { emptyDir: volume('idle') });
    manager.start();
    try {
      await waitFor('a first sync', () => harness.history.length > 0);
      expect(harness.has('DiskPressure')).toBe(false);
      await harness.add(makePod({ name: 'writer', containers: [{ name: 'app' }] }), 'dd if=/dev/zero of=/data/fill bs=1M count=56; exec sleep 3600', { emptyDir: volume('writer') });
      await waitFor('DiskPressure', () => harness.has('DiskPressure'));
      await waitFor('an eviction', () => harness.evicted.length > 0);
      const eviction = harness.evicted[0]!;
      expect(eviction.name).toBe('writer');
      expect(eviction.gracePeriodSeconds).toBe(1);
      expect(eviction.status.phase).toBe('Failed');
      expect(eviction.status.reason).toBe('Evicted');
      expect(eviction.status.message).toMatch(/^The node was low on resource: ephemeral-storage\. Threshold quantity: 16Mi, available: \d+(Ki|Mi)?\. $/);
      await waitFor('DiskPressure back to False', () => !harness.has('DiskPressure'));
      const cleared = harness.history.find((h, i) => i > 0 && !h.conditions.includes('DiskPressure') && harness.history[i - 1]!.conditions.includes('DiskPressure'))!;
      expect(cleared.at - eviction.at).toBeGreaterThanOrEqual(1500); // held for the 2 s transition period
      expect(harness.evicted.map((e) => e.name)).toEqual(['writer']);
      expect(harness.pods.map((p) => p.pod.metadata!.name)).toEqual(['idle']);
    } finally {
      await manager.stop();
    }
  });

  it('memory.available: the BestEffort pod using up to 3Gi is evicted, the Guaranteed one stays, MemoryPressure True then False', async () => {
    // The threshold is relative to what is free now: no other memory-pressure test may run meanwhile.
    const releaseLock = await acquireMemoryPressureLock();
    try {
      await memoryPressureScenario();
    } finally {
      await releaseLock();
    }
  });

  async function memoryPressureScenario(): Promise<void> {
    const harness = new Harness(docker);
    const signals = new NodeSignals({ rootDir: '/', imageFsPath: '/' });
    const available = (await signals.observeMemory()).available;
    const thresholdMi = Math.floor((available - 1536 * Mi) / Mi);
    const config = configWith({ evictionHard: { 'memory.available': `${thresholdMi}Mi` }, evictionPressureTransitionPeriod: '2s' });
    const layout = await detectCgroupLayout();
    const manager = new EvictionManager(evictionConfigFromKubelet(config, 500, 200), {
      observations: signals,
      podStats: {
        podUsage: async (pods) => {
          const usage = new Map<string, PodUsage>();
          for (const entry of harness.pods.filter((p) => pods.includes(p.pod))) {
            const info = await entry.container.inspect();
            const cgroup = await memoryCgroupOfPid(layout, info.State.Pid);
            usage.set(entry.pod.metadata!.uid!, { containers: [{ name: 'app', memoryWorkingSetBytes: (await readWorkingSet(layout, cgroup)).workingSet }] });
          }
          return usage;
        },
      },
      activePods: harness,
      killer: harness,
      conditions: harness,
      logger: silent,
    });
    const guaranteedResources = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '100m', memory: '128Mi' } };
    await harness.add(makePod({ name: 'guaranteed', containers: [{ name: 'app', ...guaranteedResources }] }), 'dd if=/dev/zero of=/dev/shm/a bs=1M count=32; exec sleep 3600', { memoryLimit: 128 * Mi, shmSize: 64 * Mi });
    manager.start();
    try {
      await waitFor('a first sync', () => harness.history.length > 0);
      expect(harness.has('MemoryPressure')).toBe(false);
      await harness.add(makePod({ name: 'besteffort', containers: [{ name: 'app' }] }), 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=3072; exec sleep 3600', { shmSize: 3100 * Mi });
      await waitFor('MemoryPressure', () => harness.has('MemoryPressure'));
      expect(manager.admit(makePod({ name: 'new-besteffort' }))).toEqual({ admit: false, reason: 'Evicted', message: 'The node had condition: [MemoryPressure]. ' });
      expect(manager.admit(makePod({ name: 'new-guaranteed', containers: [{ name: 'app', ...guaranteedResources }] }))).toEqual({ admit: true });
      await waitFor('an eviction', () => harness.evicted.length > 0);
      const eviction = harness.evicted[0]!;
      expect(eviction.name).toBe('besteffort');
      expect(eviction.status.reason).toBe('Evicted');
      const message = new RegExp(
        `^The node was low on resource: memory\\. Threshold quantity: ${thresholdMi}Mi, available: \\d+(Ki|Mi)?\\. Container app was using (\\d+)(Ki|Mi|Gi)?, request is 0, has larger consumption of memory\\. $`,
      );
      expect(eviction.status.message).toMatch(message);
      await waitFor('MemoryPressure back to False', () => !harness.has('MemoryPressure'));
      expect(harness.evicted.map((e) => e.name)).toEqual(['besteffort']);
      const guaranteed = harness.pods.find((p) => p.pod.metadata!.name === 'guaranteed')!;
      expect((await guaranteed.container.inspect()).State.Running).toBe(true);
    } finally {
      await manager.stop();
    }
  }
});
