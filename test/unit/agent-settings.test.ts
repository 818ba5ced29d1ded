/**
 * KubeletConfiguration settings honoured by the agent's start-up parts (issue 22): healthz,
 * failSwapOn, the runtime policies (runtimeRequestTimeout, serializeImagePulls,
 * maxParallelImagePulls, registryPullQPS/registryBurst), the API token bucket, the kubelet flags
 * and the contradictory settings refused at load.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HealthzServer } from '../../agent/server/healthz.js';
import { activeSwaps, checkSwap } from '../../agent/node/swap.js';
import { applyRuntimePolicies, callTimeoutMs } from '../../cri/runtime-policies.js';
import { TokenBucket } from '../../lib/token-bucket.js';
import { applyAgentFlags, parseNodeIP, parseNodeLabels, parseTaints } from '../../agent/flags.js';
import { kubeletApiVersion, parseKubeletConfig } from '../../lib/config/kubelet.js';
import { freeLoopbackPort } from '../helpers/ports.js';
import { createLogger, klogLevel } from '../../lib/log.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { FakeClock } from '../helpers/fake-clock.js';
import type { ImageSpec } from '../../cri/runtime.js';
import { checkCgroupDriver } from '../../agent/startup.js';
import type { IncomingMessage } from 'node:http';
import { RequestAuth } from '../../agent/server/auth.js';
import { expandSlice, podCgroupParent, podCgroupPath } from '../../lib/k8s/cgroups.js';
import { sliceProperties } from '../../agent/cgroups/systemd-slices.js';
import { removePodCgroup } from '../../agent/cgroups/cgroups.js';
import dbus from 'dbus-next';

const silent = createLogger('test', 'silent');
const kubelet = (fields: Record<string, unknown>) => parseKubeletConfig({ apiVersion: kubeletApiVersion, kind: 'KubeletConfiguration', ...fields }, 'kubelet.yaml').config;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'knode-agent-settings-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('healthz server', () => {
  it('healthz answers ok on healthzBindAddress:healthzPort', async () => {
    const port = await freeLoopbackPort();
    const server = new HealthzServer({ bindAddress: '127.0.0.1', port, log: silent });
    await server.start();
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('ok');
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      await server.stop();
    }
    const other = await freeLoopbackPort();
    const unhealthy = new HealthzServer({ bindAddress: '127.0.0.1', port: other, log: silent, check: () => 'syncloop failed' });
    await unhealthy.start();
    try {
      const response = await fetch(`http://127.0.0.1:${other}/healthz`);
      expect(response.status).toBe(500);
      expect(await response.text()).toContain('[-]syncloop failed');
    } finally {
      await unhealthy.stop();
    }
  });

  it('healthzPort 0 disables it; a busy port does not stop the agent', async () => {
    const off = new HealthzServer({ bindAddress: '127.0.0.1', port: 0, log: silent });
    await off.start();
    expect(off.port).toBeUndefined();
    const port = await freeLoopbackPort();
    const first = new HealthzServer({ bindAddress: '127.0.0.1', port, log: silent });
    await first.start();
    const second = new HealthzServer({ bindAddress: '127.0.0.1', port, log: silent });
    await expect(second.start()).resolves.toBeUndefined();
    expect(second.port).toBeUndefined();
    await second.stop();
    await first.stop();
  });
});

describe('failSwapOn', () => {
  const swaps = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t1048572\t\t0\t\t-2\n';

  it('failSwapOn refuses to start with swap on', async () => {
    const file = join(dir, 'swaps-on');
    await writeFile(file, swaps);
    expect(activeSwaps(swaps)).toEqual(['/swapfile']);
    await expect(checkSwap(true, file)).rejects.toThrow(/running with swap on is not supported, please disable swap or set failSwapOn to false.*\/swapfile/);
    await expect(checkSwap(false, file)).resolves.toEqual(['/swapfile']);
  });

  it('starts without swap, and without /proc/swaps', async () => {
    const file = join(dir, 'swaps-off');
    await writeFile(file, 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n');
    await expect(checkSwap(true, file)).resolves.toEqual([]);
    await expect(checkSwap(true, join(dir, 'missing'))).resolves.toEqual([]);
  });
});

/** A runtime whose pulls wait until the test lets them finish. */
class GatedPulls extends FakeRuntime {
  readonly started: string[] = [];
  private readonly gates = new Map<string, () => void>();
  override async pullImage(image: ImageSpec): Promise<string> {
    this.started.push(image.image);
    await new Promise<void>((resolve) => this.gates.set(image.image, resolve));
    return super.pullImage(image);
  }
  finish(image: string): void {
    this.gates.get(image)?.();
  }
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
};
const policies = { runtimeRequestTimeoutMs: 120_000, serializeImagePulls: false, registryPullQPS: 0, registryBurst: 0 };

describe('runtime policies', () => {
  it('serializeImagePulls: one pull at a time', async () => {
    const inner = new GatedPulls();
    const runtime = applyRuntimePolicies(inner, { ...policies, serializeImagePulls: true });
    const pulls = ['a', 'b', 'c'].map((image) => runtime.pullImage({ image }));
    await flush();
    expect(inner.started).toEqual(['a']);
    inner.finish('a');
    await flush();
    expect(inner.started).toEqual(['a', 'b']);
    inner.finish('b');
    await flush();
    inner.finish('c');
    await Promise.all(pulls);
    expect(inner.started).toEqual(['a', 'b', 'c']);
  });

  it('maxParallelImagePulls bounds concurrent pulls', async () => {
    const inner = new GatedPulls();
    const runtime = applyRuntimePolicies(inner, { ...policies, maxParallelImagePulls: 2 });
    const pulls = ['a', 'b', 'c', 'd'].map((image) => runtime.pullImage({ image }));
    await flush();
    expect(inner.started).toEqual(['a', 'b']);
    inner.finish('b');
    await flush();
    expect(inner.started).toEqual(['a', 'b', 'c']);
    for (const image of ['a', 'c']) inner.finish(image);
    await flush();
    inner.finish('d');
    await Promise.all(pulls);
    // Without a limit every pull starts at once.
    const free = new GatedPulls();
    const unlimited = applyRuntimePolicies(free, policies);
    const all = ['a', 'b', 'c', 'd'].map((image) => unlimited.pullImage({ image }));
    await flush();
    expect(free.started).toHaveLength(4);
    for (const image of ['a', 'b', 'c', 'd']) free.finish(image);
    await Promise.all(all);
  });

  it('registryPullQPS: a pull beyond the rate fails with pull QPS exceeded', async () => {
    const clock = new FakeClock(1_000_000);
    const runtime = applyRuntimePolicies(new FakeRuntime(), { ...policies, registryPullQPS: 1, registryBurst: 2, clock });
    await runtime.pullImage({ image: 'a' });
    await runtime.pullImage({ image: 'b' });
    await expect(runtime.pullImage({ image: 'c' })).rejects.toThrow(/pull QPS exceeded.*"c"/);
    clock.advance(1000);
    await expect(runtime.pullImage({ image: 'c' })).resolves.toBeTruthy();
  });

  it('runtimeRequestTimeout fails a hung runtime call', async () => {
    const inner = new FakeRuntime();
    inner.status = () => new Promise(() => undefined);
    const runtime = applyRuntimePolicies(inner, { ...policies, runtimeRequestTimeoutMs: 50 });
    await expect(runtime.status()).rejects.toThrow(/runtime call status timed out after 0.05s \(runtimeRequestTimeout\)/);
    await expect(runtime.version()).resolves.toBeTruthy();
    // The kubelet's per-call deadlines: sandbox 2×, stop + grace, none for pulls and streams.
    expect(callTimeoutMs('runPodSandbox', [], 1000)).toBe(2000);
    expect(callTimeoutMs('stopContainer', ['id', 30], 1000)).toBe(31_000);
    expect(callTimeoutMs('pullImage', [], 1000)).toBeUndefined();
    expect(callTimeoutMs('exec', [], 1000)).toBeUndefined();
    expect(callTimeoutMs('listContainers', [], 0)).toBeUndefined();
  });
});

describe('token bucket (kubeAPIQPS, registryPullQPS)', () => {
  it('serves the burst at once, then one token per 1/qps, in order', () => {
    const clock = new FakeClock(0);
    const bucket = new TokenBucket(2, 3, clock);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 0]);
    expect(bucket.reserve()).toBe(500);
    expect(bucket.reserve()).toBe(1000);
    clock.advance(5000);
    expect(bucket.reserve()).toBe(0);
    expect(new TokenBucket(0, 0, clock).reserve()).toBe(0);
  });
});

describe('kubelet flags', () => {
  it('--node-labels and --register-with-taints add to the config; bad values are clear errors', () => {
    const config = applyAgentFlags(kubelet({ nodeLabels: { a: '1' }, registerWithTaints: [{ key: 'x', effect: 'NoSchedule' }] }), {
      nodeLabels: 'b=2,node.kubernetes.io/pool=blue',
      registerWithTaints: 'dedicated=gpu:NoSchedule,spot:PreferNoSchedule',
    });
    expect(config.nodeLabels).toEqual({ a: '1', b: '2', 'node.kubernetes.io/pool': 'blue' });
    expect(config.registerWithTaints).toEqual([
      { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' },
      { key: 'spot', effect: 'PreferNoSchedule' },
    ]);
    expect(() => parseNodeLabels('noequals')).toThrow(/--node-labels: "noequals" is not key=value/);
    expect(() => parseNodeLabels('a=b c')).toThrow(/--node-labels: invalid label/);
    expect(() => parseNodeLabels('node-role.kubernetes.io/master=')).toThrow(/unknown 'kubernetes.io' or 'k8s.io' labels specified: node-role.kubernetes.io\/master/);
    expect(() => parseTaints('a=b:Sometimes')).toThrow(/effect "Sometimes"/);
    expect(() => parseTaints('a=b')).toThrow(/not key\[=value\]:Effect/);
    expect(parseNodeIP('10.0.0.7')).toBe('10.0.0.7');
    expect(() => parseNodeIP('10.0.0.300')).toThrow(/--node-ip: "10.0.0.300" is not an IP address/);
  });

  it('--v maps klog verbosity to the log level', () => {
    expect(['0', '1', '2', '3', '4', '5', '10'].map(klogLevel)).toEqual(['info', 'info', 'info', 'debug', 'debug', 'trace', 'trace']);
    expect(() => klogLevel('high')).toThrow(/--v: "high"/);
  });
});

describe('contradictory settings', () => {
  it.each([
    [{ shutdownGracePeriod: '10s', shutdownGracePeriodCriticalPods: '20s' }, /shutdownGracePeriodCriticalPods": must be <= shutdownGracePeriod/],
    [{ maxParallelImagePulls: 3 }, /maxParallelImagePulls": cannot be larger than 1 unless serializeImagePulls is false/],
    [{ enforceNodeAllocatable: ['none', 'pods'] }, /"none" cannot be combined/],
    [{ enforceNodeAllocatable: ['system-reserved'] }, /needs systemReservedCgroup/],
  ])('%j is refused at start', (fields, message) => {
    expect(() => kubelet(fields)).toThrow(message);
  });

  it('consistent ones load', () => {
    expect(kubelet({ serializeImagePulls: false, maxParallelImagePulls: 3, shutdownGracePeriod: '30s', shutdownGracePeriodCriticalPods: '10s' }).maxParallelImagePulls).toBe(3);
  });
});

describe('cgroupDriver', () => {
  it('cgroupDriver must match the container runtime', () => {
    expect(() => checkCgroupDriver('systemd', 'cgroupfs')).toThrow('misconfiguration: kubelet cgroup driver: "systemd" is different from docker cgroup driver: "cgroupfs"');
    expect(() => checkCgroupDriver('cgroupfs', 'cgroupfs')).not.toThrow();
    expect(() => checkCgroupDriver('systemd', undefined)).not.toThrow();
  });

  it('systemd slice names and where systemd puts them', () => {
    const uid = '1b2c3d4e-0000-1111-2222-333344445555';
    expect(podCgroupParent('Burstable', uid, 'systemd')).toBe('kubepods-burstable-pod1b2c3d4e_0000_1111_2222_333344445555.slice');
    expect(expandSlice(podCgroupParent('Burstable', uid, 'systemd'))).toBe('kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_0000_1111_2222_333344445555.slice');
    expect(expandSlice(podCgroupParent('Guaranteed', uid, 'systemd'))).toBe('kubepods.slice/kubepods-pod1b2c3d4e_0000_1111_2222_333344445555.slice');
    expect(() => expandSlice('a--b.slice')).toThrow(/empty part/);
    expect(() => expandSlice('kubepods')).toThrow(/not a systemd slice/);
    expect(podCgroupPath('BestEffort', uid, 'systemd')).toBe('/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_0000_1111_2222_333344445555.slice');
    expect(podCgroupPath('BestEffort', uid, 'cgroupfs', '/r')).toBe(`/r/kubepods/besteffort/pod${uid}`);
  });

  it('a slice\'s unit properties carry the pod cgroup\'s limits in systemd\'s names (v1 and v2), unset limits as infinity', () => {
    const props = (version: 1 | 2, resources?: Parameters<typeof sliceProperties>[0]) => Object.fromEntries(sliceProperties(resources, version, dbus.Variant).map(([name, variant]) => [name, variant.value as unknown]));
    const infinity = 2n ** 64n - 1n;
    expect(props(1, { cpuShares: 102, cpuQuotaUs: 25_000, cpuPeriodUs: 100_000, memoryLimitBytes: 100_663_296 })).toEqual({
      CPUAccounting: true, MemoryAccounting: true, TasksAccounting: true, CPUShares: 102n, MemoryLimit: 100_663_296n, CPUQuotaPerSecUSec: 250_000n, TasksMax: infinity,
    });
    expect(props(2, { cpuShares: 2, pidsLimit: 50 })).toMatchObject({ CPUWeight: 1n, MemoryMax: infinity, CPUQuotaPerSecUSec: infinity, TasksMax: 50n });
    expect(props(1)).toEqual({ CPUAccounting: true, MemoryAccounting: true, TasksAccounting: true });
  });

  it('removes pod cgroups of either driver and refuses anything else', async () => {
    const root = await mkdtemp(join(tmpdir(), 'knode-cg-'));
    try {
      const slice = '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podab_cd.slice';
      await mkdir(join(root, 'memory', slice), { recursive: true });
      expect(await removePodCgroup(slice, root)).toBe(1);
      await expect(removePodCgroup('/kubepods.slice/kubepods-burstable.slice', root)).rejects.toThrow(/not a pod cgroup/);
      await expect(removePodCgroup('/system.slice/docker.service', root)).rejects.toThrow(/not a pod cgroup/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('kubelet API webhook caches', () => {
  it('cacheTTL, cacheAuthorizedTTL and cacheUnauthorizedTTL bound how long review answers are reused', async () => {
    let now = 1_000_000;
    const reviews = { token: 0, access: 0 };
    const auth = new RequestAuth(
      {
        anonymous: false,
        tokens: { review: async (token) => { reviews.token++; return token === 'good' ? { name: 'alice', groups: [] } : undefined; } },
        tokenCacheTtlMs: 120_000,
        mode: 'Webhook',
        access: { review: async (_user, attributes) => { reviews.access++; return attributes.subresource === 'stats'; } },
        allowedTtlMs: 300_000,
        deniedTtlMs: 30_000,
        clientCerts: false,
      },
      'n1',
      () => now,
    );
    const request = (path: string) => auth.check({ headers: { authorization: 'Bearer good' }, method: 'GET', socket: {} } as unknown as IncomingMessage, path);
    expect((await request('/stats/summary')).ok).toBe(true);
    expect(await request('/pods')).toMatchObject({ ok: false, status: 403 });
    expect(reviews).toEqual({ token: 1, access: 2 });
    now += 29_000; // every answer still cached
    await request('/stats/summary');
    await request('/pods');
    expect(reviews).toEqual({ token: 1, access: 2 });
    now += 2_000; // past cacheUnauthorizedTTL (30 s): the denial is asked again, the allowance is not
    await request('/stats/summary');
    await request('/pods');
    expect(reviews).toEqual({ token: 1, access: 3 });
    now += 90_000; // past cacheTTL (2 min): the token is reviewed again
    await request('/stats/summary');
    expect(reviews.token).toBe(2);
    now += 200_000; // past cacheAuthorizedTTL (5 min)
    await request('/stats/summary');
    expect(reviews.access).toBe(4);
  });
});
