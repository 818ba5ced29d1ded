import { describe, expect, it } from 'vitest';
import { containerCreateOptions, validateContainerConfig, type ContainerCreateInput } from '../../cri/docker/container-config.js';
import { dockerAuth, normalizeImageRef } from '../../cri/docker/images.js';
import { containerName, decodeRecord, encodeRecord, fromDockerLabels, isoToNs, parseName, sandboxName, toDockerLabels } from '../../cri/docker/naming.js';
import { hostsFile, resolvConf } from '../../cri/docker/pod-files.js';
import { cniPortMappings } from '../../cri/docker/sandbox.js';
import { usageFromDockerStats } from '../../cri/docker/stats.js';
import { isCriError, type ContainerConfig } from '../../cri/runtime.js';

const pod = { name: 'web', namespace: 'default', uid: '1b4e-77', attempt: 2 };

describe('cri docker naming', () => {
  it('names sandboxes and containers like cri-dockerd and parses them back', () => {
    expect(sandboxName(pod)).toBe('k8s_POD_web_default_1b4e-77_2');
    expect(containerName({ name: 'app', attempt: 3 }, pod)).toBe('k8s_app_web_default_1b4e-77_3');
    expect(parseName('/k8s_app_web_default_1b4e-77_3')).toEqual({ container: { name: 'app', attempt: 3 }, pod: { ...pod, attempt: 3 } });
    expect(parseName('/k8s_app_web_default_1b4e-77_3_ab12cd34')?.container).toEqual({ name: 'app', attempt: 3 });
    expect(parseName('/k8s_POD_web_default_1b4e-77_2')?.pod).toEqual(pod);
    for (const bad of ['/nginx', '/k8s_a_b_c', '/k8s_a_b_c_d_x', '/x8s_a_b_c_d_1']) expect(parseName(bad)).toBeUndefined();
    expect(() => sandboxName({ ...pod, name: 'we_b' })).toThrow(/invalid pod name/);
  });

  it('stores annotations as "annotation." labels and strips internal labels on the way back', () => {
    const docker = toDockerLabels({ app: 'web' }, { 'io.kubernetes.container.hash': 'abc' });
    expect(docker).toEqual({ app: 'web', 'annotation.io.kubernetes.container.hash': 'abc' });
    const back = fromDockerLabels({ ...docker, 'io.kubernetes.docker.type': 'container', 'io.knode.cri.image': 'x', 'scope': 'me' }, { scope: 'me' });
    expect(back).toEqual({ labels: { app: 'web' }, annotations: { 'io.kubernetes.container.hash': 'abc' } });
  });

  it.each([
    ['2026-11-22T02:14:39.123456789Z', Date.parse('2026-11-22T02:14:39Z') * 1e6 + 123456789],
    ['2026-11-22T02:14:39Z', Date.parse('2026-11-22T02:14:39Z') * 1e6],
    ['2026-11-22T02:14:39.5+01:00', Date.parse('2026-11-22T01:14:39Z') * 1e6 + 500000000],
    ['0001-01-01T00:00:00Z', 0],
    ['', 0],
  ])('isoToNs(%s)', (text, expected) => {
    expect(isoToNs(text)).toBe(expected);
  });

  it('round-trips the sandbox record and tolerates garbage', () => {
    const record = { hostNetwork: true, hostname: 'h', logDirectory: '/l', filesDir: '/f' };
    expect(decodeRecord(encodeRecord(record))).toEqual(record);
    expect(decodeRecord('{oops')).toBeUndefined();
    expect(decodeRecord(undefined)).toBeUndefined();
  });
});

function input(config: Partial<ContainerConfig>, extra: Partial<ContainerCreateInput> = {}): ContainerCreateInput {
  return {
    sandboxId: 'sb1',
    sandboxConfig: { metadata: pod },
    config: { metadata: { name: 'app', attempt: 0 }, image: { image: 'busybox:1' }, ...config },
    name: 'k8s_app_web_default_1b4e-77_0',
    podFiles: { '/etc/hosts': '/files/hosts', '/etc/resolv.conf': '/files/resolv.conf' },
    scopeLabels: { node: 'n1' },
    logPath: '/var/log/pods/default_web_1b4e-77/app/0.log',
    logMaxSize: '10m',
    logMaxFiles: 5,
    ...extra,
  };
}

describe('cri ContainerConfig → Docker create options', () => {
  it('joins the sandbox namespaces and maps command/args/env/labels/logs', () => {
    const options = containerCreateOptions(
      input({ command: ['/bin/sh'], args: ['-c', 'echo $(X)'], envs: [{ key: 'A', value: 'b=c' }], workingDir: '/w', labels: { l: '1' }, annotations: { a: '2' } }),
    );
    expect(options).toMatchObject({ Image: 'busybox:1', Entrypoint: ['/bin/sh'], Cmd: ['-c', 'echo $(X)'], Env: ['A=b=c'], WorkingDir: '/w' });
    expect(options.HostConfig).toMatchObject({ NetworkMode: 'container:sb1', IpcMode: 'container:sb1', PidMode: '', LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '5' } } });
    expect(options.Labels).toMatchObject({
      l: '1',
      'annotation.a': '2',
      node: 'n1',
      'io.kubernetes.docker.type': 'container',
      'io.kubernetes.sandbox.id': 'sb1',
      'io.kubernetes.pod.name': 'web',
      'io.kubernetes.container.name': 'app',
      'io.kubernetes.container.logpath': '/var/log/pods/default_web_1b4e-77/app/0.log',
    });
  });

  it('keeps the image entrypoint/cmd when command/args are absent', () => {
    const options = containerCreateOptions(input({}));
    expect(options.Entrypoint).toBeUndefined();
    expect(options.Cmd).toBeUndefined();
  });

  it.each([
    ['pid POD', { linux: { securityContext: { namespaceOptions: { pid: 'POD' as const } } } }, { PidMode: 'container:sb1' }],
    ['pid NODE', { linux: { securityContext: { namespaceOptions: { pid: 'NODE' as const } } } }, { PidMode: 'host' }],
    [
      'resources',
      { linux: { resources: { cpuShares: 1, cpuPeriod: 100000, cpuQuota: 50000, memoryLimitInBytes: 64 << 20, pidsLimit: 100, oomScoreAdj: 999 } } },
      { CpuShares: 2, CpuPeriod: 100000, CpuQuota: 50000, Memory: 64 << 20, MemorySwap: 64 << 20, PidsLimit: 100, OomScoreAdj: 999 },
    ],
    [
      'security',
      { linux: { securityContext: { privileged: false, readonlyRootfs: true, noNewPrivs: true, capabilities: { addCapabilities: ['NET_ADMIN'], dropCapabilities: ['ALL'] }, supplementalGroups: [5] } } },
      { ReadonlyRootfs: true, SecurityOpt: ['no-new-privileges'], CapAdd: ['NET_ADMIN'], CapDrop: ['ALL'], GroupAdd: ['5'] },
    ],
    ['privileged', { linux: { securityContext: { privileged: true, maskedPaths: ['/proc/kcore'] } } }, { Privileged: true }],
  ])('maps %s', (_name, config, expected) => {
    expect(containerCreateOptions(input(config as Partial<ContainerConfig>)).HostConfig).toMatchObject(expected);
  });

  it('does not mask paths of privileged containers', () => {
    const hostConfig = containerCreateOptions(input({ linux: { securityContext: { privileged: true, maskedPaths: ['/proc/kcore'] } } })).HostConfig ?? {};
    expect('MaskedPaths' in hostConfig).toBe(false);
  });

  it('maps runAsUser/runAsGroup and runAsUsername', () => {
    expect(containerCreateOptions(input({ linux: { securityContext: { runAsUser: 1000, runAsGroup: 3000 } } })).User).toBe('1000:3000');
    expect(containerCreateOptions(input({ linux: { securityContext: { runAsUsername: 'nobody' } } })).User).toBe('nobody');
    expect(containerCreateOptions(input({})).User).toBeUndefined();
  });

  it('bind-mounts volumes with readOnly/propagation and adds pod files not covered by a mount', () => {
    const options = containerCreateOptions(
      input({
        mounts: [
          { containerPath: '/data', hostPath: '/v/data', readonly: true },
          { containerPath: '/etc/hosts', hostPath: '/kubelet/etc-hosts', propagation: 'PROPAGATION_HOST_TO_CONTAINER' },
        ],
      }),
    );
    expect(options.HostConfig?.Mounts).toEqual([
      { Type: 'bind', Source: '/v/data', Target: '/data', ReadOnly: true, BindOptions: { Propagation: 'rprivate' } },
      { Type: 'bind', Source: '/kubelet/etc-hosts', Target: '/etc/hosts', ReadOnly: false, BindOptions: { Propagation: 'rslave' } },
      { Type: 'bind', Source: '/files/resolv.conf', Target: '/etc/resolv.conf', ReadOnly: false, BindOptions: { Propagation: 'rprivate' } },
    ]);
  });

  it.each([
    ['empty image', { image: { image: '' } }],
    ['relative mount', { mounts: [{ containerPath: 'data', hostPath: '/x' }] }],
    ['dotdot mount', { mounts: [{ containerPath: '/a/../etc', hostPath: '/x' }] }],
    ['relative host path', { mounts: [{ containerPath: '/a', hostPath: 'x' }] }],
    ['bad env', { envs: [{ key: 'A=B', value: '1' }] }],
    ['relative workingDir', { workingDir: 'w' }],
  ])('rejects %s', (_name, config) => {
    const full = { metadata: { name: 'app', attempt: 0 }, image: { image: 'busybox:1' }, ...config } as ContainerConfig;
    expect(() => validateContainerConfig(full)).toThrow(expect.objectContaining({ code: 'InvalidArgument', container: 'app' }));
    try {
      validateContainerConfig(full);
    } catch (error) {
      expect(isCriError(error, 'InvalidArgument')).toBe(true);
    }
  });
});

describe('cri pod files, ports, images, stats', () => {
  it('writes resolv.conf and hosts like the kubelet', () => {
    expect(resolvConf({ servers: ['10.96.0.10'], searches: ['ns.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] })).toBe(
      'search ns.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n',
    );
    expect(resolvConf(undefined)).toBe('');
    const hosts = hostsFile('web', ['10.244.1.5']);
    expect(hosts).toContain('127.0.0.1\tlocalhost\n');
    expect(hosts.endsWith('10.244.1.5\tweb\n')).toBe(true);
  });

  it('passes only ports with a hostPort to the portMappings capability', () => {
    expect(
      cniPortMappings([
        { protocol: 'TCP', containerPort: 80, hostPort: 8080, hostIp: '127.0.0.1' },
        { protocol: 'UDP', containerPort: 53 },
      ]),
    ).toEqual([{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1' }]);
  });

  it.each([
    ['busybox', 'busybox:latest'],
    ['busybox:1', 'busybox:1'],
    ['localhost:5000/a/b', 'localhost:5000/a/b:latest'],
    ['localhost:5000/a/b:2', 'localhost:5000/a/b:2'],
    ['x@sha256:abc', 'x@sha256:abc'],
  ])('normalizes %s', (ref, expected) => {
    expect(normalizeImageRef(ref)).toBe(expected);
  });

  it('turns a dockerconfigjson auth into Docker credentials for the right registry', () => {
    const auth = Buffer.from('user:pa:ss').toString('base64');
    expect(dockerAuth({ auth }, 'registry.example:5000/app:1')).toEqual({ serveraddress: 'registry.example:5000', username: 'user', password: 'pa:ss' });
    expect(dockerAuth({ username: 'u', password: 'p' }, 'library/busybox')).toEqual({ serveraddress: 'https://index.docker.io/v1/', username: 'u', password: 'p' });
    expect(dockerAuth(undefined, 'x')).toBeUndefined();
  });

  it.each([
    ['cgroup v2', { usage: 100, stats: { inactive_file: 30, anon: 50, pgfault: 7, pgmajfault: 1 } }, 0, { workingSetBytes: 70, rssBytes: 50, pageFaults: 7, majorPageFaults: 1 }],
    ['cgroup v1', { usage: 100, stats: { total_inactive_file: 40, total_rss: 20 } }, 200, { workingSetBytes: 60, rssBytes: 20, availableBytes: 140 }],
    ['floored at 0', { usage: 10, stats: { inactive_file: 30 } }, 0, { workingSetBytes: 0 }],
  ])('computes the memory working set (%s)', (_name, memory, limit, expected) => {
    const usage = usageFromDockerStats({ memory_stats: memory, cpu_stats: { cpu_usage: { total_usage: 5 } } }, limit, 1);
    expect(usage.memory).toMatchObject(expected);
    expect(usage.cpu.usageCoreNanoSeconds).toBe(5);
  });
});

describe('cri log size', () => {
  it.each([
    ['10Mi', '10485760'],
    ['1G', '1000000000'],
    ['512', '512'],
    ['10m', '10m'],
  ])('dockerLogSize(%s)', async (size, expected) => {
    const { dockerLogSize } = await import('../../cri/docker/context.js');
    expect(dockerLogSize(size)).toBe(expected);
  });
});
