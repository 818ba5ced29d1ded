/**
 * Issue 22, in-place pod resize (KEP-1287) and observedGeneration (KEP-5067) end to end: the real
 * kubectl (1.32, `kubectl patch --subresource resize`) against a `knode controlplane` and a
 * `knode agent` running real busybox containers in Docker:
 * - a NotRequired resize of CPU and memory keeps the container (same ID, restart count 0) while
 *   its cgroup files (cpu quota / shares, memory limit; v1 or v2) change, and the status reports
 *   the new actual resources and allocated requests, with no resize condition left;
 * - a memory resize of a container whose resizePolicy is RestartContainer restarts it (restart
 *   count 1, a new container with the new memory limit);
 * - the pod cgroup follows the sums of the containers' limits;
 * - a resize beyond node allocatable → PodResizePending/Infeasible, containers untouched;
 * - a resize that fits the node but not beside another pod → Deferred, admitted when it leaves;
 * - a memory limit below the container's usage → PodResizeInProgress/Error, not applied;
 * - a preStop sleep of 0 s is accepted (PodLifecycleSleepActionAllowZero), a negative one is a 422;
 * - a resize the API refuses → kubectl prints the 422 cause;
 * - status.observedGeneration and the conditions' observedGeneration follow metadata.generation.
 *
 * Network safety: as kubectl-top.test.ts, the kubelet listens on 127.0.0.1 in the root netns,
 * pods are wired by the reference bridge plugin into a test netns without a default route.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { run } from '../../lib/exec.js';
import { testDocker } from '../helpers/docker.js';
import { type Netns } from '../helpers/netns.js';
import { onPath, prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import type { KnodeProcess, KubeletPki } from './helpers-kubectl.js';
import { cniBin, startSingleNode, type SingleNode } from './helpers-single-node.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:kubectl', 'command:openssl');
const haveCni = onPath('ip') && (await stat(join(cniBin, 'bridge')).then(() => true, () => false));
const built = existsSync(fileURLToPath(new URL('../../dist/bin/knode.js', import.meta.url)));
if (process.env.CI === 'true' && !env.skip && (!haveCni || !built)) throw new Error(`pod-resize e2e cannot run: ${built ? 'reference CNI plugins missing' : 'dist/ missing: run npm run build'}`);

const id = randomBytes(4).toString('hex');
const nodeName = `knt-rsz-${id}`;
const scopeLabel = `io.knode.test=pod-resize-${id}`;
const subnet = `10.${200 + (parseInt(id.slice(0, 2), 16) % 50)}.${parseInt(id.slice(2, 4), 16)}.0/24`;
const mi = 1024 * 1024;

interface CgroupLimits {
  /** CFS quota in µs per period (-1 / undefined = none). */
  cpuQuota?: number;
  cpuPeriod: number;
  /** cpu.shares (v1) or cpu.weight (v2). */
  cpuShares?: number;
  cpuWeight?: number;
  memoryLimit?: number;
}

/** A process's cpu and memory limits read from its cgroup files (v1 or v2); `parent`: its pod's cgroup. */
async function cgroupLimits(pid: number, parent = false): Promise<CgroupLimits> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
  const up = (path: string | undefined) => (path !== undefined && parent ? dirname(path) : path);
  const v1 = (controller: string) => up(lines.find((l) => new RegExp(`^\\d+:([^:]*,)?${controller}(,[^:]*)?:`).test(l))?.split(':')[2]);
  const read = async (file: string) => (await readFile(file, 'utf8')).trim();
  const cpuPath = v1('cpu');
  const memoryPath = v1('memory');
  if (cpuPath !== undefined && memoryPath !== undefined) {
    const cpu = join('/sys/fs/cgroup/cpu', cpuPath);
    const quota = Number(await read(join(cpu, 'cpu.cfs_quota_us')));
    const memory = Number(await read(join('/sys/fs/cgroup/memory', memoryPath, 'memory.limit_in_bytes')));
    return { cpuQuota: quota, cpuPeriod: Number(await read(join(cpu, 'cpu.cfs_period_us'))), cpuShares: Number(await read(join(cpu, 'cpu.shares'))), memoryLimit: memory };
  }
  const dir = join('/sys/fs/cgroup', up(lines.find((l) => l.startsWith('0::'))!.slice(3))!);
  const [quota, period] = (await read(join(dir, 'cpu.max'))).split(' ');
  const memory = await read(join(dir, 'memory.max'));
  return { cpuQuota: quota === 'max' ? -1 : Number(quota), cpuPeriod: Number(period), cpuWeight: Number(await read(join(dir, 'cpu.weight'))), ...(memory === 'max' ? {} : { memoryLimit: Number(memory) }) };
}

interface PodJson {
  metadata: { generation?: number };
  status?: {
    phase?: string;
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string; observedGeneration?: number }[];
    containerStatuses?: { name: string; containerID?: string; restartCount: number; state?: { running?: object }; resources?: { requests?: Record<string, string>; limits?: Record<string, string> }; allocatedResources?: Record<string, string> }[];
  };
}

describe.skipIf(env.skip || !haveCni || !built)('in-place pod resize with kubectl --subresource resize (issue 22)', () => {
  let docker: Docker;
  let fixture: SingleNode | undefined;
  let node: Netns;
  let dir: string;
  let pki: KubeletPki;
  let controlPlane: KnodeProcess | undefined;
  let agent: KnodeProcess | undefined;
  let kubeconfig: string;

  const kubectl = (args: string[]) => run(['kubectl', '--kubeconfig', kubeconfig, ...args], { allowFailure: true, timeoutMs: 60_000 });
  const getPod = async (): Promise<PodJson> => {
    const result = await kubectl(['get', 'pod', 'rs', '-o', 'json']);
    if (result.code !== 0) throw new Error(result.stderr);
    return JSON.parse(result.stdout) as PodJson;
  };
  const statusOf = (pod: PodJson, name: string) => pod.status?.containerStatuses?.find((c) => c.name === name);
  const logsOnFailure = () => `\n--- agent ---\n${agent?.logs().slice(-6000)}\n--- controlplane ---\n${controlPlane?.logs().slice(-3000)}`;
  const pidOf = async (containerId: string): Promise<number> => (await docker.getContainer(containerId.replace(/^docker:\/\//, '')).inspect()).State.Pid;
  const resize = (patch: object) => kubectl(['patch', 'pod', 'rs', '--subresource', 'resize', '--patch', JSON.stringify(patch)]);
  const settled = (what: string, check: (pod: PodJson) => boolean) =>
    waitFor(
      what,
      async () => {
        const pod = await getPod();
        return check(pod) ? pod : undefined;
      },
      90_000,
      500,
    ).catch(async (error: unknown) => {
      throw new Error(`${String(error)}\n--- pod ---\n${JSON.stringify((await getPod()).status, null, 1)}${logsOnFailure()}`);
    });

  beforeAll(async () => {
    docker = await testDocker();
    const busybox = await ensureLocalImage(docker, busyboxSpec);
    fixture = await startSingleNode({ docker, tag: 'rsz', id, nodeName, scopeLabel, subnet, kubelet: { syncFrequency: '5s' } });
    ({ dir, pki, node, controlPlane, agent, kubeconfig } = fixture);
    const resources = { requests: { cpu: '100m', memory: '32Mi' }, limits: { cpu: '200m', memory: '64Mi' } };
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'rs' },
      spec: {
        nodeName,
        terminationGracePeriodSeconds: 1,
        containers: [
          // main holds ~12 MiB in a shell variable (for the memory decrease below usage)
          { name: 'main', image: busybox, command: ['sh', '-c', 'x=$(head -c 12582912 /dev/zero | tr "\\0" a); echo held; sleep 3600 & wait'], resources, resizePolicy: [{ resourceName: 'cpu', restartPolicy: 'NotRequired' }, { resourceName: 'memory', restartPolicy: 'NotRequired' }] },
          { name: 'side', image: busybox, command: ['sleep', '3600'], resources, resizePolicy: [{ resourceName: 'memory', restartPolicy: 'RestartContainer' }] },
        ],
      },
    };
    await writeFile(join(dir, 'pod.yaml'), stringify(manifest));
    const applied = await kubectl(['apply', '-f', join(dir, 'pod.yaml')]);
    expect(applied.stderr).toBe('');
    await settled('pod Running with both containers', (pod) => pod.status?.phase === 'Running' && (pod.status.containerStatuses ?? []).every((c) => c.state?.running));
  }, 300_000);

  afterAll(async () => {
    await fixture?.stop();
  });

  it('reports actual and allocated resources and observedGeneration for the running pod', async () => {
    const pod = await settled('status observedGeneration 1', (p) => p.status?.observedGeneration === 1);
    expect(pod.metadata.generation).toBe(1);
    expect(pod.status!.conditions!.every((c) => c.observedGeneration === 1)).toBe(true);
    const main = statusOf(pod, 'main')!;
    expect(main.allocatedResources).toEqual({ cpu: '100m', memory: '32Mi' });
    expect(main.resources).toEqual({ requests: { cpu: '100m', memory: '32Mi' }, limits: { cpu: '200m', memory: '64Mi' } });
    const limits = await cgroupLimits(await pidOf(main.containerID!));
    expect(limits.cpuQuota! / limits.cpuPeriod).toBeCloseTo(0.2, 3);
    expect(limits.memoryLimit).toBe(64 * mi);
  });

  it('resizes CPU and memory in place: same container, same restart count, new cgroup limits', async () => {
    const before = statusOf(await getPod(), 'main')!;
    const beforeLimits = await cgroupLimits(await pidOf(before.containerID!));
    const patched = await resize({ spec: { containers: [{ name: 'main', resources: { requests: { cpu: '150m', memory: '48Mi' }, limits: { cpu: '400m', memory: '128Mi' } } }] } });
    expect(patched.stderr).toBe('');
    expect(patched.stdout).toContain('pod/rs patched');
    const pod = await settled('resize applied and reported', (p) => {
      const main = statusOf(p, 'main');
      return p.status?.observedGeneration === 2 && main?.resources?.limits?.cpu === '400m' && !p.status.conditions?.some((c) => c.type.startsWith('PodResize'));
    });
    expect(pod.metadata.generation).toBe(2);
    const main = statusOf(pod, 'main')!;
    expect(main.containerID).toBe(before.containerID);
    expect(main.restartCount).toBe(0);
    expect(main.allocatedResources).toEqual({ cpu: '150m', memory: '48Mi' });
    expect(main.resources).toEqual({ requests: { cpu: '150m', memory: '48Mi' }, limits: { cpu: '400m', memory: '128Mi' } });
    const after = await cgroupLimits(await pidOf(main.containerID!));
    expect(after.cpuQuota! / after.cpuPeriod).toBeCloseTo(0.4, 3);
    expect(after.memoryLimit).toBe(128 * mi);
    expect(after.memoryLimit).not.toBe(beforeLimits.memoryLimit);
    if (after.cpuShares !== undefined) expect(after.cpuShares).toBe(Math.floor((150 * 1024) / 1000));
    // the pod cgroup follows: quota and memory limit of the sums (400m + 200m, 128Mi + 64Mi)
    const podCgroup = await cgroupLimits(await pidOf(main.containerID!), true);
    expect(podCgroup.cpuQuota! / podCgroup.cpuPeriod).toBeCloseTo(0.6, 3);
    expect(podCgroup.memoryLimit).toBe(192 * mi);
    // the other container is untouched
    expect(statusOf(pod, 'side')!.restartCount).toBe(0);
  });

  it('restarts a container whose resizePolicy for memory is RestartContainer', async () => {
    const before = statusOf(await getPod(), 'side')!;
    const patched = await resize({ spec: { containers: [{ name: 'side', resources: { requests: { cpu: '100m', memory: '32Mi' }, limits: { cpu: '200m', memory: '96Mi' } } }] } });
    expect(patched.stderr).toBe('');
    const pod = await settled('side restarted with the new limit', (p) => {
      const side = statusOf(p, 'side');
      return side?.restartCount === 1 && side.state?.running !== undefined && side.resources?.limits?.memory === '96Mi' && p.status?.observedGeneration === 3;
    });
    const side = statusOf(pod, 'side')!;
    expect(side.containerID).not.toBe(before.containerID);
    expect((await cgroupLimits(await pidOf(side.containerID!))).memoryLimit).toBe(96 * mi);
    expect(statusOf(pod, 'main')!.restartCount).toBe(0);
  });

  it('a resize beyond node allocatable is PodResizePending/Infeasible and changes nothing', async () => {
    const before = await getPod();
    const patched = await resize({ spec: { containers: [{ name: 'main', resources: { requests: { cpu: '1000' }, limits: { cpu: '1000' } } }] } });
    expect(patched.stderr).toBe('');
    const pod = await settled('PodResizePending Infeasible for generation 4', (p) => p.status?.observedGeneration === 4 && p.status.conditions?.some((c) => c.type === 'PodResizePending') === true);
    const pending = pod.status!.conditions!.find((c) => c.type === 'PodResizePending')!;
    expect(pending).toMatchObject({ status: 'True', reason: 'Infeasible', observedGeneration: 4 });
    // the pod's requests: 1000 cores of main plus side's 100m
    expect(pending.message).toMatch(/^Node didn't have enough capacity: cpu, requested: 1000100, capacity: \d+$/);
    const main = statusOf(pod, 'main')!;
    expect(main.containerID).toBe(statusOf(before, 'main')!.containerID);
    expect(main.allocatedResources).toEqual({ cpu: '150m', memory: '48Mi' });
    expect(main.resources?.limits?.cpu).toBe('400m');
  });

  it('kubectl shows the API refusal of an invalid resize', async () => {
    const removed = await kubectl(['patch', 'pod', 'rs', '--subresource', 'resize', '--type', 'json', '--patch', JSON.stringify([{ op: 'remove', path: '/spec/containers/0/resources/limits/memory' }])]);
    expect(removed.code).not.toBe(0);
    expect(removed.stderr).toContain('spec.containers[0].resources.limits: Forbidden: resource limits cannot be removed');
  });

  it('a memory limit below the container\'s usage is not applied: PodResizeInProgress/Error', async () => {
    await waitFor('main holds its memory', async () => (await kubectl(['logs', 'rs', '-c', 'main'])).stdout.includes('held'), 60_000, 500);
    const before = statusOf(await getPod(), 'main')!;
    const patched = await resize({ spec: { containers: [{ name: 'main', resources: { requests: { cpu: '150m', memory: '8Mi' }, limits: { cpu: '400m', memory: '8Mi' } } }] } });
    expect(patched.stderr).toBe('');
    const pod = await settled('PodResizeInProgress Error for generation 5', (p) => p.status?.observedGeneration === 5 && p.status.conditions?.some((c) => c.type === 'PodResizeInProgress' && c.reason === 'Error') === true);
    expect(pod.status!.conditions!.some((c) => c.type === 'PodResizePending')).toBe(false);
    const progress = pod.status!.conditions!.find((c) => c.type === 'PodResizeInProgress')!;
    expect(progress.message).toMatch(/memory limit \(8Mi\) below its current usage \(\d+Mi\)/);
    const main = statusOf(pod, 'main')!;
    // allocated, not actuated: the container keeps running with its old limit
    expect(main.allocatedResources).toEqual({ cpu: '150m', memory: '8Mi' });
    expect(main.resources?.limits?.memory).toBe('128Mi');
    expect(main.containerID).toBe(before.containerID);
    expect(main.restartCount).toBe(0);
    expect((await cgroupLimits(await pidOf(main.containerID!))).memoryLimit).toBe(128 * mi);
  });

  it('accepts a preStop sleep of 0 s and deletes the pod; refuses a negative one (PodLifecycleSleepActionAllowZero)', async () => {
    const pod = (name: string, seconds: number) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name },
      spec: {
        nodeName,
        terminationGracePeriodSeconds: 30,
        containers: [{ name: 'c', image: busyboxSpec.ref, command: ['sh', '-c', "trap 'exit 0' TERM; sleep 3600 & wait"], lifecycle: { preStop: { sleep: { seconds } } } }],
      },
    });
    await writeFile(join(dir, 'bad-sleep.yaml'), stringify(pod('sl-bad', -1)));
    const refused = await kubectl(['apply', '-f', join(dir, 'bad-sleep.yaml')]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('spec.containers[0].lifecycle.preStop.sleep: Invalid value: -1: must be non-negative');
    await writeFile(join(dir, 'sleep.yaml'), stringify(pod('sl', 0)));
    expect((await kubectl(['apply', '-f', join(dir, 'sleep.yaml')])).stderr).toBe('');
    await waitFor('sl Running', async () => (await kubectl(['get', 'pod', 'sl', '-o', 'jsonpath={.status.phase}'])).stdout === 'Running', 90_000, 500);
    const deleted = await kubectl(['delete', 'pod', 'sl', '--wait=true', '--timeout=50s']);
    expect(deleted.stderr).toBe('');
    expect((await kubectl(['get', 'pod', 'sl'])).stderr).toContain('NotFound');
  }, 150_000);

  it('a resize that does not fit beside other pods is PodResizePending/Deferred and is admitted when they leave', async () => {
    const milli = (q: string) => (q.endsWith('m') ? Number(q.slice(0, -1)) : Number(q) * 1000);
    const node = JSON.parse((await kubectl(['get', 'node', nodeName, '-o', 'json'])).stdout) as { status: { allocatable: Record<string, string> } };
    const allocatable = milli(node.status.allocatable.cpu!);
    const small = { requests: { cpu: '100m', memory: '16Mi' }, limits: { cpu: '100m', memory: '16Mi' } };
    const podOf = (name: string, resources: object) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name },
      spec: { nodeName, terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: busyboxSpec.ref, command: ['sleep', '3600'], resources }] },
    });
    await writeFile(join(dir, 'df.yaml'), stringify(podOf('df', small)));
    expect((await kubectl(['apply', '-f', join(dir, 'df.yaml')])).stderr).toBe('');
    // the node's pods' cpu requests, then a filler that leaves 50m free
    const list = JSON.parse((await kubectl(['get', 'pods', '-o', 'json'])).stdout) as { items: { spec: { containers: { resources?: { requests?: Record<string, string> } }[] } }[] };
    const used = list.items.reduce((sum, item) => sum + item.spec.containers.reduce((s, c) => s + milli(c.resources?.requests?.cpu ?? '0'), 0), 0);
    await writeFile(join(dir, 'fill.yaml'), stringify(podOf('fill', { requests: { cpu: `${allocatable - used - 50}m` } })));
    expect((await kubectl(['apply', '-f', join(dir, 'fill.yaml')])).stderr).toBe('');
    const running = async (name: string) => (await kubectl(['get', 'pod', name, '-o', 'jsonpath={.status.phase}'])).stdout === 'Running';
    await waitFor('df and fill Running', async () => (await running('df')) && (await running('fill')), 90_000, 500);
    const grown = { requests: { cpu: '300m', memory: '16Mi' }, limits: { cpu: '300m', memory: '16Mi' } };
    const patched = await kubectl(['patch', 'pod', 'df', '--subresource', 'resize', '--patch', JSON.stringify({ spec: { containers: [{ name: 'c', resources: grown }] } })]);
    expect(patched.stderr).toBe('');
    const dfPod = async () => JSON.parse((await kubectl(['get', 'pod', 'df', '-o', 'json'])).stdout) as PodJson;
    const deferred = await waitFor('df PodResizePending Deferred', async () => {
      const pod = await dfPod();
      return pod.status?.observedGeneration === 2 && pod.status.conditions?.find((c) => c.type === 'PodResizePending' && c.reason === 'Deferred') ? pod : undefined;
    }, 90_000, 500);
    expect(statusOf(deferred, 'c')!.allocatedResources).toEqual({ cpu: '100m', memory: '16Mi' });
    expect((await kubectl(['delete', 'pod', 'fill', '--wait=true', '--timeout=60s'])).stderr).toBe('');
    const admitted = await waitFor('df resized once fill left', async () => {
      const pod = await dfPod();
      const c = statusOf(pod, 'c');
      return c?.allocatedResources?.cpu === '300m' && c.resources?.limits?.cpu === '300m' && !pod.status!.conditions!.some((x) => x.type.startsWith('PodResize')) ? pod : undefined;
    }, 90_000, 500);
    expect(statusOf(admitted, 'c')!.restartCount).toBe(0);
    expect(statusOf(admitted, 'c')!.containerID).toBe(statusOf(deferred, 'c')!.containerID);
  }, 240_000);
});
