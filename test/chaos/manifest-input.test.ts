/**
 * Chaos corpus: bounded bad static pod manifests dropped into a running agent's staticPodPath
 * (issue 25 item 5 and "What to build": the bad-input corpora). Each one must be logged and
 * skipped, the agent must stay healthy (kubelet /healthz answers quickly throughout, the event
 * loop never stalls for long, the lease keeps being renewed) and the static pod already running
 * must be untouched (same sandbox, same container, no restart).
 *
 * The agent is the real one (sources, pod config, workers, kubelet server, node manager) over
 * the fake runtime, against the in-process control plane.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { parseKubeletConfig, kubeletApiVersion } from '../../lib/config/kubelet.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';
import { capturingLog } from '../helpers/log-capture.js';

const runId = randomBytes(4).toString('hex');
const nodeName = `knt-chaos-${runId}`;

const good = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: keeper\nspec:\n  containers:\n  - name: main\n    image: knode.local/busybox:1\n    command: ["sleep", "3600"]\n`;

/** name → content (string or bytes); every entry must be rejected or skipped. */
function corpus(): Array<[string, string | Buffer]> {
  const random = randomBytes(96 * 1024); // above the inline threshold: decoded in the worker
  return [
    ['malformed.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: [\n  name: x\n'],
    ['malformed.json', '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"'],
    ['deep-flow.yaml', `${'['.repeat(200_000)}${']'.repeat(200_000)}`],
    ['deep-json.json', `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`],
    ['deep-block.yaml', Array.from({ length: 3000 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n')],
    ['huge.yaml', `apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge\n  annotations: {a: "${'x'.repeat(20 * 1024 * 1024)}"}\nspec:\n  containers: [{name: c, image: i}]\n`],
    ['wrong-kind.yaml', 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec: {}\n'],
    ['wrong-version.yaml', 'apiVersion: v2\nkind: Pod\nmetadata:\n  name: v\nspec:\n  containers: [{name: c, image: i}]\n'],
    ['list.yaml', '- a\n- b\n'],
    ['scalar.json', '42'],
    ['empty.yaml', ''],
    ['bad-name.yaml', 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: "Not_A_Name!"\nspec:\n  containers: [{name: c, image: i}]\n'],
    ['no-containers.yaml', 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: nc\nspec: {}\n'],
    ['alias-bomb.yaml', ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`)].join('\n')],
    ['binary-small.yaml', randomBytes(512)],
    ['binary-large.yaml', random],
    ['duplicate.yaml', good.replace('keeper', 'dup') + '---\n' + good.replace('keeper', 'dup')],
    ['same-as-keeper.yaml', good],
  ];
}


describe('chaos: bad static pod manifests dropped into a running agent', () => {
  let cp: TestControlPlane;
  let dir: string;
  let agent: Agent;
  let runtime: FakeRuntime;
  const captured = capturingLog('agent');
  const manifests = () => join(dir, 'manifests');

  beforeAll(async () => {
    cp = await startTestControlPlane({ controllers: false });
    dir = await mkdtemp(join(tmpdir(), 'knode-chaos-manifests-'));
    await mkdir(manifests());
    await writeFile(join(manifests(), 'keeper.yaml'), good);
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    runtime = new FakeRuntime();
    agent = new Agent({
      nodeName,
      config: parseKubeletConfig(
        {
          apiVersion: kubeletApiVersion,
          kind: 'KubeletConfiguration',
          staticPodPath: manifests(),
          fileCheckFrequency: '1s',
          address: '127.0.0.1',
          port: 0,
          nodeStatusUpdateFrequency: '1s',
          nodeLeaseDurationSeconds: 4,
          authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
          authorization: { mode: 'AlwaysAllow' },
        },
        'test',
      ).config,
      kubeConfig: kc,
      runtime,
      rootDir: join(dir, 'root'),
      eviction: false,
      log: captured.log,
    });
    await agent.start();
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('logs and skips every bad manifest; /healthz, the lease and the running static pod are unaffected', async () => {
    const keeperUid = await waitFor('the keeper pod running', () => {
      const worker = [...agent.podConfig.desiredPods().values()].find((p) => p.metadata?.name === `keeper-${nodeName}`);
      const status = worker && agent.workers.get(worker.metadata!.uid!)?.status;
      return worker && status?.containerStatuses?.[0]?.state?.running ? worker.metadata!.uid! : undefined;
    });
    const containersBefore = [...runtime.containers.values()].map((c) => c.id);
    const sandboxesBefore = [...runtime.sandboxes.keys()];
    const coordination = new KubeConfig();
    coordination.loadFromFile(cp.kubeconfigPath);
    const leases = coordination.makeApiClient(CoordinationV1Api);
    const leaseTime = async () => new Date(String((await leases.readNamespacedLease({ name: nodeName, namespace: 'kube-node-lease' })).spec?.renewTime ?? 0)).getTime() || 0;
    const leaseBefore = await waitFor('the lease', async () => (await leaseTime()) || undefined);

    const histogram = monitorEventLoopDelay({ resolution: 10 });
    histogram.enable();
    const files = corpus();
    for (const [name, content] of files) await writeFile(join(manifests(), name), content);
    await symlink('loop-b.yaml', join(manifests(), 'loop-a.yaml'));
    await symlink('loop-a.yaml', join(manifests(), 'loop-b.yaml'));
    await symlink(join(manifests(), 'nowhere.yaml'), join(manifests(), 'dangling.yaml'));
    execFileSync('mkfifo', [join(manifests(), 'fifo.yaml')]);
    const special = ['loop-a.yaml', 'loop-b.yaml', 'dangling.yaml', 'fifo.yaml'];

    // /healthz keeps answering while the corpus is read (longest answer measured).
    let slowestHealthz = 0;
    const named = (line: Record<string, unknown>): string => String(line.file ?? (typeof line.err === 'string' ? line.err : (line.err as { message?: string } | undefined)?.message) ?? '');
    const handled = (name: string) => captured.lines().some((l) => (l.msg === 'static pod manifest rejected' || l.msg === 'static pod manifest skipped') && named(l).includes(`/${name}`));
    await waitFor(
      'every bad manifest logged',
      async () => {
        const started = Date.now();
        const response = await fetch(`http://127.0.0.1:${agent.server!.port}/healthz`);
        slowestHealthz = Math.max(slowestHealthz, Date.now() - started);
        expect(response.status).toBe(200);
        const missing = [...files.map(([name]) => name), ...special].filter((name) => !handled(name));
        if (missing.length > 0) throw new Error(`not logged yet: ${missing.join(', ')}`);
        return true;
      },
      60_000,
      100,
    );
    // A few more scans: nothing is reported twice, nothing changes.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    histogram.disable();

    const unhandled = [...files.map(([name]) => name), ...special].filter((name) => !handled(name));
    expect(unhandled).toEqual([]);
    const rejected = captured.lines().filter((l) => l.msg === 'static pod manifest rejected');
    for (const [name] of files) expect(rejected.filter((l) => named(l).includes(`/${name}"`)).length, name).toBeLessThanOrEqual(1);
    expect([...agent.podConfig.desiredPods().values()].map((p) => p.metadata!.name)).toEqual([`keeper-${nodeName}`]);
    expect([...agent.podConfig.desiredPods().keys()]).toEqual([keeperUid]);
    expect([...runtime.sandboxes.keys()]).toEqual(sandboxesBefore);
    expect([...runtime.containers.values()].map((c) => c.id)).toEqual(containersBefore);
    expect(agent.workers.get(keeperUid)!.status!.containerStatuses![0]!.restartCount).toBe(0);
    expect(await leaseTime()).toBeGreaterThan(leaseBefore);
    expect(histogram.max / 1e6).toBeLessThan(1000);
    expect(slowestHealthz).toBeLessThan(1000);
    console.info(`chaos manifests: ${files.length + special.length} bad inputs; max event-loop stall ${(histogram.max / 1e6).toFixed(0)} ms; slowest /healthz ${slowestHealthz} ms`);
  });
});
