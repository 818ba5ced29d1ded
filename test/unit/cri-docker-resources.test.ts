/**
 * One CRI → Docker resource mapping (cri/docker/container-config.ts dockerResources) for create
 * and update, and the update path keeps oomScoreAdj (issue 23: the second copy in
 * containers.ts dropped it). Docker's update endpoint has no OomScoreAdj, so the runtime writes
 * it to the container's init process: checked here on a real child process.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { containerCreateOptions, dockerResources } from '../../cri/docker/container-config.js';
import { ContainerManager } from '../../cri/docker/containers.js';
import type { RuntimeContext } from '../../cri/docker/context.js';
import { dockerLabels, containerType } from '../../cri/docker/naming.js';
import { createLogger } from '../../lib/log.js';

describe('dockerResources (issue 23: one mapping, OomScoreAdj kept)', () => {
  it('maps every CRI field once, with the kernel minimum for shares and swap = memory by default', () => {
    expect(dockerResources({ cpuShares: 1, cpuPeriod: 100000, cpuQuota: 50000, memoryLimitInBytes: 64, pidsLimit: 10, cpusetCpus: '0', cpusetMems: '0', oomScoreAdj: -997 })).toEqual({
      CpuShares: 2, CpuPeriod: 100000, CpuQuota: 50000, Memory: 64, MemorySwap: 64, PidsLimit: 10, CpusetCpus: '0', CpusetMems: '0', OomScoreAdj: -997,
    });
    expect(dockerResources({ memoryLimitInBytes: 64, memorySwapLimitInBytes: 128, oomScoreAdj: 0 })).toEqual({ Memory: 64, MemorySwap: 128, OomScoreAdj: 0 });
    expect(dockerResources(undefined)).toEqual({});
  });

  it('is what container create uses', () => {
    const options = containerCreateOptions({
      sandboxId: 'sb1',
      sandboxConfig: { metadata: { name: 'web', namespace: 'default', uid: 'u1', attempt: 0 } },
      config: { metadata: { name: 'app', attempt: 0 }, image: { image: 'busybox:1' }, linux: { resources: { cpuShares: 512, oomScoreAdj: 1000 } } },
      name: 'k8s_app_web_default_u1_0',
      podFiles: {},
      scopeLabels: {},
      logPath: '',
      logMaxSize: '10m',
      logMaxFiles: 5,
    });
    expect(options.HostConfig).toMatchObject({ CpuShares: 512, OomScoreAdj: 1000 });
  });
});

describe('ContainerManager.updateResources (issue 23: the update path keeps OomScoreAdj)', () => {
  const children: ReturnType<typeof spawn>[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });

  it('sends the cgroup fields to Docker and sets oom_score_adj of the container process', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(child);
    const updates: unknown[] = [];
    const info = { Id: 'abc', Name: '/k8s_c_p_default_u_0', State: { Pid: child.pid, Running: true }, Config: { Labels: { [dockerLabels.type]: containerType } } };
    const docker = { getContainer: () => ({ inspect: async () => info, update: async (body: unknown) => void updates.push(body) }) } as unknown as Docker;
    const manager = new ContainerManager({ docker, log: createLogger('test', 'silent') } as unknown as RuntimeContext);
    await manager.updateResources('abc', { cpuQuota: 25000, memoryLimitInBytes: 96, oomScoreAdj: 789 });
    expect(updates).toEqual([{ CpuQuota: 25000, Memory: 96, MemorySwap: 96 }]);
    expect((await readFile(`/proc/${child.pid}/oom_score_adj`, 'utf8')).trim()).toBe('789');
  });
});
