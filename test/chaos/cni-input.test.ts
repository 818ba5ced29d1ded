/**
 * Chaos corpus for the knode CNI plugin (issue 25, "bad-input corpora: netconfs, CNI env"):
 * bounded lists of malformed, mistyped, huge and deeply nested network configurations and of
 * missing or garbage CNI_* variables. Every entry must be answered with CNI error JSON
 * ({cniVersion, code, msg}) and a non-zero exit, never a crash, hang or stack trace, and leave
 * nothing behind: no reserved IP, no host veth, no interface in the pod netns. The whole corpus
 * goes through the daemon's socket fast path (as deployed); a sample also through the
 * standalone executable. Everything runs in test netns: a node netns and one pod netns.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invoke, pluginNode, startPluginDaemon, type Invocation, type PluginNode } from '../helpers/cni-harness.js';
import type { Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'command:ip', 'command:nsenter', 'command:perl');

type Env = Record<string, string | undefined>;
interface Case {
  name: string;
  stdin: string;
  env: Env;
}

const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

/** Netconf corpus: each is stdin for an otherwise valid ADD. `base` is a valid config object. */
function netconfCorpus(base: Record<string, unknown>): [string, string][] {
  const json = (patch: Record<string, unknown>) => JSON.stringify({ ...base, ...patch });
  const malformed: [string, string][] = [
    ['empty', ''],
    ['whitespace', ' \n\t '],
    ['open brace', '{'],
    ['truncated', JSON.stringify(base).slice(0, -1)],
    ['trailing comma', JSON.stringify(base).replace(/}$/, ',}')],
    ['single quotes', "{'cniVersion':'1.0.0'}"],
    ['null', 'null'],
    ['array', '[]'],
    ['string', '"knode"'],
    ['number', '42'],
    ['NaN', 'NaN'],
    ['BOM', `\uFEFF${JSON.stringify(base)}`],
    ['NUL bytes', `{"cniVersion":"1.0.0\u0000","name":"x"}`],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]).toString('latin1')],
  ];
  const wrongTypes: [string, string][] = [
    ['cniVersion number', json({ cniVersion: 1 })],
    ['cniVersion null', json({ cniVersion: null })],
    ['cniVersion unknown', json({ cniVersion: '2.0.0' })],
    ['cniVersion 0.1.0', json({ cniVersion: '0.1.0' })],
    ['name number', json({ name: 5 })],
    ['name empty', json({ name: '' })],
    ['name traversal', json({ name: '../../etc' })],
    ['name with space', json({ name: 'a b' })],
    ['name huge', json({ name: 'n'.repeat(100_000) })],
    ['type number', json({ type: 7 })],
    ['subnetFile number', json({ subnetFile: 5 })],
    ['subnetFile empty', json({ subnetFile: '' })],
    ['subnetFile missing file', json({ subnetFile: '/nonexistent/subnet.env' })],
    ['subnetFile is a directory', json({ subnetFile: '/tmp' })],
    ['dataDir number', json({ dataDir: 7 })],
    ['dataDir under a file', json({ dataDir: '/dev/null/x' })],
    ['mtu string', json({ mtu: '1500' })],
    ['mtu negative', json({ mtu: -1 })],
    ['mtu huge', json({ mtu: 1e12 })],
    ['mtu fraction', json({ mtu: 1400.5 })],
    ['bridge number', json({ bridge: 5 })],
    ['bridge empty', json({ bridge: '' })],
    ['bridge slash', json({ bridge: 'a/b' })],
    ['bridge too long', json({ bridge: 'b'.repeat(16) })],
    ['bridge lo', json({ bridge: 'lo' })],
    ['bridge with space', json({ bridge: 'br 0' })],
    ['hairpinMode string', json({ hairpinMode: 'yes' })],
    ['ipMasq string', json({ ipMasq: 'true' })],
    ['ipam string', json({ ipam: 'host-local' })],
    ['ipam array', json({ ipam: [] })],
    ['ipam type number', json({ ipam: { type: 5 } })],
    ['ipam type traversal', json({ ipam: { type: '../../../bin/sh' } })],
    ['ipam type absolute', json({ ipam: { type: '/bin/sh' } })],
    ['ipam type missing plugin', json({ ipam: { type: 'no-such-ipam' } })],
    ['ipam rangeStart garbage', json({ ipam: { type: 'knode', rangeStart: 'x' } })],
    ['ipam rangeStart outside', json({ ipam: { type: 'knode', rangeStart: '10.99.0.5' } })],
    ['ipam range reversed', json({ ipam: { type: 'knode', rangeStart: '10.244.9.200', rangeEnd: '10.244.9.10' } })],
    ['valid-attachments wrong shape', json({ 'cni.dev/valid-attachments': 'all' })],
  ];
  const huge: [string, string][] = [
    ['2 MiB string field', json({ padding: 'x'.repeat(2 * 1024 * 1024) })],
    ['200k keys', JSON.stringify({ ...base, ...Object.fromEntries(Array.from({ length: 200_000 }, (_v, i) => [`k${i}`, i])) })],
  ];
  const nesting: [string, string][] = [
    ['65 levels in an unknown field', json({ extra: JSON.parse(deep(64)) as unknown })],
    ['100k levels', `{"cniVersion":"1.0.0","name":"chaos","type":"knode","x":${deep(100_000)}}`],
    ['deep prevResult', `{"cniVersion":"1.0.0","name":"chaos","type":"knode","prevResult":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`],
    ['unbalanced deep', `{"x":${'['.repeat(200_000)}`],
  ];
  return [...malformed, ...wrongTypes, ...huge, ...nesting];
}

/** Env corpus: each replaces the valid ADD environment (or one variable of it). */
function envCorpus(valid: Env, pod: Netns): [string, Env][] {
  const with_ = (patch: Env): Env => ({ ...valid, ...patch });
  return [
    ['no CNI_COMMAND', with_({ CNI_COMMAND: undefined })],
    ['empty CNI_COMMAND', with_({ CNI_COMMAND: '' })],
    ['lowercase command', with_({ CNI_COMMAND: 'add' })],
    ['command with space', with_({ CNI_COMMAND: 'ADD ' })],
    ['unknown command', with_({ CNI_COMMAND: 'RM' })],
    ['huge command', with_({ CNI_COMMAND: 'A'.repeat(100_000) })],
    ['no CNI_CONTAINERID', with_({ CNI_CONTAINERID: undefined })],
    ['containerid traversal', with_({ CNI_CONTAINERID: '../../etc' })],
    ['containerid with space', with_({ CNI_CONTAINERID: 'a b' })],
    ['containerid option-like', with_({ CNI_CONTAINERID: '-rf' })],
    ['containerid shell', with_({ CNI_CONTAINERID: 'x;reboot' })],
    ['no CNI_NETNS', with_({ CNI_NETNS: undefined })],
    ['relative netns', with_({ CNI_NETNS: 'netns/x' })],
    ['missing netns', with_({ CNI_NETNS: '/var/run/netns/knt-no-such-netns' })],
    ['netns is a file', with_({ CNI_NETNS: '/proc/self/status' })],
    ['netns is a directory', with_({ CNI_NETNS: '/tmp' })],
    ['netns is /dev/null', with_({ CNI_NETNS: '/dev/null' })],
    ['netns of the plugin itself', with_({ CNI_NETNS: '/proc/self/ns/net' })],
    ['netns is a mount namespace', with_({ CNI_NETNS: '/proc/self/ns/mnt' })],
    ['no CNI_IFNAME', with_({ CNI_IFNAME: undefined })],
    ['ifname slash', with_({ CNI_IFNAME: 'a/b' })],
    ['ifname colon', with_({ CNI_IFNAME: 'eth0:1' })],
    ['ifname too long', with_({ CNI_IFNAME: 'e'.repeat(16) })],
    ['ifname dot', with_({ CNI_IFNAME: '.' })],
    ['ifname dotdot', with_({ CNI_IFNAME: '..' })],
    ['ifname leading space', with_({ CNI_IFNAME: ' eth0' })],
    ['ifname lo (exists in the pod)', with_({ CNI_IFNAME: 'lo' })],
    ['DEL without ifname', with_({ CNI_COMMAND: 'DEL', CNI_IFNAME: undefined })],
    ['CHECK without prevResult', with_({ CNI_COMMAND: 'CHECK' })],
    ['GC on 1.0.0', with_({ CNI_COMMAND: 'GC' })],
    ['STATUS on 1.0.0', with_({ CNI_COMMAND: 'STATUS' })],
    ['CNI_ARGS garbage and huge', with_({ CNI_ARGS: `;;=;${'K8S_POD_NAME=x;'.repeat(5000)}`, CNI_IFNAME: 'e'.repeat(16) })],
    ['pod path is the pod dir of another netns type', with_({ CNI_NETNS: `${pod.path}/../../../proc/self/ns/user` })],
  ];
}

describe.skipIf(env.skip)('chaos: bad CNI input (netns)', () => {
  let fx: PluginNode;
  let pod: Netns;
  let daemon: { stop(): Promise<void> } | undefined;

  const reserved = () => {
    try {
      return readdirSync(join(fx.dataDir, 'chaos')).filter((name) => /^\d+\.\d+\.\d+\.\d+$/.test(name));
    } catch {
      return [];
    }
  };
  const run = (stdin: string, vars: Env, socket: string) => invoke({ nodeNs: fx.node.name, plugin: fx.plugin, conf: undefined, stdin, env: { KNODE_CNI_SOCKET: socket, ...vars } });
  const expectCniError = (what: string, result: Invocation, fastPath: boolean) => {
    expect(result.code, `${what}: exit ${result.code}, ${result.stdout.slice(0, 300)} ${result.stderr.slice(0, 300)}`).not.toBe(0);
    expect(result.code, `${what}: killed by a signal`).toBeLessThan(128);
    expect(result.json, `${what}: ${result.stdout.slice(0, 300)}`).toMatchObject({ cniVersion: expect.any(String), code: expect.any(Number), msg: expect.any(String) });
    expect(result.stderr, what).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)|Maximum call stack|heap out of memory/);
    if (fastPath) expect(result.stderr, `${what}: the daemon did not answer`).not.toContain('running in-process');
  };
  /** Runs each case, checks it is a clean CNI error, and returns the codes by case name. */
  const runCorpus = async (cases: Case[], socket: string): Promise<Map<string, unknown>> => {
    const codes = new Map<string, unknown>();
    for (const entry of cases) {
      const result = await run(entry.stdin, entry.env, socket);
      // Without CNI_COMMAND the launcher does not use the socket: that case runs in-process.
      expectCniError(entry.name, result, socket !== '/nonexistent.sock' && entry.env.CNI_COMMAND !== undefined);
      codes.set(entry.name, result.json.code);
    }
    return codes;
  };
  const expectCodes = (codes: Map<string, unknown>, wanted: Record<string, number>, kind: string) => {
    const got = Object.fromEntries(Object.keys(wanted).map((name) => [name, codes.get(`${kind} "${name}"`)]));
    expect(got).toEqual(wanted);
  };
  const expectNothingLeft = async (what: string) => {
    expect(reserved(), what).toEqual([]);
    expect((await fx.node.ip('-o', 'link', 'show')).stdout, what).not.toMatch(/ knv[0-9a-f]+@/);
    expect((await pod.ip('-o', 'link', 'show')).stdout.split('\n').filter(Boolean), what).toHaveLength(1); // lo only
  };

  beforeAll(async () => {
    fx = await pluginNode({ prefix: 'knt-cnichaos-', role: 'cx', name: 'chaos', subnet: '10.244.9.1/24' });
    pod = await fx.net.namespace('cxp');
    daemon = await startPluginDaemon(fx.kit, fx.node.name);
  });
  afterAll(async () => {
    await daemon?.stop();
    await fx?.cleanup();
  });

  const validEnv = (): Env => ({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'chaos-1', CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: fx.kit.binDir });
  const netconfCases = (): Case[] => netconfCorpus(fx.conf).map(([name, stdin]) => ({ name: `netconf "${name}"`, stdin, env: validEnv() }));
  const envCases = (): Case[] => envCorpus(validEnv(), pod).map(([name, vars]) => ({ name: `env "${name}"`, stdin: JSON.stringify(fx.conf), env: vars }));

  it('every bad netconf gets CNI error JSON and a non-zero exit through the fast path, and leaves nothing', async () => {
    const cases = netconfCases();
    expect(cases.length).toBeGreaterThan(50);
    const codes = await runCorpus(cases, fx.kit.socket);
    // The spec's codes, not one catch-all: decode (6), version (1), config (4), try again (11).
    expectCodes(codes, { 'open brace': 6, 'cniVersion unknown': 1, 'bridge lo': 4, '2 MiB string field': 4, '100k levels': 4, 'subnetFile missing file': 11 }, 'netconf');
    await expectNothingLeft('after the netconf corpus');
  });

  it('every bad CNI environment gets CNI error JSON and a non-zero exit through the fast path, and leaves nothing', async () => {
    const codes = await runCorpus(envCases(), fx.kit.socket);
    expectCodes(codes, { 'unknown command': 7, 'missing netns': 3, 'netns of the plugin itself': 7, 'GC on 1.0.0': 1 }, 'env');
    await expectNothingLeft('after the env corpus');
  });

  it('a sample through the standalone executable (no daemon) answers the same way', async () => {
    const sample = [...netconfCases().filter((_entry, index) => index % 6 === 0), ...envCases().filter((_entry, index) => index % 4 === 0)];
    await runCorpus(sample, '/nonexistent.sock');
    await expectNothingLeft('after the standalone sample');
  });

  it('the plugin still works afterwards: a valid ADD and DEL through the daemon', async () => {
    const add = await run(JSON.stringify(fx.conf), validEnv(), fx.kit.socket);
    expect(add.code, add.stdout).toBe(0);
    expect(reserved()).toHaveLength(1);
    const del = await run(JSON.stringify(fx.conf), { ...validEnv(), CNI_COMMAND: 'DEL' }, fx.kit.socket);
    expect(del.code, del.stdout).toBe(0);
    await expectNothingLeft('after ADD and DEL');
  });
});
