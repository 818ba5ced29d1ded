/** Issue 25 item 9, the parts that need no kernel changes: env parsing, netns identity, lock staleness. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileIpamStore, parseLockOwner, processStartTime, staleLockReason } from '../../cni/ipam-store.js';
import { assertNetns } from '../../cni/netdev.js';
import { handleCniRequest, pluginContext } from '../../cni/plugin.js';
import { parseCniEnv, parsePluginConf } from '../../cni/plugin-config.js';
import { CniError } from '../../lib/cni/types.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('issue 25 item 9: CNI VERSION ignores every variable but CNI_COMMAND', () => {
  const libcni = { CNI_COMMAND: 'VERSION', CNI_CONTAINERID: '', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_ARGS: '', CNI_PATH: 'dummy' };
  it('parseCniEnv accepts libcni placeholders and garbage for VERSION', () => {
    expect(parseCniEnv(libcni).command).toBe('VERSION');
    expect(parseCniEnv({ CNI_COMMAND: 'VERSION', CNI_NETNS: 'x', CNI_IFNAME: 'a/b:c', CNI_CONTAINERID: '../..' }).command).toBe('VERSION');
    expect(() => parseCniEnv({ ...libcni, CNI_COMMAND: 'ADD' })).toThrow(/CNI_CONTAINERID is required|absolute/);
  });
  it('handleCniRequest answers VERSION with any stdin', async () => {
    for (const stdin of ['', '{', '{"cniVersion":"9.9.9"}', '{"cniVersion":"1.1.0"}']) {
      const response = await handleCniRequest({ env: libcni, stdin }, pluginContext());
      expect(response.exitCode, stdin).toBe(0);
      expect(JSON.parse(response.stdout).supportedVersions).toContain('1.1.0');
    }
  });
});

describe("issue 25 item 9: the host's own netns is refused as CNI_NETNS", () => {
  const refusal = (path: string): CniError => {
    try {
      assertNetns(path);
    } catch (error) {
      expect(error).toBeInstanceOf(CniError);
      return error as CniError;
    }
    return expect.fail(`${path} accepted`);
  };
  it('/proc/self/ns/net (the plugin\'s own) gives code 7', () => {
    const error = refusal('/proc/self/ns/net');
    expect(error.code).toBe(7);
    expect(error.message).toContain("host's own network namespace");
  });
  it('/proc/1/ns/net gives code 7 (as the host netns, or as uninspectable where pid 1 is hidden)', () => {
    const error = refusal('/proc/1/ns/net');
    expect(error.code).toBe(7);
    expect(error.message).toMatch(/host's own network namespace|cannot inspect/);
  });
  it('a path that is not a netns keeps its own codes', () => {
    expect(() => assertNetns('/nonexistent/netns')).toThrow(/does not exist/);
    expect(() => assertNetns('/proc/self/status')).toThrow(/not a network namespace/);
  });
});

describe('issue 25 item 9: a non-bridge device named as bridge is refused; never lo', () => {
  it('the netconf refuses bridge "lo" with code 4', () => {
    try {
      parsePluginConf(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'knode', bridge: 'lo' }));
      expect.fail('accepted');
    } catch (error) {
      expect((error as CniError).code).toBe(4);
      expect((error as CniError).message).toMatch(/bridge.*loopback/);
    }
  });
});

describe('issue 25 item 9: an IPAM lock held by a live unrelated pid does not block forever', () => {
  const ownStart = processStartTime(process.pid)!;

  it('reads lock owners in both formats and nothing else', () => {
    expect(parseLockOwner('42 123456')).toEqual({ pid: 42, startTime: '123456' });
    expect(parseLockOwner('42')).toEqual({ pid: 42, startTime: undefined });
    for (const text of ['', 'abc', '-1', '0', '42 x', '1 2 3']) expect(parseLockOwner(text), text).toBeUndefined();
  });

  it('judges staleness: dead pid, reused pid, unverifiable and old, garbled and old', () => {
    expect(staleLockReason(`${process.pid} ${ownStart}`, 60_000)).toBeUndefined();
    expect(staleLockReason(`${process.pid} ${Number(ownStart) + 1}`, 0)).toMatch(/another process/);
    expect(staleLockReason('999999999 1', 0)).toMatch(/gone/);
    expect(staleLockReason(String(process.pid), 100)).toBeUndefined();
    expect(staleLockReason(String(process.pid), 60_000)).toMatch(/cannot be verified/);
    expect(staleLockReason('', 100)).toBeUndefined();
    expect(staleLockReason('garbage', 5_000)).toBe('unreadable owner');
  });

  it('a live holder is waited for, bounded, then code 11 naming the pid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knt-ipam-lock-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'net'));
    writeFileSync(join(dir, 'net', 'lock'), `${process.pid} ${ownStart}`);
    const store = new FileIpamStore(dir, 'net', 300);
    const started = Date.now();
    const error = await store.allocate('c1', 'eth0', { subnet: '10.244.1.0/24', gateway: '10.244.1.1' }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error).toBeInstanceOf(CniError);
    expect((error as CniError).code).toBe(11);
    expect((error as CniError).message).toContain(`locked by pid ${process.pid}`);
  });

  it('a reused pid (same pid, other start time) is broken at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knt-ipam-lock-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'net'));
    writeFileSync(join(dir, 'net', 'lock'), `1 ${Number(processStartTime(1) ?? 0) + 99}`);
    const store = new FileIpamStore(dir, 'net', 300);
    expect(await store.allocate('c1', 'eth0', { subnet: '10.244.1.0/24', gateway: '10.244.1.1' })).toBe('10.244.1.2');
  });
});

describe('CNI input bounds (issue 25: every input bounded)', () => {
  it('measures nesting outside strings only', async () => {
    const { jsonNestingDepth, assertNetconfBounds, maxNetconfBytes } = await import('../../lib/cni/limits.js');
    expect(jsonNestingDepth('{}')).toBe(1);
    expect(jsonNestingDepth('{"a":[{"b":[]}]}')).toBe(4);
    expect(jsonNestingDepth('{"a":"[[[[[\\"[[["}')).toBe(1);
    expect(jsonNestingDepth('[[[')).toBe(3);
    expect(() => assertNetconfBounds(`{"x":${'['.repeat(64)}${']'.repeat(64)}}`)).toThrow(/nested 65 levels/);
    expect(() => assertNetconfBounds(`{"x":"${'y'.repeat(maxNetconfBytes)}"}`)).toThrow(/above the limit/);
    expect(() => assertNetconfBounds(`{"x":${'['.repeat(63)}${']'.repeat(63)}}`)).not.toThrow();
  });
});
