/**
 * Node-pressure eviction through the real agent: the in-process Agent on real Docker with the
 * control-plane stub, hostNetwork pods (no CNI). evictionHard memory.available is set 1536Mi
 * under what is available now; a Guaranteed pod runs, then a BestEffort pod pins ~3000Mi of
 * anonymous memory (two busybox dd buffers held while their writes block on a pipe nobody
 * reads). Expected, as the kubelet: MemoryPressure True on the Node with the memory-pressure
 * NoSchedule taint; a new BestEffort pod is rejected (Failed/Evicted, "Pod was rejected: The
 * node had condition: [MemoryPressure]. "); the hog ends Failed/Evicted with the kubelet's
 * message and a DisruptionTarget condition, stays in the API (not deleted), a Warning event
 * "Evicted" is recorded; the Guaranteed pod keeps running; MemoryPressure goes back to False
 * and the taint goes after the (shortened) transition period.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { DockerRuntime } from '../../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { NodeSignals } from '../../eviction/signals.js';
import { kubeletApiVersion, parseKubeletConfig } from '../../lib/config/kubelet.js';
import { createLogger } from '../../lib/log.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { removeAgentPods, testDocker } from '../helpers/docker.js';
import { acquireMemoryPressureLock } from '../helpers/memory-pressure-lock.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites('root', 'docker');
const runId = randomBytes(4).toString('hex');
const scopeKey = 'io.knode.test';
const scope = { [scopeKey]: `agent-eviction-${runId}` };
const nodeName = `knt-evict-${runId}`;
const Mi = 1024 * 1024;
const hogMi = 3000;

describe.skipIf(env.skip)('agent: node-pressure eviction on real Docker', () => {
  let docker: Docker;
  let dir: string;
  let cp: TestControlPlane;
  let core: CoreV1Api;
  let agent: Agent | undefined;
  let busybox: string;
  let thresholdMi = 0;
  let newAgent: () => Agent;
  let releaseLock: (() => Promise<void>) | undefined;

  const pod = (name: string, command: string, resources?: Record<string, string>): V1Pod => ({
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName,
      hostNetwork: true,
      terminationGracePeriodSeconds: 5,
      containers: [{ name: 'app', image: busybox, command: ['/bin/sh', '-c', command], ...(resources ? { resources: { requests: resources, limits: resources } } : {}) }],
    },
  });
  const read = (name: string) => core.readNamespacedPod({ name, namespace: 'default' });
  const nodeCondition = async (type: string) => (await core.readNode({ name: nodeName })).status?.conditions?.find((c) => c.type === type);
  const nodeTaints = async () => ((await core.readNode({ name: nodeName })).spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`);

  beforeAll(async () => {
    docker = await testDocker();
    busybox = await ensureLocalImage(docker, busyboxSpec);
    dir = await mkdtemp(join(tmpdir(), 'knode-agent-eviction-'));
    cp = await startTestControlPlane({ controllers: false });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    // No other memory-pressure test may run meanwhile: thresholds are relative to "now".
    releaseLock = await acquireMemoryPressureLock(100_000);
    // The same reading the eviction manager makes (capacity − root cgroup working set).
    const available = (await new NodeSignals({ rootDir: '/', imageFsPath: '/' }).observeMemory()).available;
    expect(available, 'needs ~4.5 GiB of available memory').toBeGreaterThan((hogMi + 1536) * Mi);
    thresholdMi = Math.floor((available - 1536 * Mi) / Mi);
    const config = parseKubeletConfig(
      {
        apiVersion: kubeletApiVersion,
        kind: 'KubeletConfiguration',
        enableServer: false,
        syncFrequency: '20s',
        nodeStatusUpdateFrequency: '1s',
        evictionHard: { 'memory.available': `${thresholdMi}Mi` },
        evictionPressureTransitionPeriod: '6s',
        // Image GC stays off here: the Docker engine is shared with other tests.
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
      },
      'test',
    ).config;
    newAgent = () => new Agent({
      nodeName,
      config,
      kubeConfig: kc,
      runtime: new DockerRuntime({ docker, sandboxRoot: join(dir, 'sandboxes'), scopeLabels: scope, sandboxStopTimeoutSeconds: 2, logger: createLogger('cri', 'silent') }),
      rootDir: join(dir, 'root'),
      podLogsDir: join(dir, 'pod-logs'),
      nodeIP: '10.255.0.1',
      eviction: { housekeepingMs: 1000, memoryPollMs: 250 },
      log: createLogger('agent', process.env.KNODE_TEST_LOG_LEVEL ?? 'silent', process.stderr),
    });
    agent = newAgent();
    await agent.start();
  }, 150_000);

  afterAll(async () => {
    await agent?.stop();
    if (docker) {
      await removeAgentPods(docker, `${scopeKey}=${scope[scopeKey]}`);
    }
    await releaseLock?.();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('evicts the BestEffort memory hog, keeps the Guaranteed pod, rejects new BestEffort pods, MemoryPressure True then False', async () => {
    // No CNI here, so the Node stays NotReady (NetworkReady=false): hostNetwork pods run anyway.
    await waitFor('node registered without MemoryPressure', async () => (await nodeCondition('MemoryPressure'))?.status === 'False', 45_000, 250);
    await waitFor('eviction manager started', () => agent!.eviction?.manager, 30_000, 100);
    await core.createNamespacedPod({ namespace: 'default', body: pod('guaranteed', 'exec sleep 3600', { cpu: '100m', memory: '64Mi' }) });
    await waitFor('guaranteed Running', async () => (await read('guaranteed')).status?.phase === 'Running', 45_000, 250);

    const half = hogMi / 2;
    const hold = `dd if=/dev/zero bs=${half}M count=1 2>/dev/null | sleep 3600`;
    await core.createNamespacedPod({ namespace: 'default', body: pod('hog', `${hold} & ${hold} & wait`) });
    await waitFor('MemoryPressure True on the Node', async () => (await nodeCondition('MemoryPressure'))?.status === 'True', 60_000, 200);
    // The pressure condition is held for the transition period (6 s) after the last observation.
    await core.createNamespacedPod({ namespace: 'default', body: pod('late', 'exec sleep 3600') });
    const rejected = await waitFor('late pod rejected', async () => {
      const status = (await read('late')).status;
      return status?.phase === 'Failed' ? status : undefined;
    }, 30_000, 200);
    expect(rejected.reason).toBe('Evicted');
    expect(rejected.message).toBe('Pod was rejected: The node had condition: [MemoryPressure]. ');
    expect(await nodeTaints()).toContain('node.kubernetes.io/memory-pressure:NoSchedule');

    const evicted = await waitFor('hog Failed/Evicted', async () => {
      const p = await read('hog');
      return p.status?.phase === 'Failed' && p.status.reason === 'Evicted' ? p : undefined;
    }, 60_000, 200);
    const message = new RegExp(
      `^The node was low on resource: memory\\. Threshold quantity: ${thresholdMi}Mi, available: \\d+(Ki|Mi)?\\. Container app was using \\d+(Ki|Mi|Gi)?, request is 0, has larger consumption of memory\\. $`,
    );
    expect(evicted.status!.message).toMatch(message);
    expect(evicted.status!.conditions).toContainEqual(expect.objectContaining({ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet' }));
    // The kubelet does not delete an evicted pod: it stays in the API, Failed.
    expect(evicted.metadata!.deletionTimestamp).toBeUndefined();
    const events = await waitFor('Evicted event', async () => {
      const list = await core.listNamespacedEvent({ namespace: 'default' });
      return list.items.find((e) => e.involvedObject.uid === evicted.metadata!.uid && e.reason === 'Evicted');
    }, 15_000, 250);
    expect(events.type).toBe('Warning');
    expect(events.message).toBe(evicted.status!.message);
    expect(events.metadata.annotations).toMatchObject({ offending_containers: 'app', starved_resource: 'memory' });
    const hogContainers = await docker.listContainers({ all: true, filters: { label: [`${scopeKey}=${scope[scopeKey]}`, 'io.kubernetes.pod.name=hog'] } });
    expect(hogContainers.length).toBeGreaterThan(0);
    await waitFor('hog containers stopped', async () =>
      (await docker.listContainers({ filters: { label: [`${scopeKey}=${scope[scopeKey]}`, 'io.kubernetes.pod.name=hog'] } })).length === 0, 30_000, 250);

    await waitFor('MemoryPressure back to False', async () => (await nodeCondition('MemoryPressure'))?.status === 'False', 45_000, 250);
    await waitFor('memory-pressure taint removed', async () => !(await nodeTaints()).includes('node.kubernetes.io/memory-pressure:NoSchedule'), 15_000, 250);
    const guaranteed = await read('guaranteed');
    expect(guaranteed.status?.phase).toBe('Running');
    expect(guaranteed.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    expect(guaranteed.status?.containerStatuses?.[0]?.state?.running).toBeDefined();
    // Still Failed after the pressure went away: an evicted pod is not restarted, nor the rejected one started.
    expect((await read('hog')).status?.phase).toBe('Failed');
    expect((await read('late')).status?.phase).toBe('Failed');
    expect(await docker.listContainers({ all: true, filters: { label: [`${scopeKey}=${scope[scopeKey]}`, 'io.kubernetes.pod.name=late'] } })).toEqual([]);

    // A restarted agent adopts the Guaranteed pod and starts neither the evicted nor the rejected pod.
    await agent!.stop();
    agent = newAgent();
    await agent.start();
    await waitFor('the new agent synced the API pods', () => agent!.workers.get(guaranteed.metadata!.uid!) !== undefined, 30_000, 100);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const running = await docker.listContainers({ filters: { label: [`${scopeKey}=${scope[scopeKey]}`] } });
    expect(running.map((c) => c.Labels['io.kubernetes.pod.name']).filter((name) => name !== 'guaranteed')).toEqual([]);
    expect((await read('hog')).status?.phase).toBe('Failed');
    expect((await read('late')).status?.phase).toBe('Failed');
    expect((await read('guaranteed')).status?.containerStatuses?.[0]?.restartCount).toBe(0);
  }, 150_000);
});
