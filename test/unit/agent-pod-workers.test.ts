import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { V1ConfigMap, V1Container, V1Pod, V1PodStatus, V1Secret } from '@kubernetes/client-node';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { kubeLabels } from '../../cri/runtime.js';
import { createLogger } from '../../lib/log.js';
import { Backoff } from '../../agent/pods/backoff.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { PodWorkers } from '../../agent/pods/workers.js';
import type { PodWorkerDeps } from '../../agent/pods/worker.js';
import type { RuntimeConfigOptions } from '../../agent/pods/runtime-config.js';
import type { EventInput } from '../../lib/events.js';

const root = mkdtempSync(join(tmpdir(), 'knode-agent-workers-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const image = 'knode.local/busybox:1';
let podCounter = 0;

interface Harness {
  runtime: FakeRuntime;
  clock: FakeClock;
  workers: PodWorkers;
  statuses: Map<string, V1PodStatus>;
  /** How many statuses the workers reported (one per completed sync). */
  reports: { count: number; byUid: Map<string, number> };
  terminated: string[];
  deps: PodWorkerDeps;
  /** Kubelet events recorded (through deps.recordEvent). */
  events: EventInput[];
}

function harness(configMaps: Record<string, V1ConfigMap> = {}, secrets: Record<string, V1Secret> = {}, shared?: { runtime: FakeRuntime; clock: FakeClock }): Harness {
  const clock = shared?.clock ?? new FakeClock(Date.UTC(2026, 0, 1));
  const runtime = shared?.runtime ?? new FakeRuntime({ now: () => clock.now() * 1e6, images: [image] });
  const statuses = new Map<string, V1PodStatus>();
  const reports = { count: 0, byUid: new Map<string, number>() };
  const terminated: string[] = [];
  const events: EventInput[] = [];
  const runtimeConfig: RuntimeConfigOptions = {
    nodeName: 'node-1', podLogsDir: join(root, 'logs'), clusterDomain: 'cluster.local', clusterDNS: ['10.96.0.10'],
    hostDNS: { servers: ['1.1.1.1'], searches: [], options: [] }, cgroupDriver: 'cgroupfs', cgroupRoot: '', cgroupsPerQOS: true,
    cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: -1,
  };
  const deps: PodWorkerDeps = {
    runtime, clock, restartBackoff: new Backoff(clock), imageBackoff: new Backoff(clock), runtimeConfig, rootDir: join(root, 'root'),
    log: createLogger('test', 'silent'),
    objects: async () => ({ configMap: (n) => configMaps[n], secret: (n) => secrets[n] }),
    node: () => ({ hostIP: '10.0.0.1', memoryCapacityBytes: 8 * 2 ** 30, allocatable: { cpu: '2', memory: '8Gi' } }),
    onStatus: (pod, status) => {
      reports.count++;
      reports.byUid.set(pod.metadata!.uid!, (reports.byUid.get(pod.metadata!.uid!) ?? 0) + 1);
      statuses.set(pod.metadata!.uid!, status);
    },
    onTerminated: (pod) => terminated.push(pod.metadata!.uid!),
    resyncMs: 3_600_000,
    recordEvent: (event) => events.push(event),
  };
  return { runtime, clock, workers: new PodWorkers(deps), statuses, reports, terminated, deps, events };
}

function makePod(spec: Partial<V1Pod['spec']> & { containers: V1Container[] }, extra: Partial<V1Pod['metadata']> = {}): V1Pod {
  const n = podCounter++;
  return {
    metadata: { name: `p${n}`, namespace: 'default', uid: `uid-${n}`, ...extra },
    spec: { restartPolicy: 'Always', terminationGracePeriodSeconds: 30, ...spec },
  };
}
const c = (name: string, more: Partial<V1Container> = {}): V1Container => ({ name, image, imagePullPolicy: 'IfNotPresent', command: ['sleep', '3600'], ...more });

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function containersOf(h: Harness, uid: string, name?: string) {
  return [...h.runtime.containers.values()].filter((x) => x.status.labels[kubeLabels.podUid] === uid && (!name || x.status.metadata.name === name));
}
function running(h: Harness, uid: string, name: string) {
  return containersOf(h, uid, name).find((x) => x.status.state === 'CONTAINER_RUNNING');
}
/** The events of one pod as "Type Reason [container]: message" lines, in order. */
const eventLines = (h: Harness, pod: V1Pod) =>
  h.events
    .filter((e) => e.involvedObject.uid === pod.metadata!.uid)
    .map((e) => `${e.type} ${e.reason}${e.involvedObject.fieldPath ? ` ${e.involvedObject.fieldPath}` : ''}: ${e.message}`);
const phase = (h: Harness, pod: V1Pod) => h.statuses.get(pod.metadata!.uid!)?.phase;
const desired = (...pods: V1Pod[]) => new Map(pods.map((p) => [p.metadata!.uid!, p]));

describe('pod workers over the fake runtime', () => {
  it('runs the sandbox, init containers in order, then the app containers', async () => {
    const h = harness({ cfg: { data: { 'app.conf': 'x=1' } } }, { creds: { data: { PASSWORD: Buffer.from('pw').toString('base64') } } });
    const pod = makePod({
      initContainers: [c('init-a', { command: ['true'] }), c('init-b', { command: ['true'] })],
      containers: [c('app', { env: [{ name: 'PW', valueFrom: { secretKeyRef: { name: 'creds', key: 'PASSWORD' } } }], volumeMounts: [{ name: 'conf', mountPath: '/etc/app' }] }), c('side')],
      volumes: [{ name: 'conf', configMap: { name: 'cfg' } }],
    });
    h.workers.sync(desired(pod));
    const uid = pod.metadata!.uid!;
    await until(() => running(h, uid, 'init-a') !== undefined, 'init-a');
    expect(h.runtime.sandboxes.size).toBe(1);
    expect(containersOf(h, uid, 'init-b')).toHaveLength(0);
    expect(phase(h, pod)).toBe('Pending');
    h.runtime.exitContainer(running(h, uid, 'init-a')!.id, 0);
    h.workers.podEvent(uid);
    await until(() => running(h, uid, 'init-b') !== undefined, 'init-b');
    expect(containersOf(h, uid, 'app')).toHaveLength(0);
    h.runtime.exitContainer(running(h, uid, 'init-b')!.id, 0);
    h.workers.podEvent(uid);
    await until(() => phase(h, pod) === 'Running', 'Running');
    const app = running(h, uid, 'app')!;
    expect(app.config.envs).toContainEqual({ key: 'PW', value: 'pw' });
    expect(app.config.mounts![0]!.containerPath).toBe('/etc/app');
    expect(app.config.mounts![0]!.hostPath).toContain(join('pods', uid, 'volumes', 'kubernetes.io~configmap', 'conf'));
    const status = h.statuses.get(uid)!;
    expect(status.podIP).toMatch(/^10\.88\.0\./);
    expect(status.conditions!.filter((x) => x.status === 'True').map((x) => x.type).sort()).toEqual(['ContainersReady', 'Initialized', 'PodReadyToStartContainers', 'PodScheduled', 'Ready']);
    expect(status.initContainerStatuses!.map((s) => s.state!.terminated!.reason)).toEqual(['Completed', 'Completed']);
    const per = (name: string, list = 'containers') => [
      `Normal Pulled spec.${list}{${name}}: Container image "${image}" already present on machine`,
      `Normal Created spec.${list}{${name}}: Created container: ${name}`,
      `Normal Started spec.${list}{${name}}: Started container ${name}`,
    ];
    expect(eventLines(h, pod)).toEqual([...per('init-a', 'initContainers'), ...per('init-b', 'initContainers'), ...per('app'), ...per('side')]);
    await h.workers.stop();
  });

  it('while the runtime network is not ready: pod-network pods wait (no sandbox, a clear message), host-network pods start', async () => {
    const h = harness();
    h.runtime.networkReady = false;
    const pod = makePod({ containers: [c('app')] });
    const host = makePod({ hostNetwork: true, containers: [c('app')] });
    const uid = pod.metadata!.uid!;
    h.workers.sync(desired(pod, host));
    await until(() => running(h, host.metadata!.uid!, 'app') !== undefined, 'the host-network pod');
    await until(() => h.statuses.get(uid)?.containerStatuses?.[0]?.state?.waiting !== undefined, 'the waiting status');
    expect(h.statuses.get(uid)!.containerStatuses![0]!.state!.waiting).toEqual({
      reason: 'ContainerCreating',
      message: 'network is not ready: container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:',
    });
    expect(phase(h, pod)).toBe('Pending');
    expect(h.runtime.sandboxes.size).toBe(1); // the host-network pod's only
    // The network becomes ready: the pod starts on its next sync (a PLEG event or the 5 s
    // retry), without any back-off.
    h.runtime.networkReady = true;
    h.workers.podEvent(uid);
    await until(() => running(h, uid, 'app') !== undefined, 'the pod-network pod');
    expect(h.runtime.sandboxes.size).toBe(2);
    await h.workers.stop();
  });

  it('revision grows with every change statuses() can show (new desired set, status reported) and not otherwise', async () => {
    const h = harness();
    const pod = makePod({ containers: [c('app')] });
    const before = h.workers.revision;
    h.workers.sync(desired(pod));
    expect(h.workers.revision).toBeGreaterThan(before);
    await until(() => phase(h, pod) === 'Running', 'Running');
    const atRunning = h.workers.revision;
    const reports = h.reports.count;
    h.workers.podEvent(pod.metadata!.uid!);
    await until(() => h.reports.count > reports, 'a resync report');
    expect(h.workers.revision).toBeGreaterThan(atRunning);
    const settled = h.workers.revision;
    expect(h.workers.statuses()).toHaveLength(1);
    expect(h.workers.revision).toBe(settled);
    await h.workers.stop();
  });

  it('a network seen ready answers a pod start while the runtime is asked again (no start waits on the query)', async () => {
    const h = harness();
    const first = makePod({ containers: [c('app')] });
    h.workers.sync(desired(first));
    await until(() => running(h, first.metadata!.uid!, 'app') !== undefined, 'the first pod');
    const statusCalls = () => h.runtime.calls.filter((call) => call.method === 'status').length;
    expect(statusCalls()).toBe(1);
    // Past the 5 s freshness, the runtime's answer never comes: the next pod starts regardless.
    h.clock.advance(10_000);
    let answer: (() => void) | undefined;
    const status = h.runtime.status.bind(h.runtime);
    h.runtime.status = async () => {
      await new Promise<void>((resolve) => (answer = resolve));
      return status();
    };
    const second = makePod({ containers: [c('app')] });
    h.workers.sync(desired(first, second));
    await until(() => running(h, second.metadata!.uid!, 'app') !== undefined, 'the second pod');
    expect(answer).toBeDefined();
    answer!();
    await h.workers.stop();
  });

  it('a crashing container backs off 10 s, 20 s, 40 s (test clock)', async () => {
    const h = harness();
    const pod = makePod({ containers: [c('crash')] });
    const uid = pod.metadata!.uid!;
    h.workers.sync(desired(pod));
    await until(() => running(h, uid, 'crash') !== undefined, 'first start');
    const gaps: number[] = [];
    const maxAttempt = () => Math.max(...containersOf(h, uid, 'crash').map((x) => x.status.metadata.attempt));
    for (let i = 0; i < 4; i++) {
      const before = maxAttempt();
      h.runtime.exitContainer(running(h, uid, 'crash')!.id, 1);
      const exitedAt = h.clock.now();
      // Step the clock a second at a time, syncing each step, until a new attempt runs.
      for (let step = 0; step < 100 && maxAttempt() === before; step++) {
        const reportsBefore = h.reports.count;
        h.workers.podEvent(uid);
        await until(() => h.reports.count > reportsBefore, 'a full sync');
        await new Promise((resolve) => setTimeout(resolve, 2));
        if (maxAttempt() > before) break;
        const s = h.statuses.get(uid)!.containerStatuses![0]!;
        if (i > 0) expect(s.state!.waiting!.reason).toBe('CrashLoopBackOff');
        h.clock.advance(1000);
      }
      await until(() => running(h, uid, 'crash') !== undefined, `restart ${i}`);
      gaps.push(Math.round((h.clock.now() - exitedAt) / 1000));
    }
    expect(gaps).toEqual([0, 10, 20, 40]);
    const backOff = `Warning BackOff spec.containers{crash}: Back-off restarting failed container crash in pod ${pod.metadata!.name}_default(${uid})`;
    expect(eventLines(h, pod).filter((line) => line === backOff).length).toBeGreaterThan(0);
    expect(eventLines(h, pod).filter((line) => line.startsWith('Normal Started')).length).toBe(5);
    const s = h.statuses.get(uid)!.containerStatuses![0]!;
    expect(s.restartCount).toBe(4);
    expect(s.lastState!.terminated!.exitCode).toBe(1);
    // dead container GC: the running attempt and one dead one remain
    expect(containersOf(h, uid, 'crash').map((x) => x.status.metadata.attempt).sort()).toEqual([3, 4]);
    await h.workers.stop();
  });

  it('image pull failures: ErrImagePull, then ImagePullBackOff, then it runs', async () => {
    const h = harness();
    const missing = 'registry.invalid/app:1';
    h.runtime.failPull(missing);
    const pod = makePod({ containers: [c('app', { image: missing })] });
    const uid = pod.metadata!.uid!;
    h.workers.sync(desired(pod));
    await until(() => h.statuses.get(uid)?.containerStatuses?.[0]?.state?.waiting?.reason === 'ErrImagePull', 'ErrImagePull');
    h.workers.podEvent(uid);
    await until(() => h.statuses.get(uid)?.containerStatuses?.[0]?.state?.waiting?.reason === 'ImagePullBackOff', 'ImagePullBackOff');
    h.runtime.clearPullFailure(missing);
    h.clock.advance(11_000);
    h.workers.podEvent(uid);
    await until(() => running(h, uid, 'app') !== undefined, 'running after the pull works');
    const lines = eventLines(h, pod).map((line) => line.replace(' spec.containers{app}', ''));
    expect(lines.slice(0, 5)).toEqual([
      `Normal Pulling: Pulling image "${missing}"`,
      `Warning Failed: Failed to pull image "${missing}": failed to pull image "${missing}": manifest unknown`,
      'Warning Failed: Error: ErrImagePull',
      `Normal BackOff: Back-off pulling image "${missing}"`,
      'Warning Failed: Error: ImagePullBackOff',
    ]);
    expect(lines.at(-3)).toMatch(new RegExp(`^Normal Pulled: Successfully pulled image "${missing.replace(/\./g, '\\.')}" in \\d+m?s \\(\\d+m?s including waiting\\)\\. Image size: \\d+ bytes\\.$`));
    expect(lines.slice(-2)).toEqual(['Normal Created: Created container: app', 'Normal Started: Started container app']);
    await h.workers.stop();
  });

  it('a missing configMap is CreateContainerConfigError; Never-pull of a missing image is ErrImageNeverPull', async () => {
    const h = harness();
    const pod = makePod({ containers: [c('a', { env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k' } } }] }), c('b', { image: 'absent:1', imagePullPolicy: 'Never' })] });
    h.workers.sync(desired(pod));
    await until(() => h.statuses.get(pod.metadata!.uid!)?.containerStatuses?.every((s) => s.state?.waiting?.reason !== 'ContainerCreating') === true, 'reasons');
    const reasons = h.statuses.get(pod.metadata!.uid!)!.containerStatuses!.map((s) => [s.state!.waiting!.reason, s.state!.waiting!.message]);
    expect(reasons).toEqual([['CreateContainerConfigError', 'configmap "nope" not found'], ['ErrImageNeverPull', 'Container image "absent:1" is not present with pull policy of Never']]);
    const lines = eventLines(h, pod);
    expect(lines).toContain('Warning Failed spec.containers{a}: Error: configmap "nope" not found');
    expect(lines).toContain('Warning ErrImageNeverPull spec.containers{b}: Container image "absent:1" is not present with pull policy of Never');
    expect(lines).toContain('Warning Failed spec.containers{b}: Error: ErrImageNeverPull');
    await h.workers.stop();
  });

  it('a changed container is restarted; a changed sandbox recreates the pod', async () => {
    const h = harness();
    const pod = makePod({ containers: [c('a'), c('b')] });
    const uid = pod.metadata!.uid!;
    h.workers.sync(desired(pod));
    await until(() => phase(h, pod) === 'Running', 'Running');
    const bId = running(h, uid, 'b')!.id;
    const changed = structuredClone(pod);
    changed.spec!.containers[0]!.command = ['sleep', '7200'];
    h.workers.sync(desired(changed));
    await until(() => running(h, uid, 'a')?.config.command?.[1] === '7200', 'a restarted with the new command');
    expect(running(h, uid, 'b')!.id).toBe(bId);
    expect(h.runtime.sandboxes.size).toBe(1);
    const host = structuredClone(changed);
    host.spec!.hostNetwork = true;
    h.workers.sync(desired(host));
    await until(() => [...h.runtime.sandboxes.values()].some((s) => s.state === 'SANDBOX_READY' && s.config.linux?.securityContext?.namespaceOptions?.network === 'NODE'), 'host-network sandbox');
    await until(() => running(h, uid, 'a') !== undefined && running(h, uid, 'b') !== undefined, 'containers in the new sandbox');
    expect(running(h, uid, 'b')!.id).not.toBe(bId);
    expect([...h.runtime.sandboxes.values()].filter((s) => s.state === 'SANDBOX_READY')).toHaveLength(1);
    const lines = eventLines(h, pod);
    expect(lines).toContain('Normal Killing spec.containers{a}: Container a definition changed, will be restarted');
    expect(lines.filter((line) => line.includes('SandboxChanged'))).toEqual(['Normal SandboxChanged: Pod sandbox changed, it will be killed and re-created.']);
    const afterChange = lines.slice(lines.indexOf('Normal SandboxChanged: Pod sandbox changed, it will be killed and re-created.'));
    expect(afterChange).toContain('Normal Killing spec.containers{b}: Stopping container b');
    expect(afterChange.filter((line) => line.startsWith('Normal Started'))).toHaveLength(2);
    await h.workers.stop();
  });

  it('another pod or a status-only update does not resync a running pod; a label change does', async () => {
    const h = harness();
    const pod = makePod({ containers: [c('a')] });
    const uid = pod.metadata!.uid!;
    const syncsOf = () => h.reports.byUid.get(uid) ?? 0;
    h.workers.sync(desired(pod));
    await until(() => phase(h, pod) === 'Running', 'Running');
    await new Promise((resolve) => setTimeout(resolve, 20));
    const before = syncsOf();
    // What the API watch echoes after our own status patch, plus a new pod of another source.
    const echoed: V1Pod = { ...structuredClone(pod), metadata: { ...pod.metadata, resourceVersion: '42' }, status: { phase: 'Running' } };
    const other = makePod({ containers: [c('a')] });
    h.workers.sync(desired(echoed, other));
    await until(() => phase(h, other) === 'Running', 'the other pod Running');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(syncsOf()).toBe(before);
    expect(h.workers.get(uid)!.currentPod.metadata!.resourceVersion).toBe('42');
    h.workers.sync(desired({ ...echoed, metadata: { ...echoed.metadata, labels: { tier: 'web' } } }, other));
    await until(() => syncsOf() > before, 'a resync after the label change');
    await h.workers.stop();
  });

  it('restartPolicy Never: Succeeded, nothing restarted, sandbox stopped', async () => {
    const h = harness();
    const pod = makePod({ restartPolicy: 'Never', containers: [c('job')] });
    const uid = pod.metadata!.uid!;
    h.workers.sync(desired(pod));
    await until(() => running(h, uid, 'job') !== undefined, 'job running');
    h.runtime.exitContainer(running(h, uid, 'job')!.id, 0);
    h.workers.podEvent(uid);
    await until(() => phase(h, pod) === 'Succeeded', 'Succeeded');
    await until(() => [...h.runtime.sandboxes.values()].every((s) => s.state === 'SANDBOX_NOTREADY'), 'sandbox stopped');
    h.workers.podEvent(uid);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(containersOf(h, uid, 'job')).toHaveLength(1);
    await h.workers.stop();
  });

  it('sidecar init containers keep running and are restarted', async () => {
    const h = harness();
    const pod = makePod({ initContainers: [c('side', { restartPolicy: 'Always' })], containers: [c('app')] });
    const uid = pod.metadata!.uid!;
    h.workers.sync(desired(pod));
    await until(() => phase(h, pod) === 'Running', 'Running');
    expect(running(h, uid, 'side')).toBeDefined();
    h.runtime.exitContainer(running(h, uid, 'side')!.id, 0);
    h.workers.podEvent(uid);
    await until(() => running(h, uid, 'side') !== undefined, 'sidecar restarted');
    expect(containersOf(h, uid, 'app')).toHaveLength(1);
    await h.workers.stop();
  });

  it('removal runs preStop, stops with the grace period, tears down and cleans up', async () => {
    const h = harness();
    const execs: string[][] = [];
    h.runtime.setExecHandler((_id, cmd) => {
      execs.push(cmd);
      return { stdout: '', stderr: '', exitCode: 0 };
    });
    const pod = makePod({ terminationGracePeriodSeconds: 7, containers: [c('web', { lifecycle: { preStop: { exec: { command: ['/bin/sh', '-c', 'echo bye'] } }, postStart: { exec: { command: ['touch', '/started'] } } } })] });
    const uid = pod.metadata!.uid!;
    h.workers.sync(desired(pod));
    await until(() => phase(h, pod) === 'Running', 'Running');
    expect(execs).toEqual([['touch', '/started']]);
    h.workers.sync(new Map());
    await h.workers.settle();
    expect(execs).toEqual([['touch', '/started'], ['/bin/sh', '-c', 'echo bye']]);
    const stop = h.runtime.calls.find((call) => call.method === 'stopContainer')!;
    expect(stop.args[1]).toBe(7);
    const methods = h.runtime.calls.map((call) => call.method);
    expect(methods.lastIndexOf('stopPodSandbox')).toBeGreaterThan(methods.indexOf('stopContainer'));
    expect(h.runtime.sandboxes.size).toBe(0);
    expect(h.runtime.containers.size).toBe(0);
    expect(h.terminated).toEqual([uid]);
    expect(eventLines(h, pod).at(-1)).toBe('Normal Killing spec.containers{web}: Stopping container web');
  });

  it('deletion with a grace period from the API uses that grace', async () => {
    const h = harness();
    const pod = makePod({ containers: [c('a')] });
    h.workers.sync(desired(pod));
    await until(() => phase(h, pod) === 'Running', 'Running');
    const deleting = structuredClone(pod);
    deleting.metadata!.deletionTimestamp = new Date();
    deleting.metadata!.deletionGracePeriodSeconds = 3;
    h.workers.sync(desired(deleting));
    await until(() => h.terminated.includes(pod.metadata!.uid!), 'terminated');
    expect(h.runtime.calls.find((call) => call.method === 'stopContainer')!.args[1]).toBe(3);
    expect(h.statuses.get(pod.metadata!.uid!)!.containerStatuses![0]!.state!.terminated).toBeDefined();
    await h.workers.stop();
  });

  it('a restarted agent adopts running pods without restarts or duplicates, and kills orphans', async () => {
    const first = harness();
    const pods = Array.from({ length: 5 }, () => makePod({ initContainers: [c('init', { command: ['true'] })], containers: [c('a'), c('b')] }));
    first.workers.sync(desired(...pods));
    for (const pod of pods) {
      await until(() => running(first, pod.metadata!.uid!, 'init') !== undefined, 'init');
      first.runtime.exitContainer(running(first, pod.metadata!.uid!, 'init')!.id, 0);
      first.workers.podEvent(pod.metadata!.uid!);
    }
    await until(() => pods.every((p) => phase(first, p) === 'Running'), 'all Running');
    await first.workers.stop();
    const before = first.runtime.calls.length;
    const containerCount = first.runtime.containers.size;
    // A new agent on the same runtime: one pod was deleted while it was down.
    const second = harness({}, {}, { runtime: first.runtime, clock: first.clock });
    second.workers.sync(desired(...pods.slice(0, 4)));
    await until(() => pods.slice(0, 4).every((p) => phase(second, p) === 'Running'), 'all Running again');
    const after = first.runtime.calls.slice(before).map((call) => call.method);
    expect(after).not.toContain('createContainer');
    expect(after).not.toContain('runPodSandbox');
    expect(after).not.toContain('stopContainer');
    expect(first.runtime.containers.size).toBe(containerCount);
    for (const p of pods.slice(0, 4)) expect(second.statuses.get(p.metadata!.uid!)!.containerStatuses!.map((s) => s.restartCount)).toEqual([0, 0]);
    const orphans = second.workers.cleanOrphans([...new Set([...first.runtime.containers.values()].map((x) => x.status.labels[kubeLabels.podUid]!))]);
    expect(orphans).toEqual([pods[4]!.metadata!.uid]);
    await second.workers.settle();
    expect(containersOf(second, pods[4]!.metadata!.uid!)).toHaveLength(0);
    expect(containersOf(second, pods[0]!.metadata!.uid!)).toHaveLength(3);
    await second.workers.stop();
  });
});
