/**
 * Issue 25 item 9, against the real kernel: each case is what a hostile or merely unusual caller
 * did to the knode CNI plugin. The plugin runs in a test "node" netns, pods are test netns;
 * nothing touches the root netns (the host-netns case uses the node netns, which is the plugin's
 * own; /proc/1/ns/net is covered by the unit test without running any verb on it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PluginRunner } from '../../lib/cni/invoke.js';
import { processStartTime } from '../../cni/ipam-store.js';
import { invoke, pluginNode, startPluginDaemon, type PluginNode } from '../helpers/cni-harness.js';
import type { Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'command:ip', 'command:nsenter', 'command:perl');
const cniPath = '/usr/lib/cni';

describe.skipIf(env.skip)('issue 25 item 9: CNI plugin hardening (netns)', () => {
  let fx: PluginNode;
  let sleeper: ChildProcess | undefined;
  let pods = 0;

  const ips = () => readdirSync(join(fx.dataDir, 'knh')).filter((name) => /^\d+\.\d+\.\d+\.\d+$/.test(name));
  const call = (command: string, extra: Record<string, string | undefined>, body: unknown = fx.conf, socket = '/nonexistent.sock') =>
    invoke({ nodeNs: fx.node.name, plugin: fx.plugin, conf: body, env: { CNI_COMMAND: command, CNI_PATH: `${fx.kit.binDir}:${cniPath}`, KNODE_CNI_SOCKET: socket, ...extra } });
  const podEnv = (pod: Netns, id: string) => ({ CNI_CONTAINERID: id, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0' });

  beforeAll(async () => {
    fx = await pluginNode({ prefix: 'knt-cnih-', role: 'h', name: 'knh', subnet: '10.244.9.1/24' });
  });
  afterAll(async () => {
    sleeper?.kill('SIGKILL');
    await fx?.cleanup();
  });

  it('issue 25 item 9: VERSION ignores every variable but CNI_COMMAND (libcni placeholders), standalone and via the daemon', async () => {
    const placeholders = { CNI_CONTAINERID: '', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_ARGS: '', CNI_PATH: 'dummy' };
    const garbage = { CNI_CONTAINERID: '../..', CNI_NETNS: 'relative/path', CNI_IFNAME: 'way-too-long-interface-name/x', CNI_ARGS: ';;=;', CNI_PATH: '\u0001' };
    const daemon = await startPluginDaemon(fx.kit, fx.node.name);
    try {
      for (const socket of ['/nonexistent.sock', fx.kit.socket]) {
        for (const vars of [placeholders, garbage]) {
          for (const stdin of ['{"cniVersion":"1.1.0"}', '', 'not json']) {
            const result = await invoke({ nodeNs: fx.node.name, plugin: fx.plugin, conf: {}, stdin, env: { CNI_COMMAND: 'VERSION', KNODE_CNI_SOCKET: socket, ...vars } });
            expect(result.code, `${socket} ${JSON.stringify(vars)} ${stdin}: ${result.stdout}`).toBe(0);
            expect(result.json.supportedVersions).toEqual(expect.arrayContaining(['1.0.0', '1.1.0']));
          }
        }
      }
    } finally {
      await daemon.stop();
    }
  });

  it('issue 25 item 9: a libcni-style VERSION call (knode runtime side) gets the versions of knode and of the reference bridge', async () => {
    const runner = new PluginRunner({ binDirs: [fx.kit.binDir, cniPath], hostNetns: fx.node.path });
    expect(await runner.versions('knode')).toEqual(expect.arrayContaining(['0.3.1', '0.4.0', '1.0.0', '1.1.0']));
    expect(await runner.versions('bridge')).toEqual(expect.arrayContaining(['1.0.0']));
  });

  it('issue 25 item 9: a lock file holding a live but unrelated pid (pid reuse) does not block ADD/DEL', async () => {
    sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
    const pid = sleeper.pid!;
    const realStart = processStartTime(pid)!;
    expect(realStart).toMatch(/^\d+$/);
    const lock = join(fx.dataDir, 'knh', 'lock');
    mkdirSync(join(fx.dataDir, 'knh'), { recursive: true });
    // Same pid, another start time: the pid was reused by an unrelated process.
    writeFileSync(lock, `${pid} ${Number(realStart) + 12345}`);
    const pod = await fx.net.namespace(`p${++pods}`);
    let started = Date.now();
    const add = await call('ADD', podEnv(pod, 'c-lock'));
    expect(add.code, add.stdout).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    // A bare pid (another writer's format) that is alive: broken once older than any real hold.
    writeFileSync(lock, String(pid));
    const past = new Date(Date.now() - 60_000);
    utimesSync(lock, past, past);
    started = Date.now();
    const del = await call('DEL', podEnv(pod, 'c-lock'));
    expect(del.code, del.stdout).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(ips()).toEqual([]);
  });

  it('issue 25 item 9: a non-bridge device named as `bridge` is refused with a CNI error, nothing reserved or wired', async () => {
    await fx.node.ip('link', 'add', 'knhv0', 'type', 'veth', 'peer', 'name', 'knhv1');
    const pod = await fx.net.namespace(`p${++pods}`);
    const add = await call('ADD', podEnv(pod, 'c-notbridge'), { ...fx.conf, bridge: 'knhv0' });
    expect(add.code).toBe(1);
    expect(add.json).toMatchObject({ code: 4 });
    expect(String(add.json.msg)).toMatch(/"knhv0" already exists and is a veth device/);
    expect((await fx.node.ip('-o', 'addr', 'show', 'dev', 'knhv0')).stdout).not.toContain('10.244.9.1');
    expect((await fx.node.ip('-o', 'link', 'show')).stdout).not.toMatch(/ knv[0-9a-f]+@/);
    expect((await pod.ip('-o', 'link', 'show')).stdout).not.toContain('eth0');
    expect(ips()).toEqual([]);
  });

  it('issue 25 item 9: never leaves the gateway address on lo (bridge "lo" refused)', async () => {
    const pod = await fx.net.namespace(`p${++pods}`);
    const add = await call('ADD', podEnv(pod, 'c-lo'), { ...fx.conf, bridge: 'lo' });
    expect(add.code).toBe(1);
    expect(add.json).toMatchObject({ code: 4 });
    expect(String(add.json.msg)).toMatch(/bridge.*loopback/);
    expect((await fx.node.ip('-o', 'addr', 'show', 'dev', 'lo')).stdout).not.toContain('10.244.');
    expect(ips()).toEqual([]);
  });

  it("issue 25 item 9: the plugin's own (host) netns is refused as CNI_NETNS", async () => {
    for (const netns of [fx.node.path, '/proc/self/ns/net']) {
      const add = await call('ADD', { CNI_CONTAINERID: 'c-host', CNI_NETNS: netns, CNI_IFNAME: 'eth9' });
      expect(add.code, netns).toBe(1);
      expect(add.json, netns).toMatchObject({ code: 7 });
      expect(String(add.json.msg)).toContain("host's own network namespace");
    }
    expect((await fx.node.ip('-o', 'link', 'show')).stdout).not.toMatch(/\beth9\b| knv[0-9a-f]+@/);
    expect(ips()).toEqual([]);
  });
});
