/**
 * `knode agent` as a real process (the built CLI) against the control plane, real Docker and a
 * test node netns for CNI: 10 pods (5 static, 5 from the API) run; the agent is killed with
 * SIGKILL and started again; every pod is adopted: no container restarted, none duplicated, and
 * the status is reported again. Also `kubectl get pods -o wide` shows them Running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { removeAgentPods, testDocker } from '../helpers/docker.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { onPath, prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor as pollUntil } from '../helpers/wait.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:kubectl');
const cniBin = '/usr/lib/cni';
const haveCni = onPath('ip') && (await stat(join(cniBin, 'bridge')).then(() => true, () => false));
const knode = fileURLToPath(new URL('../../bin/knode', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../../dist/bin/knode.js', import.meta.url)));

const runId = randomBytes(4).toString('hex');
const scopeLabel = `io.knode.test=agent-restart-${runId}`;
const subnet = `10.${200 + (parseInt(runId.slice(0, 2), 16) % 50)}.${parseInt(runId.slice(2, 4), 16)}.0/24`;
const nodeName = `knt-restart-${runId}`;

/** Polls with this file's default deadline (test/helpers/wait.ts). */
const waitFor = <T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 90_000): Promise<T> =>
  pollUntil(what, probe, timeoutMs, 250);

describe.skipIf(env.skip || !haveCni || !built)('knode agent process: SIGKILL and restart adopts 10 pods', () => {
  let docker: Docker;
  let net: TestNetwork;
  let node: Netns;
  let dir: string;
  let cp: TestControlPlane;
  let core: CoreV1Api;
  let agent: ChildProcess | undefined;
  let busybox: string;
  let stderr = '';

  function startAgent(): ChildProcess {
    const child = spawn(
      knode,
      [
        'agent', '--kubeconfig', cp.kubeconfigPath, '--config', join(dir, 'kubelet.yaml'), '--hostname-override', nodeName,
        '--root-dir', join(dir, 'root'), '--cni-conf-dir', join(dir, 'net.d'), '--cni-bin-dir', cniBin,
      ],
      {
        env: {
          ...process.env,
          KNODE_LOG_LEVEL: 'warn',
          KNODE_CNI_HOST_NETNS: node.path,
          KNODE_CNI_CACHE_DIR: join(dir, 'cni-cache'),
          KNODE_POD_LOGS_DIR: join(dir, 'pod-logs'),
          KNODE_RUNTIME_SCOPE: scopeLabel,
          KNODE_NODE_IP: '10.255.0.2',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
    return child;
  }

  const ours = async () => docker.listContainers({ all: true, filters: { label: [scopeLabel] } });

  beforeAll(async () => {
    docker = await testDocker();
    busybox = await ensureLocalImage(docker, busyboxSpec);
    net = new TestNetwork();
    node = await net.node('node');
    dir = await mkdtemp(join(tmpdir(), 'knode-agent-restart-'));
    await mkdir(join(dir, 'net.d'), { recursive: true });
    await mkdir(join(dir, 'manifests'), { recursive: true });
    await writeFile(
      join(dir, 'net.d', '10-test.conflist'),
      JSON.stringify({ cniVersion: '1.0.0', name: `knt${runId}`, plugins: [{ type: 'bridge', bridge: `kr${runId}`, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet }]] } }] }),
    );
    await writeFile(
      join(dir, 'kubelet.yaml'),
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        `staticPodPath: ${join(dir, 'manifests')}`,
        'fileCheckFrequency: 2s',
        'address: 127.0.0.1',
        `port: ${20000 + Math.floor(Math.random() * 20000)}`,
        'nodeStatusUpdateFrequency: 2s',
        'authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}',
        'authorization: {mode: AlwaysAllow}',
        '',
      ].join('\n'),
    );
    cp = await startTestControlPlane({ controllers: false });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
  });

  afterAll(async () => {
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    if (docker) {
      await removeAgentPods(docker, scopeLabel);
    }
    await cp?.stop();
    await net?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs 10 pods, survives SIGKILL + restart with 0 restarts and 0 duplicates', async () => {
    for (let i = 0; i < 5; i++) {
      await writeFile(
        join(dir, 'manifests', `s${i}.yaml`),
        `apiVersion: v1\nkind: Pod\nmetadata: {name: s${i}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: main, image: "${busybox}", command: ["sleep", "3600"]}\n`,
      );
    }
    agent = startAgent();
    await waitFor('node registered', () => core.readNode({ name: nodeName }));
    for (let i = 0; i < 5; i++) {
      const pod: V1Pod = {
        metadata: { name: `a${i}`, namespace: 'default' },
        spec: { nodeName, terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: busybox, command: ['sleep', '3600'] }, { name: 'side', image: busybox, command: ['sleep', '3600'] }] },
      };
      await core.createNamespacedPod({ namespace: 'default', body: pod });
    }
    const names = [...Array.from({ length: 5 }, (_, i) => `s${i}-${nodeName}`), ...Array.from({ length: 5 }, (_, i) => `a${i}`)];
    const allRunning = async () => {
      const pods = (await core.listNamespacedPod({ namespace: 'default' })).items.filter((p) => names.includes(p.metadata!.name!));
      return pods.length === 10 && pods.every((p) => p.status?.phase === 'Running' && p.status.containerStatuses?.every((c) => c.ready)) ? pods : undefined;
    };
    await waitFor('10 pods Running', allRunning, 120_000);
    const wide = await run(['kubectl', '--kubeconfig', cp.kubeconfigPath, 'get', 'pods', '-o', 'wide', '--no-headers'], { timeoutMs: 30_000 });
    expect(wide.stdout.split('\n').filter((line) => /\sRunning\s/.test(line) && line.includes(nodeName))).toHaveLength(10);
    const before = (await ours()).map((c) => `${c.Id}:${c.State}`).sort();
    expect(before.filter((c) => c.endsWith(':running'))).toHaveLength(10 + 15); // 10 sandboxes + 15 containers

    agent.kill('SIGKILL');
    await new Promise((resolve) => agent!.once('exit', resolve));
    const downAt = Date.now();
    // Reported again: while the agent is down, the status is set back to Pending; the restarted
    // agent must report Running again.
    await core.patchNamespacedPodStatus({ name: 'a0', namespace: 'default', body: { status: { phase: 'Pending' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    expect((await core.readNamespacedPod({ name: 'a0', namespace: 'default' })).status!.phase).toBe('Pending');
    agent = startAgent();
    const reported = await waitFor('status reported again', async () => {
      const pod = await core.readNamespacedPod({ name: 'a0', namespace: 'default' });
      return pod.status?.phase === 'Running' ? Date.now() - downAt : undefined;
    });
    await waitFor('10 pods Running again', allRunning, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const after = (await ours()).map((c) => `${c.Id}:${c.State}`).sort();
    expect(after).toEqual(before);
    const pods = (await allRunning())!;
    expect(pods.flatMap((p) => p.status!.containerStatuses!.map((c) => c.restartCount))).toEqual(new Array(15).fill(0));
    console.log(`[agent-restart] status reported again ${reported} ms after SIGKILL`);
    agent.kill('SIGTERM');
    await new Promise((resolve) => agent!.once('exit', resolve));
    expect(stderr).not.toMatch(/"level":(50|60)/);
  });
});
