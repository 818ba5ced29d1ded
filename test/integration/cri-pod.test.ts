/**
 * The Docker runtime end to end against the real Docker Engine and real network namespaces: a
 * pod wired by the reference CNI plugins (bridge + host-local + portmap) executed inside a test
 * "node" netns, so nothing touches the root namespace.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { CniNetwork } from '../../cri/cni/network.js';
import { DockerRuntime } from '../../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { isCriError, type ContainerConfig, type PodSandboxConfig } from '../../cri/runtime.js';
import { removeLabelledContainers, testDocker } from '../helpers/docker.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { onPath, prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

/** One HTTP/1.0 GET through the runtime's port-forward; resolves with the whole answer. */
async function forwardGet(runtime: DockerRuntime, sandboxId: string, port: number, path: string): Promise<string> {
  const input = new PassThrough();
  const output = new PassThrough();
  const chunks: Buffer[] = [];
  output.on('data', (chunk: Buffer) => chunks.push(chunk));
  input.end(`GET ${path} HTTP/1.0\r\n\r\n`);
  await runtime.portForward(sandboxId, port, Duplex.from({ readable: input, writable: output }));
  return Buffer.concat(chunks).toString('utf8');
}

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:curl', 'command:ping', 'command:socat');
const cniBin = '/usr/lib/cni';
const haveCni = onPath('ip') && (await stat(join(cniBin, 'bridge')).then(() => true, () => false));

const runId = randomBytes(4).toString('hex');
const scope = { 'io.knode.test': `cri-pod-${runId}` };
const subnet = `10.${200 + (parseInt(runId.slice(0, 2), 16) % 50)}.${parseInt(runId.slice(2, 4), 16)}.0/24`;

describe.skipIf(env.skip || !haveCni)('cri docker runtime: pods with CNI in a node netns', () => {
  let docker: Docker;
  let net: TestNetwork;
  let node: Netns;
  let dir: string;
  let ipamDir: string;
  let runtime: DockerRuntime;
  let busybox: string;

  const options = () => ({
    docker,
    sandboxRoot: join(dir, 'sandboxes'),
    scopeLabels: scope,
    sandboxStopTimeoutSeconds: 2,
    logger: createLogger('cri', 'silent'),
    network: new CniNetwork({ confDir: join(dir, 'net.d'), binDirs: [cniBin], cacheDir: join(dir, 'cni-cache'), hostNetns: node.path, loopback: true }),
  });

  beforeAll(async () => {
    docker = await testDocker();
    busybox = await ensureLocalImage(docker, busyboxSpec);
    net = new TestNetwork();
    node = await net.node('node');
    dir = await mkdtemp(join(tmpdir(), 'knode-cri-pod-'));
    ipamDir = join(dir, 'ipam');
    await mkdir(join(dir, 'net.d'), { recursive: true });
    const conflist = {
      cniVersion: '1.0.0',
      name: `knt${runId}`,
      plugins: [
        { type: 'bridge', bridge: `kb${runId}`, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: ipamDir, ranges: [[{ subnet }]] } },
        { type: 'portmap', capabilities: { portMappings: true }, snat: false },
      ],
    };
    await writeFile(join(dir, 'net.d', '10-test.conflist'), JSON.stringify(conflist));
    runtime = new DockerRuntime(options());
  });

  afterAll(async () => {
    if (docker) await removeLabelledContainers(docker, `io.knode.test=${scope['io.knode.test']}`);
    await net?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function sandboxConfig(name: string, extra: Partial<PodSandboxConfig> = {}): PodSandboxConfig {
    const uid = `uid-${runId}-${name}`;
    return {
      metadata: { name, namespace: 'default', uid, attempt: 0 },
      hostname: name,
      logDirectory: join(dir, 'logs', `default_${name}_${uid}`),
      dnsConfig: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] },
      labels: { app: name, 'io.kubernetes.pod.name': name },
      annotations: { note: 'hello' },
      ...extra,
    };
  }

  function container(name: string, args: string[], extra: Partial<ContainerConfig> = {}): ContainerConfig {
    return {
      metadata: { name, attempt: 0 },
      image: { image: busybox },
      command: ['/bin/sh', '-c'],
      args,
      logPath: `${name}/0.log`,
      labels: { 'io.kubernetes.container.name': name },
      annotations: { 'io.kubernetes.container.restartCount': '0' },
      ...extra,
    };
  }


  it('runs a pod with an init container and two app containers sharing a netns, reachable from the node, and cleans up', async () => {
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    const config = sandboxConfig('web', { portMappings: [{ protocol: 'TCP', containerPort: 8080, hostPort }] });
    const emptyDir = join(dir, 'volumes', 'work');
    await mkdir(emptyDir, { recursive: true });
    const mounts = [{ containerPath: '/work', hostPath: emptyDir }];
    const sandboxId = await runtime.runPodSandbox(config);
    const status = await runtime.podSandboxStatus(sandboxId);
    expect(status.state).toBe('SANDBOX_READY');
    expect(status.metadata).toEqual(config.metadata);
    expect(status.annotations).toEqual({ note: 'hello' });
    const podIP = status.network.ip;
    expect(podIP.startsWith(subnet.split('.').slice(0, 3).join('.'))).toBe(true);
    const sandboxInfo = await docker.getContainer(sandboxId).inspect();
    expect(sandboxInfo.Name).toBe(`/k8s_POD_web_default_${config.metadata.uid}_0`);
    expect(sandboxInfo.Config.Labels).toMatchObject({ 'io.kubernetes.docker.type': 'podsandbox', 'io.kubernetes.container.name': 'POD', 'io.kubernetes.pod.uid': config.metadata.uid });

    // init container runs to completion first
    const init = await runtime.createContainer(sandboxId, container('init', ['echo init-done > /work/index.html'], { mounts }), config);
    await runtime.startContainer(init);
    const initStatus = await waitFor('init to exit', async () => {
      const s = await runtime.containerStatus(init);
      return s.state === 'CONTAINER_EXITED' ? s : undefined;
    });
    expect(initStatus.exitCode).toBe(0);
    expect(initStatus.reason).toBe('Completed');

    const web = await runtime.createContainer(sandboxId, container('web', ['exec httpd -f -p 8080 -h /work'], { mounts: [{ ...mounts[0]!, readonly: true }] }), config);
    const client = await runtime.createContainer(sandboxId, container('client', ['echo started; exec sleep 3600'], { envs: [{ key: 'GREETING', value: 'hi there' }] }), config);
    await runtime.startContainer(web);
    await runtime.startContainer(client);
    expect((await runtime.containerStatus(web)).state).toBe('CONTAINER_RUNNING');

    // localhost between containers of the pod
    const local = await waitFor('web on localhost', async () => {
      const r = await runtime.execSync(client, ['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/index.html'], 5);
      return r.exitCode === 0 ? r : undefined;
    });
    expect(local.stdout.trim()).toBe('init-done');
    // env, hostname, resolv.conf, hosts, read-only mount
    expect((await runtime.execSync(client, ['sh', '-c', 'echo "$GREETING"'], 5)).stdout.trim()).toBe('hi there');
    expect((await runtime.execSync(client, ['hostname'], 5)).stdout.trim()).toBe('web');
    expect((await runtime.execSync(client, ['cat', '/etc/resolv.conf'], 5)).stdout).toContain('nameserver 10.96.0.10');
    expect((await runtime.execSync(client, ['cat', '/etc/hosts'], 5)).stdout).toContain(`${podIP}\tweb`);
    expect((await runtime.execSync(web, ['sh', '-c', 'echo x > /work/y'], 5)).exitCode).not.toBe(0);
    // the pod IP answers from inside the node netns
    const fromNode = await node.exec(['curl', '-sS', '--max-time', '5', `http://${podIP}:8080/index.html`], { timeoutMs: 15_000 });
    expect(fromNode.stdout.trim()).toBe('init-done');
    // hostPort through the portmap plugin (runtimeConfig.portMappings), to the node's bridge address
    const gateway = subnet.replace(/0\/24$/, '1');
    const viaHostPort = await node.exec(['curl', '-sS', '--max-time', '5', `http://${gateway}:${hostPort}/index.html`], { timeoutMs: 15_000 });
    expect(viaHostPort.stdout.trim()).toBe('init-done');
    expect((await node.exec(['iptables-save', '-t', 'nat'])).stdout).toContain(`--dport ${hostPort}`);
    // CRI log path is a link to the container's log
    const logLink = join(config.logDirectory!, 'client/0.log');
    await waitFor('client log', async () => ((await import('node:fs/promises')).readFile(logLink, 'utf8').then((t) => (t.includes('started') ? t : undefined))));

    const containers = await runtime.listContainers({ podSandboxId: sandboxId });
    expect(containers.map((c) => c.metadata.name).sort()).toEqual(['client', 'init', 'web']);
    expect(await runtime.listContainers({ podSandboxId: sandboxId, state: 'CONTAINER_RUNNING' })).toHaveLength(2);
    expect((await runtime.listPodSandbox({ labelSelector: { app: 'web' } })).map((s) => s.id)).toEqual([sandboxId]);

    // a restarted adapter rebuilds the same picture from Docker labels and the CNI cache
    const again = new DockerRuntime(options());
    expect((await again.podSandboxStatus(sandboxId)).network.ip).toBe(podIP);
    const rebuilt = await again.listContainers({ podSandboxId: sandboxId });
    expect(rebuilt.map((c) => [c.metadata.name, c.state, c.annotations['io.kubernetes.container.restartCount']]).sort()).toEqual([
      ['client', 'CONTAINER_RUNNING', '0'],
      ['init', 'CONTAINER_EXITED', '0'],
      ['web', 'CONTAINER_RUNNING', '0'],
    ]);
    expect((await again.listPodSandbox({ id: sandboxId }))[0]).toMatchObject({ metadata: config.metadata, state: 'SANDBOX_READY', labels: { app: 'web' } });

    // port-forward into the pod's netns, twice (the sandbox's pause process is then remembered),
    // refused once the sandbox is stopped (the remembered process is gone: Docker is asked again)
    for (let i = 0; i < 2; i++) expect((await forwardGet(runtime, sandboxId, 8080, '/index.html')).split('\r\n\r\n')[1]?.trim()).toBe('init-done');
    await runtime.stopPodSandbox(sandboxId);
    await expect(forwardGet(runtime, sandboxId, 8080, '/index.html')).rejects.toSatisfy((error: unknown) => isCriError(error, 'FailedPrecondition'));
    await runtime.stopPodSandbox(sandboxId); // idempotent
    expect((await runtime.podSandboxStatus(sandboxId)).state).toBe('SANDBOX_NOTREADY');
    await runtime.removePodSandbox(sandboxId);
    await runtime.removePodSandbox(sandboxId); // idempotent
    await runtime.stopContainer(web, 1); // unknown: success
    await runtime.removeContainer(web);

    expect(await docker.listContainers({ all: true, filters: { label: [`io.knode.test=${scope['io.knode.test']}`, `io.kubernetes.pod.uid=${config.metadata.uid}`] } })).toEqual([]);
    const reserved = (await readdir(join(ipamDir, `knt${runId}`)).catch(() => [] as string[])).filter((file) => /^\d+\.\d+\.\d+\.\d+$/.test(file));
    expect(reserved).toEqual([]);
    expect(await readdir(join(dir, 'cni-cache', 'results')).catch(() => [] as string[])).toEqual([]);
    await expect(stat(join(dir, 'sandboxes', `web_default_${config.metadata.uid}_0`))).rejects.toThrow();
    await expect(stat(logLink)).rejects.toThrow();
    const nat = await node.exec(['iptables-save', '-t', 'nat'], { allowFailure: true });
    expect(nat.stdout).not.toContain(`--dport ${hostPort}`);
    const ping = await node.exec(['ping', '-c', '1', '-W', '1', podIP], { allowFailure: true, timeoutMs: 10_000 });
    expect(ping.code).not.toBe(0);
    await expect(runtime.podSandboxStatus(sandboxId)).rejects.toSatisfy((error: unknown) => isCriError(error, 'NotFound'));
  });

  it('execSync returns exit codes and output and enforces timeouts; stats report CPU and memory', async () => {
    const config = sandboxConfig('exec');
    const sandboxId = await runtime.runPodSandbox(config);
    try {
      const id = await runtime.createContainer(sandboxId, container('main', ['exec sleep 3600']), config);
      await runtime.startContainer(id);
      const r = await runtime.execSync(id, ['sh', '-c', 'echo out; echo err >&2; exit 3'], 10);
      expect(r).toEqual({ stdout: 'out\n', stderr: 'err\n', exitCode: 3 });
      const started = Date.now();
      await expect(runtime.execSync(id, ['sleep', '47'], 1)).rejects.toSatisfy((error: unknown) => isCriError(error, 'DeadlineExceeded'));
      expect(Date.now() - started).toBeLessThan(20_000);
      const ps = await waitFor('the timed-out process to be killed', async () => {
        const out = await runtime.execSync(id, ['ps'], 5);
        return out.stdout.includes('sleep 47') ? undefined : out;
      });
      expect(ps.exitCode).toBe(0);
      await runtime.execSync(id, ['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; dd if=/dev/zero of=/tmp/blob bs=1024 count=2048 2>/dev/null'], 30);
      const stats = await runtime.containerStats(id);
      expect(stats.attributes.metadata.name).toBe('main');
      expect(stats.cpu.usageCoreNanoSeconds).toBeGreaterThan(0);
      expect(stats.memory.workingSetBytes).toBeGreaterThan(0);
      expect(stats.memory.workingSetBytes).toBeLessThanOrEqual(stats.memory.usageBytes ?? 0);
      expect(stats.writableLayer?.usedBytes ?? 0).toBeGreaterThanOrEqual(2 * 1024 * 1024);
      const all = await runtime.listContainerStats({ podSandboxId: sandboxId });
      expect(all.map((s) => s.attributes.id)).toEqual([id]);
      expect((await runtime.containerStats(id)).cpu.usageNanoCores).toBeGreaterThanOrEqual(0);
      // streaming exec with stdin, and attach
      const session = await runtime.exec({ containerId: id, cmd: ['sh', '-c', 'cat; echo done >&2; exit 4'], stdin: true });
      const chunks: string[] = [];
      const errors: string[] = [];
      session.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
      session.stderr?.on('data', (chunk: Buffer) => errors.push(chunk.toString()));
      session.stdin?.end('ping\n');
      expect(await session.wait()).toEqual({ exitCode: 4 });
      expect(chunks.join('')).toBe('ping\n');
      expect(errors.join('')).toBe('done\n');
      const ticker = await runtime.createContainer(sandboxId, container('ticker', ['while :; do echo tick; sleep 0.2; done']), config);
      await runtime.startContainer(ticker);
      const attached = await runtime.attach({ containerId: ticker, stdout: true, stderr: true });
      const heard = await new Promise<string>((resolve) => attached.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString())));
      expect(heard).toContain('tick');
      attached.close();

      await runtime.stopContainer(id, 2);
      const stopped = await runtime.containerStatus(id);
      expect(stopped.state).toBe('CONTAINER_EXITED');
      expect(stopped.finishedAt).toBeGreaterThanOrEqual(stopped.startedAt);
      await expect(runtime.execSync(id, ['true'], 5)).rejects.toSatisfy((error: unknown) => isCriError(error));
      await expect(runtime.reopenContainerLog(id)).rejects.toSatisfy((error: unknown) => isCriError(error, 'FailedPrecondition'));
    } finally {
      await runtime.stopPodSandbox(sandboxId);
      await runtime.removePodSandbox(sandboxId);
    }
  });

  it('applies resources and security context, and shares the pod PID namespace on request', async () => {
    const config = sandboxConfig('limits');
    const sandboxId = await runtime.runPodSandbox(config);
    try {
      const linux = {
        resources: { cpuShares: 512, cpuPeriod: 100000, cpuQuota: 50000, memoryLimitInBytes: 64 * 1024 * 1024, pidsLimit: 64 },
        securityContext: { runAsUser: 65534, runAsGroup: 65534, readonlyRootfs: true, noNewPrivs: true, capabilities: { dropCapabilities: ['ALL'] }, namespaceOptions: { pid: 'POD' as const } },
      };
      const id = await runtime.createContainer(sandboxId, container('main', ['exec sleep 3600'], { linux }), config);
      await runtime.startContainer(id);
      const info = await docker.getContainer(id).inspect();
      expect(info.HostConfig).toMatchObject({ CpuShares: 512, CpuPeriod: 100000, CpuQuota: 50000, Memory: 64 * 1024 * 1024, PidsLimit: 64, ReadonlyRootfs: true });
      const memory = await runtime.execSync(id, ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'], 5);
      expect(memory.stdout.trim()).toBe(String(64 * 1024 * 1024));
      expect((await runtime.execSync(id, ['id', '-u'], 5)).stdout.trim()).toBe('65534');
      expect((await runtime.execSync(id, ['touch', '/x'], 5)).exitCode).not.toBe(0);
      expect((await runtime.execSync(id, ['grep', 'CapEff', '/proc/self/status'], 5)).stdout).toMatch(/CapEff:\s+0+\s*$/m);
      // the pause process is visible: one PID namespace for the pod
      expect((await runtime.execSync(id, ['ps'], 5)).stdout).toContain('sleep 2147483647');
      await runtime.updateContainerResources(id, { memoryLimitInBytes: 96 * 1024 * 1024, cpuQuota: 25000, oomScoreAdj: 777 });
      expect((await docker.getContainer(id).inspect()).HostConfig).toMatchObject({ Memory: 96 * 1024 * 1024, CpuQuota: 25000 });
      // issue 23: the update path keeps oomScoreAdj (Docker's update has no such field)
      const { State } = await docker.getContainer(id).inspect();
      expect((await readFile(`/proc/${State.Pid}/oom_score_adj`, 'utf8')).trim()).toBe('777');
      await runtime.reopenContainerLog(id);
    } finally {
      await runtime.stopPodSandbox(sandboxId);
      await runtime.removePodSandbox(sandboxId);
    }
  });

  it('rejects a missing image and invalid mounts with clear errors and leaves nothing behind', async () => {
    const config = sandboxConfig('bad');
    const sandboxId = await runtime.runPodSandbox(config);
    try {
      const missing = runtime.createContainer(sandboxId, { ...container('nope', ['true']), image: { image: `knode.local/missing-${runId}:1` } }, config);
      await expect(missing).rejects.toThrow(/container "nope" of pod default\/bad.*(No such image|not found)/i);
      await expect(runtime.createContainer(sandboxId, container('m1', ['true'], { mounts: [{ containerPath: '/x', hostPath: join(dir, 'does-not-exist') }] }), config)).rejects.toThrow(
        /mount source .*does-not-exist.* does not exist/,
      );
      await expect(runtime.createContainer(sandboxId, container('m2', ['true'], { mounts: [{ containerPath: 'relative/x', hostPath: dir }] }), config)).rejects.toSatisfy(
        (error: unknown) => isCriError(error, 'InvalidArgument'),
      );
      expect(await runtime.listContainers({ podSandboxId: sandboxId })).toEqual([]);
      await expect(runtime.pullImage({ image: `127.0.0.1:1/knode-missing-${runId}:1` })).rejects.toSatisfy(
        (error: unknown) => isCriError(error) && error.reason === 'ErrImagePull' && error.message.includes('knode-missing'),
      );
      await expect(runtime.createContainer('0123456789ab', container('x', ['true']), config)).rejects.toSatisfy((error: unknown) => isCriError(error, 'NotFound'));
    } finally {
      await runtime.stopPodSandbox(sandboxId);
      await runtime.removePodSandbox(sandboxId);
    }
  });

  it('a running sandbox whose CNI ADD never finished is NotReady, never adopted without a network (agent killed mid-RunPodSandbox)', async () => {
    const id = await runtime.runPodSandbox(sandboxConfig('half'));
    try {
      expect((await runtime.listPodSandbox({ id }))[0]?.state).toBe('SANDBOX_READY');
      // What a kill between the pause container's start and the end of ADD leaves: the container
      // runs, but no CNI result was cached for it.
      const results = join(dir, 'cni-cache', 'results');
      for (const file of await readdir(results)) if (file.includes(id)) await rm(join(results, file));
      // The restarted agent's runtime finds it so.
      const restarted = new DockerRuntime(options());
      expect((await restarted.listPodSandbox({ id }))[0]?.state).toBe('SANDBOX_NOTREADY');
      expect((await restarted.listPodSandbox({ id, state: 'SANDBOX_READY' }))).toEqual([]);
      const status = await restarted.podSandboxStatus(id);
      expect(status.state).toBe('SANDBOX_NOTREADY');
      expect(status.network.ip).toBe('');
    } finally {
      await runtime.stopPodSandbox(id);
      await runtime.removePodSandbox(id);
    }
  });

  it('network GC releases the address of a sandbox removed behind the runtime\'s back', async () => {
    const config = sandboxConfig('lost');
    const keep = await runtime.runPodSandbox(sandboxConfig('kept'));
    const lost = await runtime.runPodSandbox(config);
    try {
      const ip = (await runtime.podSandboxStatus(lost)).network.ip;
      const ipamNet = join(ipamDir, `knt${runId}`);
      expect(await readdir(ipamNet)).toContain(ip);
      await docker.getContainer(lost).remove({ force: true });
      await runtime.garbageCollectNetwork();
      expect(await readdir(ipamNet)).not.toContain(ip);
      expect((await runtime.podSandboxStatus(keep)).network.ip).not.toBe('');
      expect(await readdir(ipamNet)).toContain((await runtime.podSandboxStatus(keep)).network.ip);
    } finally {
      await runtime.stopPodSandbox(keep);
      await runtime.removePodSandbox(keep);
      await runtime.removePodSandbox(lost);
    }
  });

  it.each([
    ['fails', `echo '{"cniVersion":"1.0.0","code":11,"msg":"boom from plugin"}'; exit 1`, /boom from plugin/],
    ['prints garbage', `cat >/dev/null; echo 'this is not json'; exit 0`, /invalid JSON.*this is not json/],
  ])('a CNI plugin that %s gives a clear error and no half-created sandbox', async (_what, script, expected) => {
    const pluginDir = await mkdtemp(join(dir, 'plugins-'));
    const confDir = join(pluginDir, 'net.d');
    await mkdir(confDir);
    await writeFile(join(pluginDir, 'badplugin'), `#!/bin/sh\nif [ "$CNI_COMMAND" = DEL ]; then exit 0; fi\n${script}\n`, { mode: 0o755 });
    await writeFile(join(confDir, '10-bad.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'bad', plugins: [{ type: 'badplugin' }] }));
    const bad = new DockerRuntime({ ...options(), network: new CniNetwork({ confDir, binDirs: [pluginDir], cacheDir: join(pluginDir, 'cache'), hostNetns: node.path }) });
    const config = sandboxConfig(`cni-${_what.replace(/\s/g, '')}`);
    await expect(bad.runPodSandbox(config)).rejects.toThrow(expected);
    await expect(bad.runPodSandbox(config)).rejects.toThrow(/failed to run sandbox of pod default\/cni-/);
    expect(await docker.listContainers({ all: true, filters: { label: [`io.kubernetes.pod.uid=${config.metadata.uid}`] } })).toEqual([]);
    expect(await readdir(join(dir, 'sandboxes')).then((entries) => entries.filter((e) => e.includes(config.metadata.uid)))).toEqual([]);
    expect(await readdir(join(pluginDir, 'cache', 'results')).catch(() => [] as string[])).toEqual([]);
  });
});
