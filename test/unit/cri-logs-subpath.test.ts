import { mkdir, mkdtemp, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerRuntime, socketPathOf } from '../../cri/docker/factory.js';
import { formatCriLogLine, parseLog, parseLogLine } from '../../cri/logs.js';
import { containerLogPath, podLogDirectory } from '../../cri/runtime.js';
import { resolveSubPath } from '../../cri/subpath.js';

describe('cri log lines', () => {
  it.each([
    ['{"log":"hello\\n","stream":"stdout","time":"2026-11-22T02:14:39.1Z"}', { time: '2026-11-22T02:14:39.1Z', stream: 'stdout', log: 'hello', full: true }],
    ['{"log":"part","stream":"stderr","time":"t"}', { time: 't', stream: 'stderr', log: 'part', full: false }],
    ['2026-11-22T02:14:39.123456789Z stdout F hello world', { time: '2026-11-22T02:14:39.123456789Z', stream: 'stdout', log: 'hello world', full: true }],
    ['2026-11-22T02:14:39Z stderr P ', { time: '2026-11-22T02:14:39Z', stream: 'stderr', log: '', full: false }],
  ])('parses %s', (line, expected) => {
    expect(parseLogLine(line)).toEqual(expected);
  });

  it('skips lines in neither format and round-trips the CRI format', () => {
    expect(parseLogLine('garbage')).toBeUndefined();
    expect(parseLogLine('{"log":1}')).toBeUndefined();
    const entry = { time: 't1', stream: 'stdout' as const, log: 'x y', full: true };
    expect(parseLog(`${formatCriLogLine(entry)}junk\n`)).toEqual([entry]);
  });

  it('builds the kubelet log paths', () => {
    expect(podLogDirectory('ns', 'web', 'u-1')).toBe('/var/log/pods/ns_web_u-1');
    expect(podLogDirectory('ns', 'web', 'u-1', '/tmp/logs/')).toBe('/tmp/logs/ns_web_u-1');
    expect(containerLogPath('app', 3)).toBe('app/3.log');
  });
});

describe('cri factory', () => {
  it('parses the runtime endpoint and builds a runtime without connecting', () => {
    expect(socketPathOf('unix:///run/d.sock')).toBe('/run/d.sock');
    expect(socketPathOf('/run/d.sock')).toBe('/run/d.sock');
    expect(() => socketPathOf('tcp://1.2.3.4:2375')).toThrow(/unsupported/);
    const runtime = createDockerRuntime({ cniBinDirs: '/a:/b', sandboxRoot: '/tmp/x' });
    expect(runtime.context.sandboxRoot).toBe('/tmp/x');
    expect(runtime.context.network).toBeDefined();
  });
});

describe('cri subPath', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'knode-subpath-'));
    await mkdir(join(dir, 'vol', 'a'), { recursive: true });
    await mkdir(join(dir, 'outside'));
    await symlink(join(dir, 'outside'), join(dir, 'vol', 'escape'));
    await symlink('a', join(dir, 'vol', 'inner'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('resolves inside the volume, creating missing directories', async () => {
    expect(await resolveSubPath(join(dir, 'vol'), 'a')).toBe(join(dir, 'vol', 'a'));
    expect(await resolveSubPath(join(dir, 'vol'), 'inner')).toBe(join(dir, 'vol', 'a'));
    expect(await resolveSubPath(join(dir, 'vol'), '')).toBe(join(dir, 'vol'));
    expect(await resolveSubPath(join(dir, 'vol'), 'new/deep')).toBe(join(dir, 'vol', 'new', 'deep'));
    expect((await stat(join(dir, 'vol', 'new', 'deep'))).isDirectory()).toBe(true);
  });

  it.each([['/etc'], ['../outside'], ['a/../../outside'], ['escape'], ['escape/sub']])('rejects %s', async (subPath) => {
    await expect(resolveSubPath(join(dir, 'vol'), subPath)).rejects.toThrow(/subPath/);
    await expect(stat(join(dir, 'outside', 'sub'))).rejects.toThrow();
  });
});
