import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { errorJson, CniError } from '../../lib/cni/types.js';
import { formatResult, verbAllowed, parsePrevResult } from '../../lib/cni/version.js';
import { parseCniEnv, parsePluginConf, parseSubnetEnv, interfaceNameProblem } from '../../cni/plugin-config.js';
import { FileIpamStore, pickAddress, rangeBounds, attachmentKey } from '../../cni/ipam-store.js';
import { parseWireRequest } from '../../cni/plugin-server.js';
import { hostVethName, podMac } from '../../cni/netdev.js';
import { installCni } from '../../cni/install-command.js';
import { handleCniRequest, pluginContext } from '../../cni/plugin.js';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return (error as CniError).code;
  }
  return 0;
};

describe('CNI spec helpers', () => {
  it('formats results per version', () => {
    const result = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', mtu: 1450, sandbox: '/x' }], ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }] };
    expect(formatResult(result, '1.1.0')).toMatchObject({ cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24' }], dns: {} });
    const old = formatResult(result, '0.4.0') as { ips: { version: string }[]; interfaces: Record<string, unknown>[] };
    expect(old.ips[0]!.version).toBe('4');
    expect(old.interfaces[0]).not.toHaveProperty('mtu');
    expect(parsePrevResult(old)!.ips![0]).not.toHaveProperty('version');
  });
  it('maps errors to codes; unknown errors are 999', () => {
    expect(errorJson(new CniError(7, 'bad env'), '1.0.0')).toEqual({ cniVersion: '1.0.0', code: 7, msg: 'bad env' });
    expect(errorJson(new Error('boom', { cause: new Error('why') }), 'x')).toEqual({ cniVersion: '1.1.0', code: 999, msg: 'boom', details: 'why' });
  });
  it.each([
    ['CHECK', '0.3.1', false],
    ['CHECK', '0.4.0', true],
    ['GC', '1.0.0', false],
    ['STATUS', '1.1.0', true],
    ['ADD', '0.3.0', true],
  ] as const)('%s allowed on %s: %s', (verb, version, allowed) => expect(verbAllowed(verb, version)).toBe(allowed));
});

describe('plugin inputs', () => {
  it.each([
    ['{', 6],
    ['[]', 6],
    ['{"cniVersion":"2.0.0","name":"n","type":"knode"}', 1],
    ['{"name":"n","type":"knode"}', 1],
    ['{"cniVersion":"1.0.0","name":"bad name!","type":"knode"}', 4],
    ['{"cniVersion":"1.0.0","name":"n","type":"knode","mtu":10}', 4],
    ['{"cniVersion":"1.0.0","name":"n","type":"knode","bridge":"a/b"}', 4],
  ])('conf %s → code %d', (text, code) => expect(codeOf(() => parsePluginConf(text))).toBe(code));
  it('applies flannel defaults', () => {
    const conf = parsePluginConf('{"cniVersion":"1.0.0","name":"n","type":"knode"}');
    expect(conf).toMatchObject({ subnetFile: '/run/flannel/subnet.env', dataDir: '/var/lib/cni/knode', bridge: 'cni0', hairpinMode: true });
  });
  it.each([
    [{}, 7],
    [{ CNI_COMMAND: 'FOO' }, 7],
    [{ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0' }, 7],
    [{ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/n', CNI_IFNAME: 'a/b' }, 7],
    [{ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/n', CNI_IFNAME: 'sixteen-chars-xx' }, 7],
    [{ CNI_COMMAND: 'ADD', CNI_CONTAINERID: '-bad', CNI_NETNS: '/n', CNI_IFNAME: 'eth0' }, 7],
    [{ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: 'relative', CNI_IFNAME: 'eth0' }, 7],
    [{ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0' }, 0],
    [{ CNI_COMMAND: 'GC' }, 0],
  ])('env %j → code %d', (env, code) => expect(codeOf(() => parseCniEnv(env))).toBe(code));
  it('validates interface names', () => {
    expect(interfaceNameProblem('eth0')).toBeUndefined();
    expect(interfaceNameProblem('..')).toBeDefined();
    expect(interfaceNameProblem('a b')).toBeDefined();
  });
  it('reads subnet.env and rejects a subnet outside the network', () => {
    const lease = parseSubnetEnv('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n', 'f');
    expect(lease).toEqual({ network: '10.244.0.0/16', subnet: '10.244.5.0/24', gateway: '10.244.5.1', prefixLength: 24, mtu: 1450, ipMasq: true });
    expect(codeOf(() => parseSubnetEnv('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.9.5.1/24\n', 'f'))).toBe(4);
    expect(codeOf(() => parseSubnetEnv('FLANNEL_SUBNET=10.9.5.1/24\n', 'f'))).toBe(4);
  });
  it('names host veths and MACs stably', () => {
    expect(hostVethName('abc', 'eth0')).toMatch(/^knv[0-9a-f]{10}$/);
    expect(hostVethName('abc', 'eth0')).toBe(hostVethName('abc', 'eth0'));
    expect(hostVethName('abc', 'eth1')).not.toBe(hostVethName('abc', 'eth0'));
    expect(podMac('10.244.1.2')).toBe('0a:58:0a:f4:01:02');
  });
});

describe('IPAM allocation', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));
  const range = { subnet: '10.1.2.0/24', gateway: '10.1.2.1' };

  it.each([
    [{ subnet: '10.1.2.0/29', gateway: '10.1.2.1' }, [], undefined, '10.1.2.2'],
    [{ subnet: '10.1.2.0/29', gateway: '10.1.2.1' }, [], '10.1.2.3', '10.1.2.4'],
    [{ subnet: '10.1.2.0/29', gateway: '10.1.2.1' }, [], '10.1.2.6', '10.1.2.2'],
    [{ subnet: '10.1.2.0/29', gateway: '10.1.2.1' }, ['10.1.2.2', '10.1.2.3', '10.1.2.4', '10.1.2.5', '10.1.2.6'], undefined, undefined],
    [{ subnet: '10.1.2.0/24', rangeStart: '10.1.2.100', rangeEnd: '10.1.2.101' }, ['10.1.2.100'], undefined, '10.1.2.101'],
  ])('range %j taken %j last %s → %s', (r, taken, last, expected) => expect(pickAddress(r, new Set(taken), last)).toBe(expected));

  it('rejects ranges outside the subnet', () => {
    expect(() => rangeBounds({ subnet: '10.1.2.0/24', rangeStart: '10.1.3.1' })).toThrow(CniError);
    expect(() => rangeBounds({ subnet: '10.1.2.0/24', rangeStart: '10.1.2.0' })).toThrow(CniError);
  });

  it('stores one file per IP, round-robins, releases by container and ifname, and GCs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knt-ipam-'));
    dirs.push(dir);
    const store = new FileIpamStore(dir, 'net');
    const a = await store.allocate('c1', 'eth0', range);
    const b = await store.allocate('c2', 'eth0', range);
    expect([a, b]).toEqual(['10.1.2.2', '10.1.2.3']);
    expect(await store.allocate('c1', 'eth0', range)).toBe(a);
    expect(readFileSync(join(dir, 'net', a), 'utf8')).toBe('c1\r\neth0');
    expect(await store.release('c1', 'eth0')).toEqual([a]);
    expect(await store.allocate('c3', 'eth0', range)).toBe('10.1.2.4');
    const freed = await store.gc(new Set([attachmentKey('c3', 'eth0')]));
    expect(freed.map((entry) => entry.containerId)).toEqual(['c2']);
    expect(store.list().map((entry) => entry.ip)).toEqual(['10.1.2.4']);
  });

  it('hands out distinct addresses to concurrent callers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knt-ipam-'));
    dirs.push(dir);
    const store = new FileIpamStore(dir, 'net');
    const ips = await Promise.all(Array.from({ length: 100 }, (_, i) => store.allocate(`c${i}`, 'eth0', range)));
    expect(new Set(ips).size).toBe(100);
  });
});

describe('fast path and install', () => {
  it('parses the wire request', () => {
    const request = parseWireRequest(Buffer.from('KNODE-CNI 1 4026531840\nCNI_COMMAND=ADD\nCNI_IFNAME=eth0\nHOME=/x\n\n{"a":1}'));
    expect(request).toEqual({ netnsInode: 4026531840, env: { CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0' }, stdin: '{"a":1}' });
    expect(parseWireRequest(Buffer.from('GET / HTTP/1.1\n\n'))).toBeUndefined();
  });
  it('answers VERSION and reports bad input without touching the kernel', async () => {
    const ctx = pluginContext();
    expect(JSON.parse((await handleCniRequest({ env: { CNI_COMMAND: 'VERSION' }, stdin: '{}' }, ctx)).stdout).supportedVersions).toContain('1.1.0');
    const bad = await handleCniRequest({ env: { CNI_COMMAND: 'ADD' }, stdin: '{"cniVersion":"1.0.0","name":"n","type":"knode"}' }, ctx);
    expect(bad.exitCode).toBe(1);
    expect(JSON.parse(bad.stdout).code).toBe(7);
  });
  it('installs the launcher and the conflist', () => {
    const dir = mkdtempSync(join(tmpdir(), 'knt-install-'));
    try {
      const written = installCni({ binDir: join(dir, 'bin'), confDir: join(dir, 'net.d'), entry: '/x/plugin-main.js' });
      expect(written).toHaveLength(2);
      expect(readFileSync(written[0]!, 'utf8')).toContain("/x/plugin-main.js");
      const conflist = JSON.parse(readFileSync(written[1]!, 'utf8'));
      expect(conflist.plugins.map((p: { type: string }) => p.type)).toEqual(['knode', 'portmap']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
