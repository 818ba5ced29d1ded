import { describe, expect, it } from 'vitest';
import { parseNetworkConfig } from '../../cri/cni/conflist.js';
import { compareVersions, resultIPs } from '../../lib/cni/types.js';
import { parseResult } from '../../lib/cni/version.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { CriError, isCriError, matchesLabels, type PodSandboxConfig } from '../../cri/runtime.js';

const sandbox: PodSandboxConfig = { metadata: { name: 'web', namespace: 'default', uid: 'u1', attempt: 0 }, labels: { app: 'web' }, logDirectory: '/logs/default_web_u1' };

describe('cri FakeRuntime', () => {
  it('follows the CRI lifecycle and lets a test make a container exit', async () => {
    let now = 1000;
    const fake = new FakeRuntime({ now: () => now, images: ['busybox:1'] });
    const sandboxId = await fake.runPodSandbox(sandbox);
    expect((await fake.podSandboxStatus(sandboxId)).network.ip).toBe('10.88.0.2');
    const id = await fake.createContainer(sandboxId, { metadata: { name: 'app', attempt: 0 }, image: { image: 'busybox:1' }, logPath: 'app/0.log' }, sandbox);
    expect((await fake.containerStatus(id)).logPath).toBe('/logs/default_web_u1/app/0.log');
    now = 2000;
    await fake.startContainer(id);
    now = 3000;
    fake.exitContainer(id, 2);
    expect(await fake.containerStatus(id)).toMatchObject({ state: 'CONTAINER_EXITED', exitCode: 2, reason: 'Error', startedAt: 2000, finishedAt: 3000 });
    expect(await fake.listContainers({ state: 'CONTAINER_RUNNING' })).toEqual([]);
    expect((await fake.listPodSandbox({ labelSelector: { app: 'web' } })).map((s) => s.id)).toEqual([sandboxId]);
    await fake.stopPodSandbox(sandboxId);
    expect((await fake.podSandboxStatus(sandboxId)).network.ip).toBe('');
    await fake.removePodSandbox(sandboxId);
    await fake.removePodSandbox(sandboxId);
    await fake.stopContainer(id, 1);
    await expect(fake.containerStatus(id)).rejects.toSatisfy((error: unknown) => isCriError(error, 'NotFound'));
  });

  it('fails pulls, injected calls, exec on stopped containers; answers exec and stats', async () => {
    const fake = new FakeRuntime();
    fake.failPull('bad:1', 'denied');
    await expect(fake.pullImage({ image: 'bad:1' })).rejects.toSatisfy((error: unknown) => isCriError(error) && error.reason === 'ErrImagePull');
    const ref = await fake.pullImage({ image: 'good:1' });
    expect((await fake.imageStatus({ image: 'good:1' }))?.id).toBe(ref);
    fake.failNext('runPodSandbox', new CriError('no network', { code: 'Unavailable' }));
    await expect(fake.runPodSandbox(sandbox)).rejects.toThrow('no network');
    const sandboxId = await fake.runPodSandbox(sandbox);
    await expect(fake.createContainer(sandboxId, { metadata: { name: 'x', attempt: 0 }, image: { image: 'absent:1' } }, sandbox)).rejects.toSatisfy((error: unknown) => isCriError(error, 'NotFound'));
    const id = await fake.createContainer(sandboxId, { metadata: { name: 'x', attempt: 0 }, image: { image: 'good:1' } }, sandbox);
    await expect(fake.execSync(id, ['true'], 1)).rejects.toSatisfy((error: unknown) => isCriError(error, 'FailedPrecondition'));
    await fake.startContainer(id);
    fake.setExecHandler((_id, cmd) => ({ stdout: cmd.join(' '), stderr: '', exitCode: cmd[0] === 'false' ? 1 : 0 }));
    expect(await fake.execSync(id, ['false'], 1)).toEqual({ stdout: 'false', stderr: '', exitCode: 1 });
    fake.setStats(id, { memoryWorkingSetBytes: 123, cpuNs: 9 });
    expect((await fake.listContainerStats())[0]).toMatchObject({ memory: { workingSetBytes: 123 }, cpu: { usageCoreNanoSeconds: 9 } });
    const session = await fake.exec({ containerId: id, cmd: ['echo', 'hi'] });
    expect(await session.wait()).toEqual({ exitCode: 0 });
    expect(fake.calls.filter((c) => c.method === 'runPodSandbox')).toHaveLength(2);
  });

  it('matches label selectors', () => {
    expect(matchesLabels({ a: '1', b: '2' }, { a: '1' })).toBe(true);
    expect(matchesLabels({ a: '1' }, { a: '2' })).toBe(false);
    expect(matchesLabels({}, undefined)).toBe(true);
  });
});

describe('cri CNI parsing', () => {
  it('wraps a single .conf into a list and validates lists', () => {
    const single = parseNetworkConfig(JSON.stringify({ cniVersion: '0.4.0', name: 'n', type: 'bridge', bridge: 'b' }), '/d/10.conf');
    expect(single).toEqual({ cniVersion: '0.4.0', name: 'n', plugins: [{ cniVersion: '0.4.0', name: 'n', type: 'bridge', bridge: 'b' }], source: '/d/10.conf' });
    expect(parseNetworkConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'a' }], disableCheck: true }), '/d/x.conflist')).toMatchObject({ disableCheck: true, disableGC: false });
    expect(() => parseNetworkConfig('{', '/d/x.conflist')).toThrow(/x.conflist: invalid JSON/);
    expect(() => parseNetworkConfig(JSON.stringify({ name: 'n', plugins: [] }), '/d/x.conflist')).toThrow(/non-empty/);
    expect(() => parseNetworkConfig(JSON.stringify({ name: 'n', plugins: [{ type: '../evil' }] }), '/d/x.conflist')).toThrow(/bare name/);
    expect(() => parseNetworkConfig(JSON.stringify({ cniVersion: '1.0.0', plugins: [{ type: 'a' }] }), '/d/x.conflist')).toThrow(/no network "name"/);
  });

  it('parses 1.0 and 0.2 results and rejects garbage', () => {
    const v1 = parseResult(JSON.stringify({ cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/24' }, { address: 'fd00::5/64' }] }), 'bridge');
    expect(resultIPs(v1)).toEqual(['10.1.0.5', 'fd00::5']);
    const v02 = parseResult(JSON.stringify({ cniVersion: '0.2.0', ip4: { ip: '10.2.0.5/16', gateway: '10.2.0.1' } }), 'old');
    expect(v02.ips).toEqual([{ address: '10.2.0.5/16', gateway: '10.2.0.1' }]);
    expect(() => parseResult('hello', 'junk')).toThrow(/"junk" printed invalid JSON on ADD: hello/);
    expect(() => parseResult('', 'junk')).toThrow(/empty output/);
    expect(() => parseResult('[1]', 'junk')).toThrow(/not a JSON object/);
    expect(() => parseResult('{"cniVersion":"1.0.0","ips":"x"}', 'junk')).toThrow(/"ips" is not a list/);
  });

  it.each([
    ['0.3.1', '0.4.0', -1],
    ['1.0.0', '0.4.0', 1],
    ['1.1.0', '1.1.0', 0],
  ])('compareVersions(%s, %s)', (a, b, sign) => {
    expect(Math.sign(compareVersions(a, b))).toBe(sign);
  });
});
