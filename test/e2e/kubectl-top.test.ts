/**
 * Issue 22, `kubectl top`: the real kubectl (1.32) against a `knode controlplane` that scrapes
 * the `knode agent`'s /metrics/resource every --metric-resolution (2 s here) and serves
 * metrics.k8s.io/v1beta1, with real containers:
 * - a pod holding ~24 MB in a shell variable: its working set in `kubectl top pod` and in the
 *   PodMetrics object matches the one read straight from its cgroup (usage − inactive_file);
 * - a busy-loop pod: CPU above zero; `kubectl top pod -A` lists both, `-l` selects one;
 * - `kubectl top node` shows the node with a working set close to /proc/meminfo's;
 * - /metrics/resource itself (kubelet names, labels, timestamps) matches the cgroup.
 *
 * Network safety: as agent-kubectl.test.ts, the agent's kubelet listens on 127.0.0.1 in the root
 * netns (KNODE_NODE_IP=127.0.0.1, checked before any scrape matters), pods are wired by the
 * reference bridge plugin into a test netns without a default route.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { run } from '../../lib/exec.js';
import { parsePrometheusText } from '../../controlplane/metrics-store.js';
import { testDocker } from '../helpers/docker.js';
import { type Netns } from '../helpers/netns.js';
import { onPath, prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import type { KnodeProcess, KubeletPki } from './helpers-kubectl.js';
import { cniBin, startSingleNode, type SingleNode } from './helpers-single-node.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:kubectl', 'command:openssl');
const haveCni = onPath('ip') && (await stat(join(cniBin, 'bridge')).then(() => true, () => false));
const built = existsSync(fileURLToPath(new URL('../../dist/bin/knode.js', import.meta.url)));
if (process.env.CI === 'true' && !env.skip && (!haveCni || !built)) throw new Error(`kubectl-top e2e cannot run: ${built ? 'reference CNI plugins missing' : 'dist/ missing: run npm run build'}`);

const id = randomBytes(4).toString('hex');
const nodeName = `knt-top-${id}`;
const scopeLabel = `io.knode.test=kubectl-top-${id}`;
const subnet = `10.${200 + (parseInt(id.slice(0, 2), 16) % 50)}.${parseInt(id.slice(2, 4), 16)}.0/24`;
const mi = 1024 * 1024;

/** A container's working set read from its memory cgroup (v1 or v2), as cAdvisor computes it. */
async function cgroupWorkingSet(pid: number): Promise<number> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
  const v1 = lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
  if (v1) {
    const dir = join('/sys/fs/cgroup/memory', v1.split(':')[2]!);
    const usage = Number((await readFile(join(dir, 'memory.usage_in_bytes'), 'utf8')).trim());
    const inactive = Number(/^total_inactive_file (\d+)$/m.exec(await readFile(join(dir, 'memory.stat'), 'utf8'))?.[1] ?? 0);
    return Math.max(0, usage - inactive);
  }
  const dir = join('/sys/fs/cgroup', lines.find((l) => l.startsWith('0::'))!.slice(3));
  const usage = Number((await readFile(join(dir, 'memory.current'), 'utf8')).trim());
  const inactive = Number(/^inactive_file (\d+)$/m.exec(await readFile(join(dir, 'memory.stat'), 'utf8'))?.[1] ?? 0);
  return Math.max(0, usage - inactive);
}

/** "24Mi", "1234Ki", "5m", "2" → bytes or cores. */
function quantity(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(n|u|m|k|M|G|Ki|Mi|Gi)?$/.exec(text);
  if (!match) throw new Error(`not a quantity: ${text}`);
  const scale: Record<string, number> = { '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: mi, Gi: 1024 * mi };
  return Number(match[1]) * scale[match[2] ?? '']!;
}

describe.skipIf(env.skip || !haveCni || !built)('kubectl top node|pod through metrics.k8s.io (issue 22)', () => {
  let docker: Docker;
  let fixture: SingleNode | undefined;
  let node: Netns;
  let dir: string;
  let pki: KubeletPki;
  let controlPlane: KnodeProcess | undefined;
  let agent: KnodeProcess | undefined;
  let kubeconfig: string;
  let kubeletPort = 0;

  const kubectl = (args: string[]) => run(['kubectl', '--kubeconfig', kubeconfig, ...args], { allowFailure: true, timeoutMs: 60_000 });
  const getJson = async <T>(args: string[]): Promise<T> => {
    const result = await kubectl(args);
    if (result.code !== 0) throw new Error(result.stderr);
    return JSON.parse(result.stdout) as T;
  };
  const logsOnFailure = () => `\n--- agent ---\n${agent?.logs().slice(-6000)}\n--- controlplane ---\n${controlPlane?.logs().slice(-4000)}`;
  const containerPid = async (pod: string): Promise<number> => {
    const [info] = await docker.listContainers({ filters: { label: [scopeLabel, `io.kubernetes.pod.name=${pod}`, 'io.kubernetes.container.name=main'] } });
    if (!info) throw new Error(`no container of pod ${pod}`);
    return (await docker.getContainer(info.Id).inspect()).State.Pid;
  };

  beforeAll(async () => {
    docker = await testDocker();
    const busybox = await ensureLocalImage(docker, busyboxSpec);
    fixture = await startSingleNode({ docker, tag: 'top', id, nodeName, scopeLabel, subnet, controlPlaneArgs: ['--metric-resolution', '2s'] });
    ({ dir, pki, node, controlPlane, agent, kubeconfig, kubeletPort } = fixture);

    const pod = (name: string, app: string, script: string) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, labels: { app } },
      spec: { nodeName, terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: busybox, command: ['sh', '-c', script] }] },
    });
    const manifests = [
      // ~24 MB held by the shell (a command substitution is read into memory), then idle.
      pod('mem', 'mem', 'x=$(head -c 25165824 /dev/zero | tr "\\0" a); echo held; sleep 3600 & wait'),
      pod('busy', 'busy', 'while :; do :; done'),
    ];
    await writeFile(join(dir, 'pods.yaml'), manifests.map((m) => stringify(m)).join('---\n'));
    const applied = await kubectl(['apply', '-f', join(dir, 'pods.yaml')]);
    expect(applied.stderr).toBe('');
    await waitFor(
      'both pods Running',
      async () => {
        const list = await getJson<{ items: { status?: { phase?: string } }[] }>(['get', 'pods', '-o', 'json']);
        return list.items.length === 2 && list.items.every((p) => p.status?.phase === 'Running');
      },
      120_000,
      500,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}${logsOnFailure()}`);
    });
    await waitFor('the mem pod holds its memory', async () => (await kubectl(['logs', 'mem'])).stdout.includes('held'), 60_000, 500);
  }, 300_000);

  afterAll(async () => {
    await fixture?.stop();
  });

  it('the kubelet serves /metrics/resource with the kubelet\'s names and the container\'s cgroup working set', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: kubeletPort, path: '/metrics/resource', ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${res.statusCode}: ${body}`))));
      });
      req.on('error', reject);
      req.end();
    });
    const samples = parsePrometheusText(text);
    const names = new Set(samples.map((s) => s.name));
    for (const name of ['node_cpu_usage_seconds_total', 'node_memory_working_set_bytes', 'container_cpu_usage_seconds_total', 'container_memory_working_set_bytes', 'container_start_time_seconds', 'pod_cpu_usage_seconds_total', 'pod_memory_working_set_bytes', 'resource_scrape_error']) {
      expect(names, name).toContain(name);
    }
    expect(samples.find((s) => s.name === 'resource_scrape_error')).toEqual({ name: 'resource_scrape_error', labels: {}, value: 0 });
    const memSample = samples.find((s) => s.name === 'container_memory_working_set_bytes' && s.labels.pod === 'mem');
    expect(memSample?.labels).toEqual({ container: 'main', namespace: 'default', pod: 'mem' });
    expect(Math.abs(memSample!.timestamp! - Date.now())).toBeLessThan(120_000);
    const fromCgroup = await cgroupWorkingSet(await containerPid('mem'));
    expect(fromCgroup).toBeGreaterThan(24 * mi);
    expect(Math.abs(memSample!.value - fromCgroup)).toBeLessThan(2 * mi);
    const busyCpu = samples.find((s) => s.name === 'container_cpu_usage_seconds_total' && s.labels.pod === 'busy');
    expect(busyCpu!.value).toBeGreaterThan(0);
  });

  it('kubectl top pod shows the cgroup working set and a busy container\'s CPU; -A and -l select', async () => {
    const top = await waitFor(
      'kubectl top pod -A lists both pods',
      async () => {
        const result = await kubectl(['top', 'pod', '-A', '--no-headers']);
        return result.code === 0 && /\bmem\b/.test(result.stdout) && /\bbusy\b/.test(result.stdout) ? result.stdout : undefined;
      },
      90_000,
      1000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}${logsOnFailure()}`);
    });
    const rows = new Map(top.trim().split('\n').map((line) => line.trim().split(/\s+/)).map(([ns, name, cpu, memory]) => [name!, { ns, cpu: quantity(cpu!), memory: quantity(memory!) }]));
    expect(rows.get('mem')!.ns).toBe('default');
    const fromCgroup = await cgroupWorkingSet(await containerPid('mem'));
    // kubectl prints whole Mi, rounded down.
    expect(Math.abs(rows.get('mem')!.memory - fromCgroup)).toBeLessThan(3 * mi);
    expect(rows.get('busy')!.cpu).toBeGreaterThan(0);

    const object = await getJson<{ kind: string; window: string; timestamp: string; containers: { name: string; usage: { cpu: string; memory: string } }[] }>(['get', '--raw', '/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/mem']);
    expect(object.kind).toBe('PodMetrics');
    expect(object.containers.map((c) => c.name)).toEqual(['main']);
    expect(object.window).toMatch(/^\d+(\.\d+)?s$/);
    expect(Math.abs(quantity(object.containers[0]!.usage.memory) - (await cgroupWorkingSet(await containerPid('mem'))))).toBeLessThan(2 * mi);

    const selected = await kubectl(['top', 'pod', '-l', 'app=busy', '--no-headers']);
    expect(selected.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0])).toEqual(['busy']);
    const containers = await kubectl(['top', 'pod', 'busy', '--containers', '--no-headers']);
    expect(containers.stdout).toMatch(/^busy\s+main\s+\d+m\s+\d+Mi/);
    const missing = await kubectl(['get', '--raw', '/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('NotFound');
  });

  it('kubectl top node shows the node\'s CPU and a working set close to /proc/meminfo', async () => {
    const line = await waitFor(
      'kubectl top node lists the node',
      async () => {
        const result = await kubectl(['top', 'node', nodeName, '--no-headers']);
        return result.code === 0 ? result.stdout.trim() : undefined;
      },
      60_000,
      1000,
    );
    const [name, cpu, cpuPercent, memory, memoryPercent] = line.split(/\s+/);
    expect(name).toBe(nodeName);
    expect(quantity(cpu!)).toBeGreaterThan(0);
    expect(cpuPercent).toMatch(/^\d+%$/);
    expect(memoryPercent).toMatch(/^\d+%$/);
    const meminfo = await readFile('/proc/meminfo', 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(meminfo)![1]) * 1024;
    const workingSet = kb('MemTotal') - kb('MemAvailable');
    // The machine is shared: other processes move its memory between the scrape and this read.
    expect(Math.abs(quantity(memory!) - workingSet)).toBeLessThan(Math.max(512 * mi, workingSet * 0.25));
    const list = await getJson<{ kind: string; items: { metadata: { name: string }; usage: { cpu: string; memory: string } }[] }>(['get', '--raw', '/apis/metrics.k8s.io/v1beta1/nodes']);
    expect(list.kind).toBe('NodeMetricsList');
    expect(list.items.map((i) => i.metadata.name)).toContain(nodeName);
  });
});
