/**
 * The kubelet's events as a user reads them: a real agent on the real Docker Engine (pods wired
 * by the reference CNI plugins in a test node netns), the in-process control plane, and the real
 * kubectl. `kubectl describe pod` and `kubectl events` show Pulled/Created/Started for a pod that
 * runs, BackOff (aggregated, with a count) for a crash-looping container, Pulling/Failed/BackOff
 * for an image that cannot be pulled, FailedMount for a missing configMap, Killing on delete;
 * `kubectl describe node` shows Starting, NodeHasSufficientMemory and NodeReady.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { CoreV1Api, KubeConfig, type CoreV1Event } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { run } from '../../lib/exec.js';
import { parseKubeletConfig, kubeletApiVersion } from '../../lib/config/kubelet.js';
import { CniNetwork } from '../../cri/cni/network.js';
import { DockerRuntime } from '../../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { Agent } from '../../agent/agent.js';
import { removeAgentPods, testDocker } from '../helpers/docker.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { onPath, prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor as pollUntil } from '../helpers/wait.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:kubectl');
const cniBin = '/usr/lib/cni';
const haveCni = onPath('ip') && (await stat(join(cniBin, 'bridge')).then(() => true, () => false));

const runId = randomBytes(4).toString('hex');
const scope = { 'io.knode.test': `agent-events-${runId}` };
const subnet = `10.${200 + (parseInt(runId.slice(0, 2), 16) % 50)}.${parseInt(runId.slice(2, 4), 16)}.0/24`;
const nodeName = `knt-events-${runId}`;

const waitFor = <T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> => pollUntil(what, probe, timeoutMs, 250);

describe.skipIf(env.skip || !haveCni)('agent: the kubelet events through kubectl', () => {
  let docker: Docker;
  let net: TestNetwork;
  let node: Netns;
  let dir: string;
  let cp: TestControlPlane;
  let core: CoreV1Api;
  let agent: Agent;
  let busybox: string;

  const kubectl = async (...args: string[]) => (await run(['kubectl', '--kubeconfig', cp.kubeconfigPath, ...args], { timeoutMs: 30_000 })).stdout;
  const apply = (yaml: string) => run(['kubectl', '--kubeconfig', cp.kubeconfigPath, 'apply', '-f', '-'], { input: yaml, timeoutMs: 30_000 });
  const podYaml = (name: string, container: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: default\nspec:\n  nodeName: ${nodeName}\n  terminationGracePeriodSeconds: 1\n${container}`;
  /** The events of a pod as the API has them (kubectl reads the same objects). */
  const eventsOf = async (name: string): Promise<CoreV1Event[]> =>
    (await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${name}` })).items;
  /** The "Events:" table of `kubectl describe`, as rows of columns. */
  const describeEvents = async (...target: string[]): Promise<string[][]> => {
    const text = await kubectl('describe', ...target);
    const table = text.slice(text.indexOf('\nEvents:'));
    return table
      .split('\n')
      .map((line) => line.trim().split(/\s{2,}/))
      .filter((row) => row[0] === 'Normal' || row[0] === 'Warning');
  };

  beforeAll(async () => {
    docker = await testDocker();
    busybox = await ensureLocalImage(docker, busyboxSpec);
    net = new TestNetwork();
    node = await net.node('node');
    dir = await mkdtemp(join(tmpdir(), 'knode-agent-events-'));
    await mkdir(join(dir, 'net.d'), { recursive: true });
    const conflist = {
      cniVersion: '1.0.0',
      name: `kne${runId}`,
      plugins: [{ type: 'bridge', bridge: `ke${runId}`, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet }]] } }],
    };
    await writeFile(join(dir, 'net.d', '10-test.conflist'), JSON.stringify(conflist));
    cp = await startTestControlPlane({ controllers: false });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    agent = new Agent({
      nodeName,
      config: parseKubeletConfig(
        {
          apiVersion: kubeletApiVersion,
          kind: 'KubeletConfiguration',
          syncFrequency: '20s',
          address: '127.0.0.1',
          port: 0,
          nodeStatusUpdateFrequency: '1s',
          authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
          authorization: { mode: 'AlwaysAllow' },
        },
        'test',
      ).config,
      kubeConfig: kc,
      runtime: new DockerRuntime({
        docker,
        sandboxRoot: join(dir, 'sandboxes'),
        scopeLabels: scope,
        sandboxStopTimeoutSeconds: 2,
        logger: createLogger('cri', 'silent'),
        network: new CniNetwork({ confDir: join(dir, 'net.d'), binDirs: [cniBin], cacheDir: join(dir, 'cni-cache'), hostNetns: node.path }),
      }),
      rootDir: join(dir, 'root'),
      podLogsDir: join(dir, 'pod-logs'),
      nodeIP: '10.255.0.1',
      podNetworkReachable: false,
      eviction: false,
      log: createLogger('agent', process.env.KNODE_TEST_LOG_LEVEL ?? 'silent', process.stderr),
    });
    await agent.start();
  });

  afterAll(async () => {
    await agent?.stop();
    if (docker) await removeAgentPods(docker, `io.knode.test=${scope['io.knode.test']}`);
    await cp?.stop();
    await net?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('kubectl describe node shows the kubelet starting and the node conditions', async () => {
    const rows = await waitFor('node events', async () => {
      const events = await describeEvents('node', nodeName);
      return events.some((row) => row[1] === 'NodeReady') ? events : undefined;
    });
    const reasons = rows.map((row) => row[1]);
    expect(reasons).toEqual(expect.arrayContaining(['Starting', 'NodeHasSufficientMemory', 'NodeHasNoDiskPressure', 'NodeHasSufficientPID', 'NodeReady']));
    expect(rows.find((row) => row[1] === 'NodeReady')).toEqual(['Normal', 'NodeReady', expect.any(String), 'kubelet', `Node ${nodeName} status is now: NodeReady`]);
    expect(rows.find((row) => row[1] === 'Starting')!.at(-1)).toBe('Starting kubelet.');
  });

  it('a pod that runs: Pulled, Created, Started in kubectl describe and kubectl events; Killing on delete', async () => {
    await apply(podYaml('web', `  containers:\n  - name: main\n    image: ${busybox}\n    imagePullPolicy: IfNotPresent\n    command: ["/bin/sh", "-c", "exec sleep 3600"]\n`));
    const rows = await waitFor('Started in kubectl describe', async () => {
      const events = await describeEvents('pod', 'web');
      return events.some((row) => row[1] === 'Started') ? events : undefined;
    });
    expect(rows.map((row) => [row[0], row[1], row[3], row[4]])).toEqual([
      ['Normal', 'Pulled', 'kubelet', `Container image "${busybox}" already present on machine`],
      ['Normal', 'Created', 'kubelet', 'Created container: main'],
      ['Normal', 'Started', 'kubelet', 'Started container main'],
    ]);
    const listed = await kubectl('events', '--for', 'pod/web');
    for (const message of ['Created container: main', 'Started container main']) expect(listed).toContain(message);
    const stored = await eventsOf('web');
    expect(stored.find((e) => e.reason === 'Started')).toMatchObject({ involvedObject: { fieldPath: 'spec.containers{main}' }, source: { component: 'kubelet', host: nodeName }, count: 1 });
    await kubectl('delete', 'pod', 'web', '--wait=true');
    const killing = await waitFor('Killing', async () => (await eventsOf('web')).find((e) => e.reason === 'Killing'));
    expect(killing).toMatchObject({ type: 'Normal', message: 'Stopping container main', involvedObject: { fieldPath: 'spec.containers{main}' } });
    expect(await kubectl('events', '--for', 'pod/web', '--types', 'Normal')).toContain('Stopping container main');
  });

  it('a crash-looping container: Started counted (xN), then BackOff "Back-off restarting failed container"', async () => {
    await apply(podYaml('crash', `  containers:\n  - name: main\n    image: ${busybox}\n    imagePullPolicy: IfNotPresent\n    command: ["/bin/sh", "-c", "exit 3"]\n`));
    const uid = (await core.readNamespacedPod({ name: 'crash', namespace: 'default' })).metadata!.uid!;
    const backOff = await waitFor('BackOff', async () => (await eventsOf('crash')).find((e) => e.reason === 'BackOff'));
    expect(backOff).toMatchObject({ type: 'Warning', message: `Back-off restarting failed container main in pod crash_default(${uid})` });
    // Repeats are one Event object with a count, shown by kubectl as "(xN over …)".
    const started = (await eventsOf('crash')).filter((e) => e.reason === 'Started');
    expect(started).toHaveLength(1);
    expect(started[0]!.count).toBeGreaterThanOrEqual(2);
    const rows = await describeEvents('pod', 'crash');
    const startedRow = rows.find((row) => row[1] === 'Started')!;
    expect(startedRow[2]).toMatch(/\(x\d+ over /);
    expect(rows.find((row) => row[1] === 'BackOff')).toEqual(['Warning', 'BackOff', expect.any(String), 'kubelet', `Back-off restarting failed container main in pod crash_default(${uid})`]);
    expect(await kubectl('events', '--for', 'pod/crash', '--types', 'Warning')).toContain('Back-off restarting failed container main');
    await kubectl('delete', 'pod', 'crash', '--wait=true');
  });

  it('an image that cannot be pulled: Pulling, Failed, Error: ErrImagePull, then the pull back-off', async () => {
    // A registry on a closed loopback port: the pull fails at once and nothing leaves the machine.
    const image = '127.0.0.1:1/knode-missing/app:1';
    await apply(podYaml('nopull', `  containers:\n  - name: main\n    image: ${image}\n    command: ["sleep", "3600"]\n`));
    const events = await waitFor('image pull back-off', async () => {
      const list = await eventsOf('nopull');
      return list.some((e) => e.reason === 'BackOff') ? list : undefined;
    });
    const by = (reason: string) => events.filter((e) => e.reason === reason).map((e) => `${e.type}: ${e.message}`);
    expect(by('Pulling')).toEqual([`Normal: Pulling image "${image}"`]);
    expect(by('Failed')).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^Warning: Failed to pull image "${image.replace(/[.]/g, '\\.')}": .+`)), 'Warning: Error: ErrImagePull']));
    expect(by('BackOff')).toEqual([`Normal: Back-off pulling image "${image}"`]);
    const pod = await core.readNamespacedPod({ name: 'nopull', namespace: 'default' });
    expect(['ErrImagePull', 'ImagePullBackOff']).toContain(pod.status!.containerStatuses![0]!.state!.waiting!.reason);
    await kubectl('delete', 'pod', 'nopull', '--wait=true');
  });

  it('a missing configMap volume: FailedMount as the volume manager words it', async () => {
    await apply(
      podYaml('nomount', `  volumes:\n  - name: cfg\n    configMap: {name: absent}\n  containers:\n  - name: main\n    image: ${busybox}\n    imagePullPolicy: IfNotPresent\n    command: ["sleep", "3600"]\n    volumeMounts: [{name: cfg, mountPath: /cfg}]\n`),
    );
    const rows = await waitFor('FailedMount', async () => {
      const events = await describeEvents('pod', 'nomount');
      return events.some((row) => row[1] === 'FailedMount') ? events : undefined;
    });
    expect(rows.find((row) => row[1] === 'FailedMount')).toEqual(['Warning', 'FailedMount', expect.any(String), 'kubelet', 'MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found']);
    await kubectl('delete', 'pod', 'nomount', '--wait=true');
  });
});
