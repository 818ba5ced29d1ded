/**
 * The agent end to end against the real Docker Engine, the in-process control plane and a test
 * "node" netns where the reference CNI plugins (bridge + host-local) run: node registration and
 * lease, static pods and their mirror pods, an API pod with an init container, configMap volume
 * and env from a secret, logs and /run through the kubelet API, deletion with preStop and the
 * grace period, and adoption by a restarted agent without restarts.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { CoordinationV1Api, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { run } from '../../lib/exec.js';
import { parseKubeletConfig, kubeletApiVersion } from '../../lib/config/kubelet.js';
import { CniNetwork } from '../../cri/cni/network.js';
import { DockerRuntime } from '../../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { Agent } from '../../agent/agent.js';
import { configMirrorAnnotation } from '../../lib/k8s/pod-source.js';
import { removeAgentPods, testDocker } from '../helpers/docker.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { onPath, prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor as pollUntil } from '../helpers/wait.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:kubectl');
const cniBin = '/usr/lib/cni';
const haveCni = onPath('ip') && (await stat(join(cniBin, 'bridge')).then(() => true, () => false));

const runId = randomBytes(4).toString('hex');
const scope = { 'io.knode.test': `agent-node-${runId}` };
const subnet = `10.${200 + (parseInt(runId.slice(0, 2), 16) % 50)}.${parseInt(runId.slice(2, 4), 16)}.0/24`;
const nodeName = `knt-agent-${runId}`;

/** Polls with this file's default deadline (test/helpers/wait.ts). */
const waitFor = <T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 45_000): Promise<T> =>
  pollUntil(what, probe, timeoutMs, 200);

describe.skipIf(env.skip || !haveCni)('agent: a node with static and API pods on real Docker', () => {
  let docker: Docker;
  let net: TestNetwork;
  let node: Netns;
  let dir: string;
  let cp: TestControlPlane;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let agent: Agent;
  let busybox: string;
  const manifests = () => join(dir, 'manifests');

  const runtime = () =>
    new DockerRuntime({
      docker,
      sandboxRoot: join(dir, 'sandboxes'),
      scopeLabels: scope,
      sandboxStopTimeoutSeconds: 2,
      logger: createLogger('cri', 'silent'),
      network: new CniNetwork({ confDir: join(dir, 'net.d'), binDirs: [cniBin], cacheDir: join(dir, 'cni-cache'), hostNetns: node.path }),
    });

  const newAgent = () =>
    new Agent({
      nodeName,
      config: parseKubeletConfig(
        {
          apiVersion: kubeletApiVersion,
          kind: 'KubeletConfiguration',
          staticPodPath: manifests(),
          fileCheckFrequency: '2s',
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
      runtime: runtime(),
      rootDir: join(dir, 'root'),
      podLogsDir: join(dir, 'pod-logs'),
      nodeIP: '10.255.0.1',
      // Pods live in the test node netns: no network probes or hooks from the root netns.
      podNetworkReachable: false,
      housekeepingMs: 1000,
      log: createLogger('agent', process.env.KNODE_TEST_LOG_LEVEL ?? 'silent', process.stderr),
    });

  const base = () => `http://127.0.0.1:${agent.server!.port}`;
  const kubectl = (...args: string[]) => run(['kubectl', '--kubeconfig', cp.kubeconfigPath, ...args], { timeoutMs: 30_000 });
  const manifest = (name: string, command: string, extra = '') =>
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  labels: {app: ${name}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: ${busybox}\n    command: ["/bin/sh", "-c", "${command}"]\n${extra}`;
  const podRunning = (name: string, namespace = 'default') => async () => {
    const pod = await core.readNamespacedPod({ name, namespace });
    return pod.status?.phase === 'Running' && pod.status.containerStatuses?.every((c) => c.ready) ? pod : undefined;
  };
  const runningContainers = async (podName: string) =>
    (await docker.listContainers({ filters: { label: [`io.knode.test=${scope['io.knode.test']}`, `io.kubernetes.pod.name=${podName}`] } })).filter((c) => c.Labels['io.kubernetes.container.name'] !== 'POD');

  beforeAll(async () => {
    docker = await testDocker();
    busybox = await ensureLocalImage(docker, busyboxSpec);
    net = new TestNetwork();
    node = await net.node('node');
    dir = await mkdtemp(join(tmpdir(), 'knode-agent-node-'));
    await mkdir(join(dir, 'net.d'), { recursive: true });
    await mkdir(manifests(), { recursive: true });
    const conflist = {
      cniVersion: '1.0.0',
      name: `knt${runId}`,
      plugins: [{ type: 'bridge', bridge: `ka${runId}`, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet }]] } }],
    };
    await writeFile(join(dir, 'net.d', '10-test.conflist'), JSON.stringify(conflist));
    cp = await startTestControlPlane({ controllers: false });
    kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    agent = newAgent();
    await agent.start();
  });

  let cpStopped = false;
  afterAll(async () => {
    await agent?.stop();
    if (docker) {
      await removeAgentPods(docker, `io.knode.test=${scope['io.knode.test']}`);
    }
    if (!cpStopped) await cp?.stop();
    await net?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('registers the node Ready with labels, addresses, capacity and a lease', async () => {
    const registered = await waitFor('node Ready', async () => {
      const n = await core.readNode({ name: nodeName });
      return n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? n : undefined;
    });
    expect(registered.metadata!.labels).toMatchObject({ 'kubernetes.io/hostname': nodeName, 'kubernetes.io/os': 'linux' });
    expect(registered.status!.addresses).toContainEqual({ type: 'InternalIP', address: '10.255.0.1' });
    expect(Number(registered.status!.capacity!.pods)).toBe(110);
    expect(registered.status!.daemonEndpoints!.kubeletEndpoint!.Port).toBe(agent.server!.port);
    expect(registered.status!.nodeInfo!.kubeletVersion).toMatch(/^v1\./);
    expect(registered.status!.nodeInfo!.containerRuntimeVersion).toMatch(/^docker:\/\//);
    const lease = await waitFor('lease', () => kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: nodeName, namespace: 'kube-node-lease' }));
    expect(lease.spec!.holderIdentity).toBe(nodeName);
    // On the wire renewTime is a MicroTime (six fractional digits), which kubectl and kube-apiserver parse.
    const raw = (await (await fetch(`${cp.url}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${nodeName}`)).json()) as { spec: { renewTime: string } };
    expect(raw.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('runs a static pod with a mirror pod; edits restart it; a deleted mirror comes back; removal stops it', async () => {
    const file = join(manifests(), 'web.yaml');
    const started = Date.now();
    await writeFile(file, manifest('web', 'echo hello-static; exec sleep 3600'));
    const mirrorName = `web-${nodeName}`;
    const mirror = await waitFor('mirror Running', podRunning(mirrorName));
    const runningAfterMs = Date.now() - started;
    expect(runningAfterMs).toBeLessThan(45_000);
    expect(mirror.metadata!.annotations![configMirrorAnnotation]).toBe(mirror.metadata!.annotations!['kubernetes.io/config.hash']);
    expect(mirror.metadata!.ownerReferences![0]).toMatchObject({ kind: 'Node', name: nodeName });
    expect(mirror.status!.podIP!.startsWith(subnet.split('.').slice(0, 3).join('.'))).toBe(true);
    const wide = await kubectl('get', 'pods', '-o', 'wide', '--no-headers');
    expect(wide.stdout).toMatch(new RegExp(`${mirrorName}\\s+1/1\\s+Running`));
    // logs through the kubelet API
    const logs = await waitFor('logs', async () => {
      const text = await (await fetch(`${base()}/containerLogs/default/${mirrorName}/main`)).text();
      return text.includes('hello-static') ? text : undefined;
    });
    expect(logs).toBe('hello-static\n');
    const [first] = await runningContainers(mirrorName);
    // deleting the mirror pod recreates it and does not touch the static pod
    await core.deleteNamespacedPod({ name: mirrorName, namespace: 'default' });
    await waitFor('mirror recreated', async () => {
      const pod = await core.readNamespacedPod({ name: mirrorName, namespace: 'default' });
      return pod.metadata!.uid !== mirror.metadata!.uid && !pod.metadata!.deletionTimestamp ? pod : undefined;
    });
    expect((await runningContainers(mirrorName)).map((c) => c.Id)).toEqual([first!.Id]);
    // editing the manifest replaces the pod
    await writeFile(file, manifest('web', 'echo edited; exec sleep 3600'));
    const edited = await waitFor('edited pod running', async () => {
      const containers = await runningContainers(mirrorName);
      return containers.length === 1 && containers[0]!.Id !== first!.Id ? containers[0] : undefined;
    });
    expect(edited.Command).toContain('edited');
    await waitFor('edited mirror', async () => {
      const pod = await podRunning(mirrorName)();
      return pod && pod.metadata!.annotations![configMirrorAnnotation] !== mirror.metadata!.annotations![configMirrorAnnotation] ? pod : undefined;
    });
    // the pod runs in its QoS cgroup (BestEffort here)
    const editedUid = (await core.readNamespacedPod({ name: mirrorName, namespace: 'default' })).metadata!.annotations!['kubernetes.io/config.hash']!;
    const inspect = await docker.getContainer(edited.Id).inspect();
    expect(inspect.HostConfig.CgroupParent).toBe(`/kubepods/besteffort/pod${editedUid}`);
    // removing the file stops the pod and deletes the mirror
    await unlink(file);
    await waitFor('pod gone', async () => ((await runningContainers(mirrorName)).length === 0 ? true : undefined));
    await waitFor('pod cgroups removed', async () => ((await run(['find', '/sys/fs/cgroup', '-maxdepth', '5', '-name', `pod${editedUid}`], { allowFailure: true })).stdout.trim() === '' ? true : undefined), 15_000);

    await waitFor('mirror gone', async () => {
      const pods = await core.listNamespacedPod({ namespace: 'default' });
      return pods.items.some((p) => p.metadata!.name === mirrorName) ? undefined : true;
    });
  });

  it('runs an API pod with init container, configMap volume and env from a secret; logs, /run, delete with preStop and grace', async () => {
    const ns = 'default';
    const shared = join(dir, 'shared');
    await mkdir(shared, { recursive: true });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'app-config' }, data: { 'greeting.txt': 'hello from configmap\n' } } });
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'app-secret' }, data: { PASSWORD: Buffer.from('s3cret').toString('base64') } } });
    const pod: V1Pod = {
      metadata: { name: 'api-pod', namespace: ns },
      spec: {
        nodeName,
        terminationGracePeriodSeconds: 3,
        volumes: [{ name: 'config', configMap: { name: 'app-config' } }, { name: 'shared', hostPath: { path: shared, type: 'Directory' } }],
        initContainers: [{ name: 'init', image: busybox, command: ['/bin/sh', '-c', 'echo init-ran > /shared/init'], volumeMounts: [{ name: 'shared', mountPath: '/shared' }] }],
        containers: [
          {
            name: 'app',
            image: busybox,
            command: ['/bin/sh', '-c', 'cat /config/greeting.txt; echo "pw=$PASSWORD"; trap "" TERM; while :; do sleep 1; done'],
            envFrom: [{ secretRef: { name: 'app-secret' } }],
            volumeMounts: [{ name: 'config', mountPath: '/config' }, { name: 'shared', mountPath: '/shared' }],
            lifecycle: { preStop: { exec: { command: ['/bin/sh', '-c', 'echo prestop-ran > /shared/prestop'] } } },
          },
          { name: 'sidecar', image: busybox, command: ['/bin/sh', '-c', 'exec sleep 3600'] },
        ],
      },
    };
    await core.createNamespacedPod({ namespace: ns, body: pod });
    const runningPod = await waitFor('API pod Running', podRunning('api-pod'));
    expect(runningPod.status!.initContainerStatuses![0]!.state!.terminated!.reason).toBe('Completed');
    expect(runningPod.status!.conditions!.find((c) => c.type === 'Initialized')!.status).toBe('True');
    expect(await readFile(join(shared, 'init'), 'utf8')).toBe('init-ran\n');
    const logs = await waitFor('app logs', async () => {
      const text = await (await fetch(`${base()}/containerLogs/${ns}/api-pod/app?timestamps=true`)).text();
      return text.includes('pw=') ? text : undefined;
    });
    expect(logs).toMatch(/^\S+Z hello from configmap\n\S+Z pw=s3cret\n$/);
    const ran = await fetch(`${base()}/run/${ns}/api-pod/app?cmd=cat%20/config/greeting.txt`, { method: 'POST' });
    expect(await ran.text()).toBe('hello from configmap\n');
    // the pod list of the kubelet API
    const list = (await (await fetch(`${base()}/pods`)).json()) as { items: V1Pod[] };
    expect(list.items.map((p) => p.metadata!.name)).toContain('api-pod');
    // delete: preStop runs, the TERM-ignoring container is killed after the 3 s grace period
    const deleteAt = Date.now();
    await core.deleteNamespacedPod({ name: 'api-pod', namespace: ns });
    await waitFor('pod deleted from the API', async () => {
      const pods = await core.listNamespacedPod({ namespace: ns });
      return pods.items.some((p) => p.metadata!.name === 'api-pod') ? undefined : true;
    });
    const tookMs = Date.now() - deleteAt;
    expect(await readFile(join(shared, 'prestop'), 'utf8')).toBe('prestop-ran\n');
    expect(tookMs).toBeGreaterThanOrEqual(2500);
    expect(await runningContainers('api-pod')).toEqual([]);
    console.log(`[agent-node] API pod delete with grace 3 s took ${tookMs} ms`);
  });

  it('removes orphaned pod directories', async () => {
    const orphan = join(dir, 'root', 'pods', `orphan${runId}`, 'volumes', 'kubernetes.io~empty-dir', 'x');
    await mkdir(orphan, { recursive: true });
    await waitFor('orphan dir removed', async () => (await stat(join(dir, 'root', 'pods', `orphan${runId}`)).then(() => undefined, () => true)), 20_000);
  });

  it('serves /healthz, /stats/summary and /metrics', async () => {
    await writeFile(join(manifests(), 'stats.yaml'), manifest('stats', 'exec sleep 3600'));
    await waitFor('stats pod', podRunning(`stats-${nodeName}`));
    expect(await (await fetch(`${base()}/healthz`)).text()).toBe('ok');
    const summary = (await (await fetch(`${base()}/stats/summary`)).json()) as { node: { nodeName: string; memory: { workingSetBytes: number } }; pods: { podRef: { name: string }; containers: { name: string; memory: { workingSetBytes: number } }[] }[] };
    expect(summary.node.nodeName).toBe(nodeName);
    expect(summary.node.memory.workingSetBytes).toBeGreaterThan(0);
    const podStats = await waitFor('pod stats', async () => {
      const s = (await (await fetch(`${base()}/stats/summary`)).json()) as typeof summary;
      return s.pods.find((p) => p.podRef.name === `stats-${nodeName}` && p.containers.length === 1);
    });
    expect(podStats.containers[0]!.name).toBe('main');
    const metrics = await (await fetch(`${base()}/metrics`)).text();
    expect(metrics).toContain('kubelet_pod_start_duration_seconds_count');
    expect(metrics).toMatch(/kubelet_pleg_relist_duration_seconds_count \d+/);
    expect(metrics).toMatch(/kubelet_runtime_operations_duration_seconds_count\{operation_type="createContainer"\} \d+/);
  });

  it('20 malformed manifests: 20 errors, the good pods keep running', async () => {
    const [before] = await runningContainers(`stats-${nodeName}`);
    const bodies = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? `kind: [${i}` : `apiVersion: v1\nkind: Pod\nmetadata: {name: bad${i}}\nspec: {containers: [{name: c${i}}]}\n`));
    await Promise.all(bodies.map((body, i) => writeFile(join(manifests(), `bad-${i}.yaml`), body)));
    await waitFor('20 manifest errors', async () => {
      const metrics = await (await fetch(`${base()}/metrics`)).text();
      return /knode_static_pod_manifest_errors_total 20\b/.test(metrics) ? true : undefined;
    });
    expect((await runningContainers(`stats-${nodeName}`)).map((c) => c.Id)).toEqual([before!.Id]);
    for (let i = 0; i < 20; i++) await unlink(join(manifests(), `bad-${i}.yaml`));
  });

  it('exec readiness and liveness probes: Ready follows readiness, a failing liveness restarts the container', async () => {
    const ns = 'default';
    const probe = { periodSeconds: 1, failureThreshold: 1 };
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'probed', namespace: ns },
        spec: {
          nodeName,
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'app',
              image: busybox,
              command: ['/bin/sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'],
              readinessProbe: { exec: { command: ['test', '-f', '/tmp/ready'] }, ...probe },
              livenessProbe: { exec: { command: ['test', '!', '-f', '/tmp/die'] }, ...probe },
            },
          ],
        },
      },
    });
    const notReady = await waitFor('running but not ready', async () => {
      const pod = await core.readNamespacedPod({ name: 'probed', namespace: ns });
      return pod.status?.phase === 'Running' && pod.status.containerStatuses?.[0]?.state?.running ? pod : undefined;
    });
    expect(notReady.status!.containerStatuses![0]!.ready).toBe(false);
    expect(notReady.status!.conditions!.find((c) => c.type === 'Ready')!.status).toBe('False');
    await fetch(`${base()}/run/${ns}/probed/app?cmd=touch%20/tmp/ready`, { method: 'POST' });
    await waitFor('ready', podRunning('probed'));
    await fetch(`${base()}/run/${ns}/probed/app?cmd=touch%20/tmp/die`, { method: 'POST' });
    const restarted = await waitFor('restarted by liveness', async () => {
      const pod = await core.readNamespacedPod({ name: 'probed', namespace: ns });
      const c = pod.status?.containerStatuses?.[0];
      return c && c.restartCount >= 1 && c.state?.running ? c : undefined;
    });
    expect(restarted.lastState!.terminated).toBeDefined();
    expect(restarted.ready).toBe(false); // a new container starts not ready: /tmp/ready is gone
    await core.deleteNamespacedPod({ name: 'probed', namespace: ns });
    await waitFor('probed deleted', async () => ((await core.listNamespacedPod({ namespace: ns })).items.some((p) => p.metadata!.name === 'probed') ? undefined : true));
    await waitFor('probed containers removed', async () => {
      const left = await docker.listContainers({ all: true, filters: { label: [`io.knode.test=${scope['io.knode.test']}`, 'io.kubernetes.pod.name=probed'] } });
      return left.length === 0 ? true : undefined;
    });
  });

  it('a restarted agent adopts running pods: no restarts, no duplicates', async () => {
    const statsPod = `stats-${nodeName}`;
    const before = (await docker.listContainers({ all: true, filters: { label: [`io.knode.test=${scope['io.knode.test']}`] } })).map((c) => c.Id).sort();
    await agent.stop();
    agent = newAgent();
    await agent.start();
    await waitFor('status reported again', async () => {
      const pod = await podRunning(statsPod)();
      return pod && agent.workers.get(pod.metadata!.annotations!['kubernetes.io/config.hash']!)?.status?.phase === 'Running' ? pod : undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const after = (await docker.listContainers({ all: true, filters: { label: [`io.knode.test=${scope['io.knode.test']}`] } })).map((c) => c.Id).sort();
    expect(after).toEqual(before);
    const pod = await core.readNamespacedPod({ name: statsPod, namespace: 'default' });
    expect(pod.status!.containerStatuses![0]!.restartCount).toBe(0);
  });

  it('an API server outage does not affect static pods', async () => {
    const statsPod = `stats-${nodeName}`;
    const before = (await runningContainers(statsPod)).map((c) => c.Id);
    expect(before).toHaveLength(1);
    cpStopped = true;
    await cp.stop();
    await writeFile(join(manifests(), 'offline.yaml'), manifest('offline', 'exec sleep 3600'));
    await waitFor('static pod started with the API down', async () => ((await runningContainers(`offline-${nodeName}`)).length === 1 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await runningContainers(statsPod)).map((c) => c.Id)).toEqual(before);
    const pods = (await (await fetch(`${base()}/pods`)).json()) as { items: V1Pod[] };
    expect(pods.items.find((p) => p.metadata!.name === `offline-${nodeName}`)!.status!.phase).toBe('Running');
  });
});
