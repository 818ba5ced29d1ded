/**
 * KubeletConfiguration settings of the agent against the real control plane (issue 22):
 * registerNode false, the kubelet flags' labels and taints plus providerID on the registered
 * Node (read back with the real kubectl), kubeAPIQPS/kubeAPIBurst on the API client, and the
 * kubelet server switches readOnlyPort and enableServer. The runtime is the in-memory fake:
 * none of this touches containers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { run } from '../../lib/exec.js';
import { NodeManager, gatherNodeFacts } from '../../agent/node/manager.js';
import { applyAgentFlags } from '../../agent/flags.js';
import { Agent } from '../../agent/agent.js';
import { kubeletApiVersion, parseKubeletConfig } from '../../lib/config/kubelet.js';
import { rateLimitKubeConfig } from '../../lib/kube-rate-limit.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';
import { onPath } from '../helpers/prereq.js';
import { freeLoopbackPort } from '../helpers/ports.js';

const id = randomBytes(3).toString('hex');
const silent = createLogger('test', 'silent');
const kubelet = (fields: Record<string, unknown>) => parseKubeletConfig({ apiVersion: kubeletApiVersion, kind: 'KubeletConfiguration', ...fields }, 'test').config;

describe('agent settings against the control plane', () => {
  let cp: TestControlPlane;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let dir: string;
  const stops: (() => unknown)[] = [];

  beforeAll(async () => {
    cp = await startTestControlPlane({ controllers: false });
    kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    dir = await mkdtemp(join(tmpdir(), 'knode-agent-settings-'));
  }, 60_000);

  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function nodeManager(nodeName: string, config: ReturnType<typeof kubelet>): Promise<NodeManager> {
    const runtime = new FakeRuntime();
    const facts = await gatherNodeFacts({ nodeName, rootDir: dir, maxPods: 110, kubeletPort: 10250, runtime, nodeIP: '127.0.0.1' });
    const manager = new NodeManager({
      core,
      coordination: kc.makeApiClient(CoordinationV1Api),
      runtime,
      facts,
      config: { nodeLabels: config.nodeLabels, registerWithTaints: config.registerWithTaints, kubeReserved: {}, systemReserved: {}, evictionHard: {}, registerNode: config.registerNode, providerID: config.providerID },
      statusUpdateMs: 1000,
      statusReportMs: 300_000,
      leaseDurationSeconds: 40,
      log: silent,
    });
    stops.push(() => manager.stop());
    return manager;
  }

  it('registerNode false: no Node is created; one created by someone else gets the status', async () => {
    const name = `knt-noreg-${id}`;
    const manager = await nodeManager(name, kubelet({ registerNode: false }));
    await manager.start();
    await manager.tick();
    await expect(core.readNode({ name })).rejects.toMatchObject({ code: 404 });
    await core.createNode({ body: { metadata: { name } } });
    const node = await waitFor('the agent to report on the Node', async () => {
      const current = await core.readNode({ name });
      return current.status?.conditions?.some((c) => c.type === 'Ready') ? current : undefined;
    }, 30_000, 200);
    expect(node.status?.nodeInfo?.kubeletVersion).toMatch(/^v1\.\d+\.\d+-knode$/);
    // Registration by the agent would have put its labels on; an adopted Node keeps its own.
    expect(node.metadata?.labels?.['kubernetes.io/hostname']).toBeUndefined();
  });

  it.skipIf(!onPath('kubectl'))('registers with the flag labels and taints, and providerID', async () => {
    const name = `knt-flags-${id}`;
    const config = applyAgentFlags(kubelet({ nodeLabels: { 'from-file': 'yes' }, providerID: `knode://${name}` }), {
      nodeLabels: 'tier=edge,node.kubernetes.io/pool=blue',
      registerWithTaints: 'dedicated=edge:NoSchedule,spot:PreferNoSchedule',
    });
    const manager = await nodeManager(name, config);
    await manager.start();
    const out = await run(['kubectl', '--kubeconfig', cp.kubeconfigPath, 'get', 'node', name, '-o', 'json'], { timeoutMs: 30_000 });
    const node = JSON.parse(out.stdout) as { metadata: { labels: Record<string, string> }; spec: { taints: unknown[]; providerID: string } };
    expect(node.metadata.labels).toMatchObject({ 'from-file': 'yes', tier: 'edge', 'node.kubernetes.io/pool': 'blue', 'kubernetes.io/hostname': name });
    expect(node.spec.taints).toEqual([
      { key: 'dedicated', value: 'edge', effect: 'NoSchedule' },
      { key: 'spot', effect: 'PreferNoSchedule' },
    ]);
    expect(node.spec.providerID).toBe(`knode://${name}`);
  });

  it('kubeAPIQPS/kubeAPIBurst hold API requests beyond the burst', async () => {
    const limited = new KubeConfig();
    limited.loadFromFile(cp.kubeconfigPath);
    const clock = new FakeClock(Date.now());
    rateLimitKubeConfig(limited, 1, 2, clock);
    const api = limited.makeApiClient(CoreV1Api);
    const done: number[] = [];
    const calls = [0, 1, 2, 3].map((i) => api.listNamespace().then(() => done.push(i)));
    await Promise.all(calls.slice(0, 2));
    // A request through an unlimited client completes: the held ones are waiting for tokens.
    await core.listNamespace();
    expect(done.sort()).toEqual([0, 1]);
    clock.advance(1000);
    await calls[2];
    expect(done).toHaveLength(3);
    expect(done).not.toContain(3);
    clock.advance(1000);
    await calls[3];
    expect(done).toHaveLength(4);
  });

  it('readOnlyPort serves /healthz and /pods without authentication; enableServer false: no kubelet API server', async () => {
    const agentWith = (name: string, fields: Record<string, unknown>) =>
      new Agent({
        nodeName: name,
        config: kubelet({ address: '127.0.0.1', port: 0, nodeStatusUpdateFrequency: '1s', authorization: { mode: 'Webhook' }, ...fields }),
        kubeConfig: kc,
        runtime: new FakeRuntime(),
        rootDir: join(dir, name),
        eviction: false,
        log: silent,
      });
    const withReadOnly = agentWith(`knt-ro-${id}`, { readOnlyPort: 0 });
    await withReadOnly.start();
    stops.push(() => withReadOnly.stop());
    expect(withReadOnly.server?.readOnlyPort).toBeUndefined();
    // The authenticated port refuses anonymous requests.
    expect((await fetch(`http://127.0.0.1:${withReadOnly.server!.port}/pods`)).status).toBe(401);

    const port = await freeLoopbackPort();
    const readOnly = agentWith(`knt-ro2-${id}`, { readOnlyPort: port });
    await readOnly.start();
    stops.push(() => readOnly.stop());
    expect(readOnly.server?.readOnlyPort).toBe(port);
    expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).text()).toBe('ok');
    expect((await fetch(`http://127.0.0.1:${port}/pods`)).status).toBe(200);

    const serverless = agentWith(`knt-nosrv-${id}`, { enableServer: false });
    await serverless.start();
    stops.push(() => serverless.stop());
    expect(serverless.server).toBeUndefined();
  });
});
