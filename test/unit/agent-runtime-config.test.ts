import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { buildContainerConfig, buildSandboxConfig, linuxResources, parseResolvConf, podDnsConfig, type RuntimeConfigOptions } from '../../agent/pods/runtime-config.js';
import { VolumeError, containerMounts, projectedFiles, setUpVolumes } from '../../agent/volumes/volumes.js';
import { formatLogs, parseLogLine, streamLogs } from '../../agent/server/logs.js';
import { PassThrough } from 'node:stream';
import { mkdirSync, existsSync } from 'node:fs';
import { countPodCgroups, removePodCgroup } from '../../agent/cgroups/cgroups.js';

const options: RuntimeConfigOptions = {
  nodeName: 'n1', podLogsDir: '/var/log/pods', clusterDomain: 'cluster.local', clusterDNS: ['10.96.0.10'],
  hostDNS: { servers: ['192.0.2.53'], searches: ['corp.example'], options: ['timeout:2'] }, cgroupDriver: 'cgroupfs', cgroupRoot: '',
  cgroupsPerQOS: true, cpuCFSQuota: true, cpuCFSQuotaPeriodMs: 100, podPidsLimit: 1024,
};
const pod = (spec: Partial<V1Pod['spec']> = {}): V1Pod => ({
  metadata: { name: 'web', namespace: 'prod', uid: 'u-1', labels: { app: 'web' } },
  spec: { containers: [{ name: 'c', image: 'i:1' }], ...spec },
});
const root = mkdtempSync(join(tmpdir(), 'knode-agent-rtconf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('DNS per dnsPolicy', () => {
  it('parses resolv.conf', () => {
    expect(parseResolvConf('# c\nnameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch a.b c.d\noptions ndots:2 edns0\n')).toEqual({ servers: ['1.1.1.1', '8.8.8.8'], searches: ['a.b', 'c.d'], options: ['ndots:2', 'edns0'] });
  });
  it.each([
    ['ClusterFirst', {}, { servers: ['10.96.0.10'], searches: ['prod.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example'], options: ['ndots:5'] }],
    ['Default', { dnsPolicy: 'Default' }, { servers: ['192.0.2.53'], searches: ['corp.example'], options: ['timeout:2'] }],
    ['ClusterFirst + hostNetwork → Default', { hostNetwork: true }, { servers: ['192.0.2.53'], searches: ['corp.example'], options: ['timeout:2'] }],
    ['ClusterFirstWithHostNet', { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' }, { servers: ['10.96.0.10'], searches: ['prod.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example'], options: ['ndots:5'] }],
    ['None + dnsConfig', { dnsPolicy: 'None', dnsConfig: { nameservers: ['9.9.9.9'], searches: ['x'], options: [{ name: 'ndots', value: '1' }] } }, { servers: ['9.9.9.9'], searches: ['x'], options: ['ndots:1'] }],
    ['ClusterFirst + dnsConfig override', { dnsConfig: { options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }] } }, { servers: ['10.96.0.10'], searches: ['prod.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example'], options: ['ndots:2', 'edns0'] }],
  ])('%s', (_name, spec, expected) => expect(podDnsConfig(pod(spec as Partial<V1Pod['spec']>), options)).toEqual(expected));
});

describe('sandbox and container configs', () => {
  it('sandbox: identity labels, log dir, host network, ports, cgroup parent', () => {
    const p = pod({ hostNetwork: true, containers: [{ name: 'c', image: 'i:1', ports: [{ containerPort: 80, hostPort: 8080 }] }] });
    const config = buildSandboxConfig(p, 2, options);
    expect(config.metadata).toEqual({ name: 'web', namespace: 'prod', uid: 'u-1', attempt: 2 });
    expect(config.hostname).toBeUndefined();
    expect(config.logDirectory).toBe('/var/log/pods/prod_web_u-1');
    expect(config.labels).toMatchObject({ app: 'web', 'io.kubernetes.pod.uid': 'u-1', 'io.kubernetes.pod.name': 'web', 'io.kubernetes.pod.namespace': 'prod' });
    expect(config.portMappings).toEqual([{ protocol: 'TCP', containerPort: 80, hostPort: 8080 }]);
    expect(config.linux!.securityContext!.namespaceOptions).toEqual({ network: 'NODE', pid: 'CONTAINER', ipc: 'POD' });
    expect(config.linux!.cgroupParent).toBe('/kubepods/besteffort/podu-1');
    expect(buildSandboxConfig(pod({ hostname: 'custom' }), 0, options).hostname).toBe('custom');
  });

  it('container: hash and restart count annotations, log path, env, resources', () => {
    const p = pod({ containers: [{ name: 'c', image: 'i:1', resources: { requests: { cpu: '250m' }, limits: { cpu: '500m', memory: '64Mi' } }, securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true } }] });
    const config = buildContainerConfig(p, p.spec!.containers[0]!, 3, { env: new Map([['A', '1']]), command: ['sh'], mounts: [], oomScoreAdj: 500 }, options);
    expect(config.metadata).toEqual({ name: 'c', attempt: 3 });
    expect(config.logPath).toBe('c/3.log');
    expect(config.envs).toEqual([{ key: 'A', value: '1' }]);
    expect(config.annotations!['io.kubernetes.container.restartCount']).toBe('3');
    expect(config.annotations!['io.kubernetes.container.hash']).toMatch(/^[0-9a-f]{8}$/);
    expect(config.labels!['io.kubernetes.container.name']).toBe('c');
    expect(config.linux!.resources).toEqual({ cpuShares: 256, cpuPeriod: 100_000, cpuQuota: 50_000, memoryLimitInBytes: 64 * 2 ** 20, oomScoreAdj: 500, pidsLimit: 1024 });
    expect(config.linux!.securityContext).toMatchObject({ noNewPrivs: true, readonlyRootfs: true });
  });

  it('resources: minimum shares, no quota without a limit, OOM floor', () => {
    expect(linuxResources({ name: 'c' }, { ...options, podPidsLimit: -1 }, 1000)).toEqual({ cpuShares: 2, oomScoreAdj: 1000 });
    expect(linuxResources({ name: 'c', resources: { limits: { cpu: '1' } } }, { ...options, cpuCFSQuota: false, podPidsLimit: -1 }, -997)).toEqual({ cpuShares: 1024, oomScoreAdj: -997 });
    expect(linuxResources({ name: 'c' }, { ...options, podPidsLimit: -1, minOomScoreAdj: 0 }, -997).oomScoreAdj).toBe(0);
  });
});

describe('volumes', () => {
  const objects = {
    configMap: (n: string) => (n === 'cfg' ? { data: { 'a.conf': 'A', 'b.conf': 'B' }, binaryData: { bin: Buffer.from([1, 2]).toString('base64') } } : undefined),
    secret: (n: string) => (n === 'sec' ? { data: { token: Buffer.from('t0k').toString('base64') } } : undefined),
  };
  const ctx = { nodeName: 'n1', podIP: '10.1.1.1' };

  it('projects configMap, secret, items and modes, downward API', () => {
    const p = pod();
    expect([...projectedFiles(p, { name: 'v', configMap: { name: 'cfg' } }, objects, ctx).keys()].sort()).toEqual(['a.conf', 'b.conf', 'bin']);
    const items = projectedFiles(p, { name: 'v', configMap: { name: 'cfg', items: [{ key: 'a.conf', path: 'sub/x.conf', mode: 0o600 }] } }, objects, ctx);
    expect([...items]).toEqual([['sub/x.conf', { content: Buffer.from('A'), mode: 0o600 }]]);
    expect(projectedFiles(p, { name: 'v', secret: { secretName: 'sec', defaultMode: 0o400 } }, objects, ctx).get('token')).toEqual({ content: Buffer.from('t0k'), mode: 0o400 });
    const down = projectedFiles(p, { name: 'v', downwardAPI: { items: [{ path: 'name', fieldRef: { fieldPath: 'metadata.name' } }, { path: 'labels', fieldRef: { fieldPath: "metadata.labels['app']" } }] } }, objects, ctx);
    expect(Object.fromEntries([...down].map(([k, v]) => [k, v.content.toString()]))).toEqual({ name: 'web', labels: 'web' });
    const projected = projectedFiles(p, { name: 'v', projected: { sources: [{ configMap: { name: 'cfg', items: [{ key: 'b.conf', path: 'b' }] } }, { secret: { name: 'sec' } }] } }, objects, ctx);
    expect([...projected.keys()].sort()).toEqual(['b', 'token']);
  });

  it.each([
    ['missing configMap', { name: 'v', configMap: { name: 'nope' } }, /configmap "nope" not found/],
    ['missing key', { name: 'v', configMap: { name: 'cfg', items: [{ key: 'zz', path: 'z' }] } }, /key "zz" not found/],
    ['missing secret', { name: 'v', secret: { secretName: 'nope' } }, /secret "nope" not found/],
    ['escaping path', { name: 'v', configMap: { name: 'cfg', items: [{ key: 'a.conf', path: '../x' }] } }, /must be relative and must not contain/],
  ])('%s is an error', (_name, volume, pattern) => {
    expect(() => projectedFiles(pod(), volume, objects, ctx)).toThrow(VolumeError);
    expect(() => projectedFiles(pod(), volume, objects, ctx)).toThrow(pattern);
  });

  it('optional objects project nothing', () => {
    expect(projectedFiles(pod(), { name: 'v', configMap: { name: 'nope', optional: true } }, objects, ctx).size).toBe(0);
  });

  it('sets up volumes on disk and resolves mounts with subPath', async () => {
    const host = join(root, 'host-file');
    writeFileSync(host, 'x');
    const p = pod({ volumes: [{ name: 'e', emptyDir: {} }, { name: 'c', configMap: { name: 'cfg' } }, { name: 'h', hostPath: { path: host, type: 'File' } }, { name: 'd', hostPath: { path: join(root, 'made'), type: 'DirectoryOrCreate' } }] });
    const paths = await setUpVolumes(p, join(root, 'r'), objects, ctx);
    expect(readFileSync(join(paths.get('c')!, 'a.conf'), 'utf8')).toBe('A');
    expect(statSync(paths.get('e')!).isDirectory()).toBe(true);
    expect(statSync(join(root, 'made')).isDirectory()).toBe(true);
    const mounts = containerMounts({ name: 'c', volumeMounts: [{ name: 'c', mountPath: '/etc/c', subPath: 'a.conf', readOnly: true }, { name: 'e', mountPath: '/work' }] }, paths);
    expect(mounts[0]).toEqual({ containerPath: '/etc/c', hostPath: join(paths.get('c')!, 'a.conf'), readonly: true, propagation: 'PROPAGATION_PRIVATE' });
    expect(() => containerMounts({ name: 'c', volumeMounts: [{ name: 'zz', mountPath: '/x' }] }, paths)).toThrow(/refers to no volume/);
    expect(() => containerMounts({ name: 'c', volumeMounts: [{ name: 'e', mountPath: '/x', subPath: '../../etc' }] }, paths)).toThrow(/must not contain/);
    await expect(setUpVolumes(pod({ volumes: [{ name: 'h', hostPath: { path: join(root, 'absent'), type: 'Directory' } }] }), join(root, 'r'), objects, ctx)).rejects.toThrow(/type check failed/);
  });
});

describe('container logs', () => {
  it('parses Docker json-file and CRI lines', () => {
    expect(parseLogLine('{"log":"hi\\n","stream":"stderr","time":"2026-01-01T00:00:00.1Z"}')).toEqual({ time: '2026-01-01T00:00:00.1Z', stream: 'stderr', content: 'hi\n', partial: false });
    expect(parseLogLine('2026-01-01T00:00:00.1Z stdout P part')).toEqual({ time: '2026-01-01T00:00:00.1Z', stream: 'stdout', content: 'part', partial: true });
    expect(parseLogLine('garbage')).toBeUndefined();
  });

  const text = ['a', 'b', 'c', 'd'].map((x, i) => JSON.stringify({ log: `${x}\n`, stream: 'stdout', time: `2026-01-01T00:00:0${i}Z` })).join('\n') + '\n';
  it.each([
    [{}, 'a\nb\nc\nd\n'],
    [{ tailLines: 2 }, 'c\nd\n'],
    [{ tailLines: 0 }, ''],
    [{ timestamps: true, tailLines: 1 }, '2026-01-01T00:00:03Z d\n'],
    [{ limitBytes: 3 }, 'a\nb'],
    [{ sinceSeconds: 2, now: Date.parse('2026-01-01T00:00:04Z') }, 'c\nd\n'],
  ])('%j', (opts, expected) => expect(formatLogs(text, opts).output).toBe(expected));

  it('joins partial CRI lines', () => {
    const cri = '2026-01-01T00:00:00Z stdout P hel\n2026-01-01T00:00:00Z stdout F lo\n';
    expect(formatLogs(cri, {}).output).toBe('hello\n');
  });

  it('follows a growing file until the container stops', async () => {
    const file = join(root, 'follow.log');
    writeFileSync(file, JSON.stringify({ log: 'one\n', stream: 'stdout', time: 't' }) + '\n');
    const out = new PassThrough();
    let collected = '';
    out.on('data', (chunk: Buffer) => (collected += chunk.toString()));
    let running = true;
    const done = streamLogs(file, out, { follow: true, pollMs: 20, stillRunning: async () => running });
    await new Promise((resolve) => setTimeout(resolve, 60));
    writeFileSync(file, JSON.stringify({ log: 'one\n', stream: 'stdout', time: 't' }) + '\n' + JSON.stringify({ log: 'two\n', stream: 'stdout', time: 't' }) + '\n');
    await new Promise((resolve) => setTimeout(resolve, 100));
    running = false;
    await done;
    expect(collected).toBe('one\ntwo\n');
  });
});

describe('pod cgroups', () => {
  it('removes the pod cgroup in every hierarchy, refuses anything else', async () => {
    const cg = join(root, 'cgroup');
    for (const h of ['cpu', 'memory', 'pids']) mkdirSync(join(cg, h, 'kubepods', 'besteffort', 'podabc'), { recursive: true });
    mkdirSync(join(cg, 'memory', 'kubepods', 'besteffort', 'podabc', 'busy'), { recursive: true });
    expect(await removePodCgroup('/kubepods/besteffort/podabc', cg)).toBe(2);
    expect(existsSync(join(cg, 'cpu', 'kubepods', 'besteffort', 'podabc'))).toBe(false);
    expect(existsSync(join(cg, 'cpu', 'kubepods', 'besteffort'))).toBe(true);
    expect(existsSync(join(cg, 'memory', 'kubepods', 'besteffort', 'podabc'))).toBe(true);
    expect(await countPodCgroups('/kubepods/besteffort/podabc', cg)).toBe(1);
    await expect(removePodCgroup('/kubepods/besteffort', cg)).rejects.toThrow(/not a pod cgroup/);
    await expect(removePodCgroup('/kubepods/../podx', cg)).rejects.toThrow(/not a pod cgroup/);
  });
});
