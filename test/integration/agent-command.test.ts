/**
 * `knode agent` as a process (the built CLI) against the real control plane and Docker Engine:
 * the one start-up warning names exactly the not-implemented settings the config sets, the
 * healthz server answers on healthzBindAddress:healthzPort, --node-labels/--register-with-taints/
 * --node-ip reach the registered Node, and a cgroupDriver other than Docker's is refused at
 * start. No pods run: nothing touches the network (the agent only listens on loopback ports).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../helpers/ports.js';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites('root', 'docker');
const repo = join(import.meta.dirname, '..', '..');
const id = randomBytes(3).toString('hex');
const nodeName = `knt-agentcmd-${id}`;

describe.skipIf(env.skip)('knode agent command: settings at start', () => {
  let cp: TestControlPlane;
  let dir: string;
  let agent: ChildProcess | undefined;
  let log = '';
  let healthzPort = 0;

  const config = (extra: string[]) =>
    [
      'apiVersion: kubelet.config.k8s.io/v1beta1',
      'kind: KubeletConfiguration',
      'address: 127.0.0.1',
      'port: 0',
      `healthzPort: ${healthzPort}`,
      'healthzBindAddress: 127.0.0.1',
      // A shared engine: never collect its images nor evict.
      'imageGCHighThresholdPercent: 100',
      'imageGCLowThresholdPercent: 99',
      "evictionHard: {memory.available: '1Mi', nodefs.available: '1%', imagefs.available: '1%'}",
      ...extra,
      '',
    ].join('\n');
  const args = (file: string) => ['--kubeconfig', cp.kubeconfigPath, '--config', file, '--hostname-override', nodeName, '--root-dir', join(dir, 'root'), '--cni-conf-dir', join(dir, 'net.d')];
  const childEnv = () => ({ ...process.env, KNODE_RUNTIME_SCOPE: `io.knode.test=agentcmd-${id}`, KNODE_POD_LOGS_DIR: join(dir, 'pod-logs'), KNODE_CNI_CACHE_DIR: join(dir, 'cni') });

  beforeAll(async () => {
    cp = await startTestControlPlane({ controllers: false });
    dir = mkdtempSync(join(tmpdir(), 'knode-agent-cmd-'));
    healthzPort = await freeLoopbackPort();
    const file = join(dir, 'kubelet.yaml');
    writeFileSync(file, config(['volumeStatsAggPeriod: 2m', 'featureGates: {SomeGate: true}', 'maxOpenFiles: 1000']));
    agent = spawn(process.execPath, [join(repo, 'bin', 'knode'), 'agent', ...args(file), '--node-labels', 'tier=edge', '--register-with-taints', 'dedicated=edge:NoSchedule', '--node-ip', '10.255.7.7'], { env: childEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    agent.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  }, 60_000);

  afterAll(async () => {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((resolve) => agent!.once('exit', resolve));
      agent.kill('SIGTERM');
      await exited;
    }
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('one warning names the not-implemented settings; healthz answers ok', async () => {
    const body = await waitFor('healthz', async () => {
      try {
        return await (await fetch(`http://127.0.0.1:${healthzPort}/healthz`)).text();
      } catch {
        return undefined; // not listening yet
      }
    }, 60_000, 250);
    expect(body).toBe('ok');
    const warnings = log.split('\n').filter((line) => line.includes('accepted but not implemented'));
    expect(warnings, log).toHaveLength(1);
    expect((JSON.parse(warnings[0]!) as { fields: string[] }).fields).toEqual(['volumeStatsAggPeriod', 'maxOpenFiles', 'featureGates']);
  });

  it('the Node carries --node-labels, --register-with-taints and --node-ip', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    const core = kc.makeApiClient(CoreV1Api);
    const node = await waitFor('the Node', () => core.readNode({ name: nodeName }).catch(() => undefined), 60_000, 250);
    expect(node.metadata?.labels?.tier).toBe('edge');
    expect(node.spec?.taints).toEqual([{ key: 'dedicated', value: 'edge', effect: 'NoSchedule' }]);
    expect(node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address).toBe('10.255.7.7');
  });

  it('a cgroupDriver other than Docker\'s is refused at start with the kubelet\'s message', () => {
    const driver = spawnSync('docker', ['info', '-f', '{{.CgroupDriver}}'], { encoding: 'utf8' }).stdout.trim();
    const other = driver === 'systemd' ? 'cgroupfs' : 'systemd';
    const file = join(dir, 'mismatch.yaml');
    writeFileSync(file, config([`cgroupDriver: ${other}`]));
    const result = spawnSync(process.execPath, [join(repo, 'bin', 'knode'), 'agent', ...args(file)], { env: childEnv(), encoding: 'utf8', timeout: 60_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`misconfiguration: kubelet cgroup driver: "${other}" is different from docker cgroup driver: "${driver}"`);
  });
});
