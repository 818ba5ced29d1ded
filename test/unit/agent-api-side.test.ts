import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { RequestAuth, requestAttributes, type AuthSettings, type User } from '../../agent/server/auth.js';
import { buildNodeStatus, capacityAndAllocatable, conditionEvents, goArch, nodeLabels, readiness, type NodeFactsInput } from '../../agent/node/status.js';
import { planMirrorPods } from '../../agent/status/mirror-pods.js';
import { StatusManager, type PodStatusApi } from '../../agent/status/manager.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { buildMirrorPod, toStaticPod } from '../../agent/sources/static-pod.js';
import { configSourceAnnotation } from '../../lib/k8s/pod-source.js';
import { parseManifest } from '../../agent/sources/manifest.js';
import { createLogger } from '../../lib/log.js';

const log = createLogger('test', 'silent');

describe('kubelet API auth', () => {
  it.each([
    ['GET', '/stats/summary', 'get', 'stats'],
    ['GET', '/metrics', 'get', 'metrics'],
    ['GET', '/metrics/cadvisor', 'get', 'metrics'],
    ['GET', '/logs/syslog', 'get', 'log'],
    ['GET', '/pods', 'get', 'proxy'],
    ['POST', '/run/ns/p/c', 'create', 'proxy'],
    ['GET', '/containerLogs/ns/p/c', 'get', 'proxy'],
    ['GET', '/statsfoo', 'get', 'proxy'],
  ])('%s %s → %s nodes/%s', (method, path, verb, subresource) => {
    expect(requestAttributes(method, path, 'n1')).toEqual({ verb, resource: 'nodes', subresource, name: 'n1' });
  });

  let server: Server;
  let port = 0;
  let auth: RequestAuth;
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  async function status(settings: Partial<AuthSettings>, headers: Record<string, string> = {}, path = '/pods'): Promise<number> {
    auth = new RequestAuth({ anonymous: false, tokenCacheTtlMs: 60_000, mode: 'AlwaysAllow', allowedTtlMs: 60_000, deniedTtlMs: 60_000, clientCerts: false, ...settings }, 'n1');
    if (!server) {
      server = createServer((req, res) => {
        void auth.check(req, new URL(req.url!, 'http://x').pathname).then((result) => {
          res.writeHead(result.ok ? 200 : result.status);
          res.end(result.ok ? result.user.name : result.message);
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
      port = (server.address() as AddressInfo).port;
    }
    return (await fetch(`http://127.0.0.1:${port}${path}`, { headers })).status;
  }
  const tokens = { review: async (token: string): Promise<User | undefined> => (token === 'good' ? { name: 'alice', groups: ['devs'] } : token === 'admin' ? { name: 'root', groups: [] } : undefined) };
  const access = { review: async (user: User, attrs: { subresource: string }) => user.name === 'root' || (user.name === 'alice' && attrs.subresource === 'stats') };

  it('anonymous is off by default: 401', async () => expect(await status({})).toBe(401));
  it('anonymous when enabled, AlwaysAllow: 200', async () => expect(await status({ anonymous: true })).toBe(200));
  it('a bearer token nobody can check: 401 even with anonymous on', async () => expect(await status({ anonymous: true }, { authorization: 'Bearer x' })).toBe(401));
  it('a bad token: 401', async () => expect(await status({ tokens }, { authorization: 'Bearer bad' })).toBe(401));
  it('a good token, Webhook authorization allows stats only', async () => {
    expect(await status({ tokens, mode: 'Webhook', access }, { authorization: 'Bearer good' }, '/stats/summary')).toBe(200);
    expect(await status({ tokens, mode: 'Webhook', access }, { authorization: 'Bearer good' }, '/pods')).toBe(403);
    expect(await status({ tokens, mode: 'Webhook', access }, { authorization: 'Bearer admin' }, '/pods')).toBe(200);
  });
  it('anonymous with Webhook authorization: 403', async () => expect(await status({ anonymous: true, mode: 'Webhook', access })).toBe(403));
});

const facts: NodeFactsInput = {
  nodeName: 'n1', hostname: 'host-1', internalIP: '10.0.0.5', os: 'linux', arch: 'amd64', cpuCores: 4, memoryBytes: 8 * 2 ** 30,
  ephemeralStorageBytes: 100 * 2 ** 30, maxPods: 110, kernelVersion: '6.1', osImage: 'Debian GNU/Linux 12 (bookworm)', containerRuntimeVersion: 'docker://25.0',
  kubeletVersion: 'v1.32.0-knode', machineID: 'm', systemUUID: 'm', bootID: 'b', kubeletPort: 10250,
};

describe('node status', () => {
  it('labels and arch', () => {
    expect(goArch('x64')).toBe('amd64');
    expect(nodeLabels(facts, { 'node-role.kubernetes.io/worker': '' })).toMatchObject({ 'kubernetes.io/hostname': 'n1', 'kubernetes.io/arch': 'amd64', 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/worker': '' });
  });

  it('allocatable = capacity − reserved − hard eviction', () => {
    const { capacity, allocatable } = capacityAndAllocatable(facts, {
      nodeLabels: {}, registerWithTaints: [], kubeReserved: { cpu: '500m', memory: '1Gi' }, systemReserved: { cpu: '250m', memory: '512Mi', 'ephemeral-storage': '1Gi' },
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '10%' },
    });
    expect(capacity).toEqual({ cpu: '4', memory: `${8 * 1024 * 1024}Ki`, 'ephemeral-storage': `${100 * 1024 * 1024}Ki`, pods: '110' });
    expect(allocatable.cpu).toBe('3250m');
    expect(allocatable.memory).toBe(`${(8 * 1024 - 1024 - 512 - 100) * 1024}Ki`);
    expect(Number(allocatable['ephemeral-storage'])).toBe(100 * 2 ** 30 - 2 ** 30 - 10 * 2 ** 30);
    expect(allocatable.pods).toBe('110');
  });

  it('Ready follows the runtime conditions with the kubelet wording', () => {
    expect(readiness([{ type: 'RuntimeReady', status: true, reason: '', message: '' }, { type: 'NetworkReady', status: true, reason: '', message: '' }])).toEqual({ ready: true, message: 'kubelet is posting ready status' });
    const notReady = readiness([{ type: 'RuntimeReady', status: true, reason: '', message: '' }, { type: 'NetworkReady', status: false, reason: 'NetworkPluginNotReady', message: 'no CNI network configured' }]);
    expect(notReady).toEqual({ ready: false, message: 'container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:no CNI network configured' });
    expect(readiness(undefined, 'connect ENOENT').message).toBe('container runtime is down: connect ENOENT');
  });

  it('conditions, transitions and pressure', () => {
    const config = { nodeLabels: {}, registerWithTaints: [], kubeReserved: {}, systemReserved: {}, evictionHard: {} };
    const first = buildNodeStatus(facts, config, { ready: false, message: 'm' }, {}, undefined, 1000);
    const cond = (s: typeof first, type: string) => s.conditions!.find((c) => c.type === type)!;
    expect(cond(first, 'Ready')).toMatchObject({ status: 'False', reason: 'KubeletNotReady' });
    expect(cond(first, 'MemoryPressure')).toMatchObject({ status: 'False', reason: 'KubeletHasSufficientMemory' });
    const second = buildNodeStatus(facts, config, { ready: true, message: 'ok' }, { disk: true }, first, 5000);
    expect(cond(second, 'Ready')).toMatchObject({ status: 'True', reason: 'KubeletReady', lastTransitionTime: new Date(5000) });
    expect(cond(second, 'MemoryPressure').lastTransitionTime).toEqual(new Date(1000));
    expect(cond(second, 'DiskPressure')).toMatchObject({ status: 'True', reason: 'KubeletHasDiskPressure' });
    expect(cond(second, 'MemoryPressure').lastHeartbeatTime).toEqual(new Date(5000));
    expect(second.addresses).toEqual([{ type: 'InternalIP', address: '10.0.0.5' }, { type: 'Hostname', address: 'host-1' }]);
    expect(second.daemonEndpoints).toEqual({ kubeletEndpoint: { Port: 10250 } });
  });

  it('node status events: every condition at registration, then only the ones whose status changed', () => {
    const config = { nodeLabels: {}, registerWithTaints: [], kubeReserved: {}, systemReserved: {}, evictionHard: {} };
    const first = buildNodeStatus(facts, config, { ready: true, message: 'ok' }, {}, undefined, 1000);
    expect(conditionEvents(undefined, first.conditions)).toEqual(['NodeHasSufficientMemory', 'NodeHasNoDiskPressure', 'NodeHasSufficientPID', 'NodeReady']);
    expect(conditionEvents(first.conditions, first.conditions)).toEqual([]);
    const second = buildNodeStatus(facts, config, { ready: false, message: 'runtime down' }, { memory: true }, first, 5000);
    expect(conditionEvents(first.conditions, second.conditions)).toEqual(['NodeHasInsufficientMemory', 'NodeNotReady']);
    // Ready=Unknown set by the node lifecycle controller: the kubelet's True is a change.
    const unknown = first.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'Unknown' } : c));
    expect(conditionEvents(unknown, first.conditions)).toEqual(['NodeReady']);
  });
});

describe('mirror pod plan', () => {
  const node = { name: 'n1', uid: 'node-uid' };
  const staticPod = (cmd: string) => {
    const pod = toStaticPod(parseManifest(`apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: "i:1", command: ["${cmd}"]}]}\n`, '/m/web.yaml')[0]!, 'n1', 'file', '/m/web.yaml');
    pod.metadata!.annotations![configSourceAnnotation] = 'file';
    return pod;
  };
  const withUid = (pod: V1Pod, uid: string, extra: Partial<V1Pod['metadata']> = {}): V1Pod => ({ ...pod, metadata: { ...pod.metadata, uid, ...extra } });

  it('creates missing mirrors, keeps matching ones, replaces stale and deleting ones, deletes orphans', () => {
    const a = staticPod('a');
    expect(planMirrorPods([a], new Map(), node).create.map((p) => p.metadata!.name)).toEqual(['web-n1']);
    const current = withUid(buildMirrorPod(a, node), 'm1');
    expect(planMirrorPods([a], new Map([['default/web-n1', current]]), node)).toEqual({ create: [], delete: [] });
    const b = staticPod('b');
    const stale = planMirrorPods([b], new Map([['default/web-n1', current]]), node);
    expect(stale.delete).toEqual([current]);
    expect(stale.create).toHaveLength(1);
    const deleting = withUid(buildMirrorPod(a, node), 'm2', { deletionTimestamp: new Date() });
    expect(planMirrorPods([a], new Map([['default/web-n1', deleting]]), node).delete).toEqual([deleting]);
    const orphan = withUid(buildMirrorPod(a, node), 'm3');
    expect(planMirrorPods([], new Map([['default/web-n1', orphan]]), node)).toEqual({ create: [], delete: [orphan] });
  });
});

describe('status manager', () => {
  class FakeApi implements PodStatusApi {
    patches: [string, string][] = [];
    deletes: string[] = [];
    down = false;
    /** The config hash of the mirror pod the fake API holds (static pods report on it). */
    mirrorHash: string | undefined;
    async patchStatus(namespace: string, name: string, status: V1PodStatus, mirrorOf?: string): Promise<boolean> {
      if (this.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: undefined });
      if (mirrorOf !== undefined && mirrorOf !== this.mirrorHash) return false;
      this.patches.push([`${namespace}/${name}`, status.phase ?? '']);
      return true;
    }
    async deletePod(namespace: string, name: string, uid: string): Promise<void> {
      this.deletes.push(`${namespace}/${name}/${uid}`);
    }
  }
  const pod = (uid: string, extra: Partial<V1Pod['metadata']> = {}): V1Pod => ({ metadata: { name: `p-${uid}`, namespace: 'default', uid, ...extra }, spec: { containers: [] } });

  it('patches only on change, backs off while the API is down, then catches up', async () => {
    const api = new FakeApi();
    const clock = new FakeClock(0);
    const manager = new StatusManager(api, log, clock, 3_600_000);
    manager.set(pod('a'), { phase: 'Pending' });
    await manager.flush();
    manager.set(pod('a'), { phase: 'Pending' });
    await manager.flush();
    expect(api.patches).toEqual([['default/p-a', 'Pending']]);
    api.down = true;
    manager.set(pod('a'), { phase: 'Running' });
    await manager.flush();
    await manager.flush(); // in back-off: no new attempt
    api.down = false;
    await manager.flush();
    expect(api.patches).toHaveLength(1);
    clock.advance(600);
    await manager.flush();
    expect(api.patches).toEqual([['default/p-a', 'Pending'], ['default/p-a', 'Running']]);
  });

  it('deletes a terminated API pod after its last status, not a static one', async () => {
    const api = new FakeApi();
    const manager = new StatusManager(api, log, new FakeClock(0), 3_600_000);
    const deleting = pod('b', { deletionTimestamp: new Date() });
    manager.set(deleting, { phase: 'Succeeded' });
    manager.terminated(deleting, false);
    await manager.flush();
    await manager.flush();
    expect(api.patches).toEqual([['default/p-b', 'Succeeded']]);
    expect(api.deletes).toEqual(['default/p-b/b']);
    const staticPod = pod('c', { annotations: { [configSourceAnnotation]: 'file' } });
    manager.set(staticPod, { phase: 'Running' });
    manager.terminated(staticPod, true);
    await manager.flush();
    expect(api.deletes).toEqual(['default/p-b/b']);
  });

  it('writes an edited static pod\'s status only to the mirror of its own version', async () => {
    const api = new FakeApi();
    const manager = new StatusManager(api, log, new FakeClock(0), 3_600_000);
    const version = (hash: string) =>
      pod(hash, { name: 'web-n1', annotations: { [configSourceAnnotation]: 'file', 'kubernetes.io/config.hash': hash } });
    api.mirrorHash = 'new';
    manager.set(version('new'), { phase: 'Running' });
    manager.set(version('old'), { phase: 'Failed' }); // the old version's last status, arriving late
    await manager.flush();
    expect(api.patches).toEqual([['default/web-n1', 'Running']]);
  });
});
