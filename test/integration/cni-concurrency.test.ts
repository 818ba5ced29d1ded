/**
 * The plugin under load and under failure, in a test node netns: 200 concurrent ADDs through the
 * daemon fast path (Perl launcher → unix socket) get 200 distinct IPs and DEL empties the store;
 * concurrent standalone processes share the on-disk lock; kill -9 in the middle of an ADD leaves
 * nothing that GC does not clean, and the next ADD is not blocked by the dead process's lock.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { buildPluginKit, invoke, startPluginDaemon, writeSubnetEnv, type PluginKit } from '../helpers/cni-harness.js';

const env = await prerequisites('root', 'command:ip', 'command:nsenter', 'command:perl');

describe.skipIf(env.skip)('knode CNI plugin under concurrency and kill -9 (netns)', () => {
  const net = new TestNetwork();
  let kit: PluginKit;
  let node: Netns;
  let plugin: string;
  let conf: Record<string, unknown>;
  let dataDir: string;
  const noDaemon = { KNODE_CNI_SOCKET: '/nonexistent/knode-cni.sock' };

  const ips = (name = 'knt') => (existsSync(join(dataDir, name)) ? readdirSync(join(dataDir, name)).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n)) : []);
  const knvLinks = async () => (await node.ip('-o', 'link', 'show')).stdout.split('\n').filter((line) => / knv[0-9a-f]+@/.test(line));
  const call = (command: string, pod: Netns | undefined, id: string, extra: Record<string, string> = {}, body: unknown = conf) =>
    invoke({ nodeNs: node.name, plugin, conf: body, env: { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: pod?.path, CNI_IFNAME: 'eth0', CNI_PATH: kit.binDir, ...extra } });

  beforeAll(async () => {
    kit = await buildPluginKit();
    plugin = join(kit.binDir, 'knode');
    node = await net.node('n');
    const subnetFile = join(kit.dir, 'subnet.env');
    dataDir = join(kit.dir, 'data');
    writeSubnetEnv(subnetFile, { network: '10.244.0.0/16', subnet: '10.244.3.1/24', ipMasq: true });
    conf = { cniVersion: '1.0.0', name: 'knt', type: 'knode', subnetFile, dataDir };
  });
  afterAll(async () => {
    await net.cleanup();
    kit?.cleanup();
  });

  it('200 concurrent ADDs via the daemon get 200 distinct IPs; DEL of all empties the store', async () => {
    const daemon = await startPluginDaemon(kit, node.name);
    try {
      const pods: Netns[] = [];
      for (let i = 0; i < 200; i++) pods.push(await net.namespace(`c${i}`));
      const adds = await Promise.all(pods.map((pod, i) => call('ADD', pod, `c200-${i}`)));
      for (const add of adds) expect(add.code, add.stdout + add.stderr).toBe(0);
      // Every request was served by the daemon, not by the in-process fallback.
      expect(adds.filter((add) => add.stderr.includes('running in-process'))).toEqual([]);
      const addresses = adds.map((add) => (add.json.ips as { address: string }[])[0]!.address);
      expect(new Set(addresses).size).toBe(200);
      expect(addresses).not.toContain('10.244.3.1/24');
      expect(ips()).toHaveLength(200);
      expect(await knvLinks()).toHaveLength(200);
      const dels = await Promise.all(pods.map((pod, i) => call('DEL', pod, `c200-${i}`)));
      for (const del of dels) expect(del.code, del.stdout).toBe(0);
      expect(ips()).toEqual([]);
      expect(await knvLinks()).toEqual([]);
    } finally {
      await daemon.stop();
    }
  }, 240_000);

  it('concurrent standalone plugin processes never share an IP', async () => {
    const pods: Netns[] = [];
    for (let i = 0; i < 24; i++) pods.push(await net.namespace(`s${i}`));
    const solo = { ...conf, name: 'knt-solo' };
    const adds = await Promise.all(pods.map((pod, i) => call('ADD', pod, `solo-${i}`, noDaemon, solo)));
    for (const add of adds) expect(add.code, add.stdout + add.stderr).toBe(0);
    expect(new Set(adds.map((add) => (add.json.ips as { address: string }[])[0]!.address)).size).toBe(24);
    await Promise.all(pods.map((pod, i) => call('DEL', pod, `solo-${i}`, noDaemon, solo)));
    expect(ips('knt-solo')).toEqual([]);
  }, 180_000);

  it('kill -9 in the middle of ADD leaves nothing that GC does not clean', async () => {
    for (let round = 0; round < 3; round++) {
      const pod = await net.namespace(`k${round}`);
      const child = spawn('ip', ['netns', 'exec', node.name, plugin], {
        env: { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `killed-${round}`, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: kit.binDir, ...noDaemon },
        stdio: ['pipe', 'ignore', 'ignore'],
        detached: true,
      });
      child.stdin.end(JSON.stringify(conf));
      const deadline = Date.now() + 30_000;
      // Kill at a different point each round: as soon as the reservation exists, or a little later.
      while (ips().length === 0 && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
      await new Promise((r) => setTimeout(r, round * 15));
      process.kill(-child.pid!, 'SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    }
    const gc = await call('GC', undefined, '', {}, { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] });
    expect(gc.code, gc.stdout).toBe(0);
    expect(ips()).toEqual([]);
    expect(await knvLinks()).toEqual([]);
    const pod = await net.namespace('after');
    const add = await call('ADD', pod, 'after-kill', noDaemon);
    expect(add.code, add.stdout).toBe(0);
    expect((await call('DEL', pod, 'after-kill', noDaemon)).code).toBe(0);
    expect(ips()).toEqual([]);
  }, 180_000);
});
