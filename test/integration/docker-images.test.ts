import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { busyboxSpec, ensureLocalImage, pauseSpec } from '../../cri/local-images.js';
import { removeLabelledContainers, testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'docker', 'command:busybox');
const runLabel = `io.knode.test=${randomBytes(4).toString('hex')}`;

describe.skipIf(env.skip)('local images on the real Docker Engine', () => {
  let docker: Docker;
  afterAll(async () => {
    if (docker) await removeLabelledContainers(docker, runLabel);
  });

  it('builds the busybox image and runs a container from it without a network', async () => {
    docker = await testDocker();
    const ref = await ensureLocalImage(docker, busyboxSpec);
    const [key, value] = runLabel.split('=') as [string, string];
    const container = await docker.createContainer({
      Image: ref,
      Cmd: ['sh', '-c', 'echo hello from $(busybox | head -1 | cut -d" " -f1)'],
      Labels: { [key]: value },
      HostConfig: { NetworkMode: 'none' },
    });
    await container.start();
    const result = await container.wait();
    const logs = (await container.logs({ stdout: true, stderr: true })).toString('utf8');
    await container.remove({ force: true });
    expect(result.StatusCode).toBe(0);
    expect(logs).toContain('hello from BusyBox');
    await expect(docker.getContainer(container.id).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('builds a pause image that holds its namespaces and exits 0 on SIGTERM', async () => {
    docker = await testDocker();
    const ref = await ensureLocalImage(docker, pauseSpec);
    const [key, value] = runLabel.split('=') as [string, string];
    const container = await docker.createContainer({ Image: ref, Labels: { [key]: value }, HostConfig: { NetworkMode: 'none' } });
    await container.start();
    expect((await container.inspect()).State.Running).toBe(true);
    await container.stop({ t: 10 });
    expect((await container.inspect()).State.ExitCode).toBe(0);
    await container.remove({ force: true });
  });

  it('does not rebuild an image whose inputs did not change', async () => {
    docker = await testDocker();
    const before = (await docker.getImage(busyboxSpec.ref).inspect().catch(() => undefined))?.Id;
    await ensureLocalImage(docker, busyboxSpec);
    const after = (await docker.getImage(busyboxSpec.ref).inspect()).Id;
    if (before) expect(after).toBe(before);
  });
});
