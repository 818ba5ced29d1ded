/**
 * Issue 25 item 8: after a container runtime restart, the networks of the sandboxes that died
 * with it are torn down. Before, the agent stopped only ready sandboxes and never ran the
 * network GC, so every pod leaked one IP (host-local store) and its veth.
 *
 * A dockerd of this test's own runs inside a test node netns (own data root, exec root,
 * socket and containerd namespace; never the shared engine), the reference bridge + host-local
 * plugins wire pods in that netns, and a real agent runs a static pod on it. dockerd is
 * restarted (its containers die with it); the agent makes a new sandbox. Afterwards the IPAM
 * store holds exactly the new sandbox's address and the node netns exactly its veth.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { parseKubeletConfig, kubeletApiVersion } from '../../lib/config/kubelet.js';
import { CniNetwork } from '../../cri/cni/network.js';
import { DockerRuntime } from '../../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { Agent } from '../../agent/agent.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';
import { TestDockerd } from '../helpers/test-dockerd.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:dockerd');
const cniBin = '/usr/lib/cni';
const haveCni = await stat(join(cniBin, 'bridge')).then(() => true, () => false);
const runId = randomBytes(4).toString('hex');
const nodeName = `knt-rr-${runId}`;
const subnet = `10.${200 + (parseInt(runId.slice(0, 2), 16) % 50)}.${parseInt(runId.slice(2, 4), 16)}.0/24`;

describe.skipIf(env.skip || !haveCni)('issue 25 item 8: no network leak after a container runtime restart', () => {
  let dir: string;
  let net: TestNetwork;
  let node: Netns;
  let docker: Docker;
  let cp: TestControlPlane;
  let agent: Agent | undefined;

  let dockerd: TestDockerd;
  const startDaemon = (): Promise<void> => dockerd.start();
  const stopDaemon = (): Promise<void> => dockerd.stop();

  const ipamAddresses = async (): Promise<string[]> =>
    (await readdir(join(dir, 'ipam', `knt${runId}`)).catch(() => [] as string[])).filter((name) => /^\d+\.\d+\.\d+\.\d+$/.test(name)).sort();
  const veths = async (): Promise<string[]> =>
    (await node.ip('-o', 'link', 'show', 'type', 'veth')).stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(':')[1]!.trim().split('@')[0]!);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'knrr-'));
    net = new TestNetwork();
    node = await net.node('rr');
    dockerd = new TestDockerd(node, dir, runId);
    docker = dockerd.docker;
    await startDaemon();
    await mkdir(join(dir, 'net.d'), { recursive: true });
    await mkdir(join(dir, 'manifests'), { recursive: true });
    const conflist = {
      cniVersion: '1.0.0',
      name: `knt${runId}`,
      plugins: [{ type: 'bridge', bridge: `kr${runId}`, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet }]] } }],
    };
    await writeFile(join(dir, 'net.d', '10-test.conflist'), JSON.stringify(conflist));
    const image = await ensureLocalImage(docker, busyboxSpec);
    await writeFile(
      join(dir, 'manifests', 'web.yaml'),
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: ${image}\n    imagePullPolicy: Never\n    command: ["sleep", "3600"]\n`,
    );
    cp = await startTestControlPlane({ controllers: false });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    agent = new Agent({
      nodeName,
      config: parseKubeletConfig(
        { apiVersion: kubeletApiVersion, kind: 'KubeletConfiguration', staticPodPath: join(dir, 'manifests'), fileCheckFrequency: '2s', enableServer: false, nodeStatusUpdateFrequency: '2s' },
        'test',
      ).config,
      kubeConfig: kc,
      runtime: new DockerRuntime({
        docker,
        sandboxRoot: join(dir, 'sandboxes'),
        scopeLabels: { 'io.knode.test': `rr-${runId}` },
        sandboxStopTimeoutSeconds: 1,
        logger: createLogger('cri', 'silent'),
        network: new CniNetwork({ confDir: join(dir, 'net.d'), binDirs: [cniBin], cacheDir: join(dir, 'cni-cache'), hostNetns: node.path }),
      }),
      rootDir: join(dir, 'root'),
      podLogsDir: join(dir, 'pod-logs'),
      podNetworkReachable: false,
      housekeepingMs: 1000,
      eviction: false,
      plegPeriodMs: 500,
      log: createLogger('agent', process.env.KNODE_TEST_LOG_LEVEL ?? 'silent', process.stderr),
    });
    await agent.start();
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    if (docker && dockerd?.running) {
      for (const c of await docker.listContainers({ all: true }).catch(() => [])) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    await stopDaemon();
    await cp?.stop();
    await net?.cleanup();
    if (dir) {
      await dockerd?.unmount();
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  const runningSandbox = async (): Promise<string | undefined> => {
    const sandboxes = await docker.listContainers({ filters: { label: [`io.knode.test=rr-${runId}`, 'io.kubernetes.docker.type=podsandbox'] } }).catch(() => []);
    return sandboxes.length === 1 && sandboxes[0]!.State === 'running' ? sandboxes[0]!.Id : undefined;
  };

  it('tears down the dead sandbox network: one IP in the IPAM store, one veth', async () => {
    const first = await waitFor('the static pod sandbox running', runningSandbox, 90_000);
    await waitFor('one address allocated', async () => ((await ipamAddresses()).length === 1 ? true : undefined), 30_000);
    expect(await veths()).toHaveLength(1);
    const before = await ipamAddresses();

    await stopDaemon();
    await startDaemon();
    const second = await waitFor('a new sandbox running after the restart', async () => {
      const id = await runningSandbox();
      return id && id !== first ? id : undefined;
    }, 120_000);
    // The old sandbox's address is released and only the new one's is held.
    const after = await waitFor('exactly one address allocated', async () => {
      const addresses = await ipamAddresses();
      return addresses.length === 1 ? addresses : undefined;
    }, 30_000);
    expect(after).toHaveLength(1);
    expect(await veths()).toHaveLength(1);
    expect(second).not.toBe(first);
    void before;
  }, 300_000);
});
