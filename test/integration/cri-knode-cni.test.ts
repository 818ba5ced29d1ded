/**
 * The CRI runtime (runtime side of CNI) invoking knode's own CNI plugin, chained with the
 * reference portmap, exactly as a node runs them: conflist in a conf dir, plugins found in the
 * bin dirs, executed inside a test "node" netns. A real pod (pause + busybox httpd) gets its IP
 * from the knode IPAM store, answers from the node netns, and its removal returns the address.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { CniNetwork } from '../../cri/cni/network.js';
import { DockerRuntime } from '../../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { buildPluginKit, writeSubnetEnv, type PluginKit } from '../helpers/cni-harness.js';
import { removeLabelledContainers, testDocker } from '../helpers/docker.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'docker', 'command:ip', 'command:nsenter', 'command:perl', 'command:curl', 'command:iptables', 'command:ping');
const runId = randomBytes(4).toString('hex');
const scope = { 'io.knode.test': `cri-knode-cni-${runId}` };
const third = 100 + (parseInt(runId.slice(0, 2), 16) % 100);

describe.skipIf(env.skip)('CRI runtime with the knode CNI plugin in a node netns', () => {
  let docker: Docker;
  let kit: PluginKit;
  let net: TestNetwork;
  let node: Netns;
  let dir: string;
  let runtime: DockerRuntime;

  const reserved = async () => (await readdir(join(dir, 'ipam', 'knode')).catch(() => [] as string[])).filter((name) => /^\d+\.\d+\.\d+\.\d+$/.test(name));

  beforeAll(async () => {
    docker = await testDocker();
    await ensureLocalImage(docker, busyboxSpec);
    kit = await buildPluginKit('knt-cri-cni-');
    net = new TestNetwork();
    node = await net.node('node');
    dir = await mkdtemp(join(tmpdir(), 'knode-cri-cni-'));
    const subnetFile = join(dir, 'subnet.env');
    writeSubnetEnv(subnetFile, { network: '10.244.0.0/16', subnet: `10.244.${third}.1/24`, mtu: 1450, ipMasq: false });
    await mkdir(join(dir, 'net.d'));
    const conflist = {
      cniVersion: '1.0.0',
      name: 'knode',
      plugins: [
        { type: 'knode', bridge: `kc${runId.slice(0, 6)}`, subnetFile, dataDir: join(dir, 'ipam') },
        { type: 'portmap', capabilities: { portMappings: true }, snat: false },
      ],
    };
    await writeFile(join(dir, 'net.d', '10-knode.conflist'), JSON.stringify(conflist));
    runtime = new DockerRuntime({
      docker,
      sandboxRoot: join(dir, 'sandboxes'),
      scopeLabels: scope,
      sandboxStopTimeoutSeconds: 2,
      logger: createLogger('cri', 'silent'),
      network: new CniNetwork({ confDir: join(dir, 'net.d'), binDirs: [kit.binDir, '/usr/lib/cni'], cacheDir: join(dir, 'cni-cache'), hostNetns: node.path, loopback: true }),
    });
  });

  afterAll(async () => {
    if (docker) await removeLabelledContainers(docker, `io.knode.test=${scope['io.knode.test']}`);
    await net?.cleanup();
    kit?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('wires a pod with knode + portmap, serves from its IP and hostPort, and releases everything', async () => {
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    const uid = `uid-${runId}`;
    const sandboxConfig = {
      metadata: { name: 'web', namespace: 'default', uid, attempt: 0 },
      hostname: 'web',
      logDirectory: join(dir, 'logs', `default_web_${uid}`),
      portMappings: [{ protocol: 'TCP' as const, containerPort: 8080, hostPort }],
    };
    const sandboxId = await runtime.runPodSandbox(sandboxConfig);
    const podIP = (await runtime.podSandboxStatus(sandboxId)).network.ip;
    expect(podIP).toMatch(new RegExp(`^10\\.244\\.${third}\\.\\d+$`));
    expect(await reserved()).toEqual([podIP]);

    const containerId = await runtime.createContainer(
      sandboxId,
      {
        metadata: { name: 'httpd', attempt: 0 },
        image: { image: busyboxSpec.ref },
        command: ['/bin/sh', '-c'],
        args: ['mkdir -p /www && echo served-by-knode-cni > /www/index.html && exec httpd -f -p 8080 -h /www'],
        logPath: 'httpd/0.log',
      },
      sandboxConfig,
    );
    await runtime.startContainer(containerId);

    const fetch = async (url: string) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const result = await node.exec(['curl', '-s', '--max-time', '2', url], { allowFailure: true });
        if (result.code === 0) return result.stdout.trim();
        if (Date.now() > deadline) throw new Error(`no answer from ${url}: ${result.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    };
    expect(await fetch(`http://${podIP}:8080/`)).toBe('served-by-knode-cni');
    const nodeAddress = `10.244.${third}.1`;
    expect(await fetch(`http://${nodeAddress}:${hostPort}/`)).toBe('served-by-knode-cni');

    await runtime.stopContainer(containerId, 2);
    await runtime.removeContainer(containerId);
    await runtime.stopPodSandbox(sandboxId);
    await runtime.removePodSandbox(sandboxId);
    expect(await reserved()).toEqual([]);
    const unreachable = await node.exec(['ping', '-c', '1', '-W', '1', podIP], { allowFailure: true });
    expect(unreachable.code).not.toBe(0);
  });
});
