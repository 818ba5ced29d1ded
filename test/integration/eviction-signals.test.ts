/**
 * The real signals on this machine, checked for sanity against free(1), df(1) and /proc.
 * Also reads a real container's working set from its memory cgroup.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type Docker from 'dockerode';
import { run } from '../../lib/exec.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { prerequisites } from '../helpers/prereq.js';
import { removeLabelledContainers, testDocker } from '../helpers/docker.js';
import { NodeSignals, readFsStats, readPidStats } from '../../eviction/signals.js';
import { detectCgroupLayout, memoryCgroupOfPid, readWorkingSet } from '../../eviction/cgroup-memory.js';

const env = await prerequisites('root', 'docker', 'command:free', 'command:df');
const Mi = 2 ** 20;
const runLabel = `io.knode.test.eviction-signals=${randomBytes(4).toString('hex')}`;

describe.skipIf(env.skip)('eviction signals on the real node', () => {
  let docker: Docker;
  beforeAll(async () => {
    docker = await testDocker();
  });
  afterAll(async () => {
    if (docker) await removeLabelledContainers(docker, runLabel);
  });

  it('memory.available is MemTotal minus the root cgroup working set, close to free(1)', async () => {
    const signals = new NodeSignals({ rootDir: '/', imageFsPath: '/var/lib/docker' });
    const memory = await signals.observeMemory();
    const { stdout } = await run(['free', '-b']);
    const fields = stdout.split('\n').find((line) => line.startsWith('Mem:'))!.trim().split(/\s+/).map(Number);
    const [total, used, , , , available] = fields.slice(1) as [number, number, number, number, number, number];
    expect(memory.capacity).toBe(total);
    expect(memory.available).toBeGreaterThan(0);
    expect(memory.available).toBeLessThanOrEqual(total);
    // The working set (usage − inactive file) is at least what free calls "used" minus slack for
    // concurrent activity, and available lies near free's estimate (both exclude reclaimable cache).
    const workingSet = memory.capacity - memory.available;
    expect(workingSet).toBeGreaterThan(used * 0.5 - 512 * Mi);
    expect(Math.abs(memory.available - available)).toBeLessThan(Math.max(2048 * Mi, total * 0.1));
  });

  it('nodefs and imagefs match df, inodes match df -i', async () => {
    for (const path of ['/', '/var/lib/docker']) {
      const fs = await readFsStats(path);
      const df = (await run(['df', '-B1', '--output=size,avail', path])).stdout.trim().split('\n')[1]!.trim().split(/\s+/).map(Number);
      const dfi = (await run(['df', '--output=itotal,iavail', path])).stdout.trim().split('\n')[1]!.trim().split(/\s+/).map(Number);
      expect(fs.capacityBytes).toBe(df[0]);
      expect(Math.abs(fs.availableBytes - df[1]!)).toBeLessThan(256 * Mi); // others write meanwhile
      expect(fs.inodes).toBe(dfi[0]);
      expect(Math.abs(fs.inodesFree - dfi[1]!)).toBeLessThan(100_000);
    }
  });

  it('pid.available = min(pid_max, threads-max) − tasks', async () => {
    const pids = await readPidStats();
    const { stdout } = await run(['cat', '/proc/sys/kernel/pid_max']);
    expect(pids.maxPid).toBeLessThanOrEqual(Number(stdout.trim()));
    expect(pids.running).toBeGreaterThan(10);
    expect(pids.running).toBeLessThan(pids.maxPid);
    const observed = await new NodeSignals({ rootDir: '/', imageFsPath: '/' }).observe();
    expect(observed['pid.available']!.capacity).toBe(pids.maxPid);
    expect(observed['pid.available']!.available).toBeGreaterThan(0);
    expect(observed['nodefs.available']!.capacity).toBeGreaterThan(0);
  });

  it('hasDedicatedImageFs compares devices', async () => {
    expect(await new NodeSignals({ rootDir: '/', imageFsPath: '/' }).hasDedicatedImageFs()).toBe(false);
    expect(await new NodeSignals({ rootDir: '/', imageFsPath: '/proc' }).hasDedicatedImageFs()).toBe(true);
  });

  it('reads a container working set from its memory cgroup (its /dev/shm pages count)', async () => {
    const image = await ensureLocalImage(docker, busyboxSpec);
    const container = await docker.createContainer({
      Image: image,
      Cmd: ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=64 2>/dev/null; touch /tmp/ready; exec sleep 3600'],
      Labels: { [runLabel.split('=')[0]!]: runLabel.split('=')[1]! },
      HostConfig: { NetworkMode: 'none', ShmSize: 128 * Mi, AutoRemove: false },
    });
    await container.start();
    const deadline = Date.now() + 30_000;
    const layout = await detectCgroupLayout();
    let workingSet = 0;
    while (Date.now() < deadline) {
      const info = await container.inspect();
      const cgroup = await memoryCgroupOfPid(layout, info.State.Pid);
      workingSet = (await readWorkingSet(layout, cgroup)).workingSet;
      if (workingSet >= 64 * Mi) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(workingSet).toBeGreaterThanOrEqual(64 * Mi);
    expect(workingSet).toBeLessThan(128 * Mi);
  });
});
