/**
 * The image service against a real registry: Debian's docker-registry on a loopback port with
 * htpasswd authentication, the busybox image pushed to it, pulled back through the runtime with
 * credentials shaped like a dockerconfigjson entry.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { createLogger } from '../../lib/log.js';
import { DockerRuntime } from '../../cri/docker/runtime.js';
import { busyboxSpec, ensureLocalImage } from '../../cri/local-images.js';
import { isCriError } from '../../cri/runtime.js';
import { testDocker } from '../helpers/docker.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'docker', 'command:docker-registry', 'command:htpasswd');
const runId = randomBytes(4).toString('hex');
const user = 'knode';
const password = `pw-${runId}`;

async function follow(docker: Docker, stream: NodeJS.ReadableStream): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (error: Error | null, output: Array<{ error?: string }>) => {
      const failed = error ?? output.find((event) => event.error);
      if (failed) reject(failed instanceof Error ? failed : new Error(failed.error));
      else resolve();
    });
  });
}

describe.skipIf(env.skip)('cri docker runtime: image service with a registry', () => {
  let docker: Docker;
  let dir: string;
  let registry: ChildProcess | undefined;
  let ref: string;
  let busyboxId: string;
  let address: string;

  beforeAll(async () => {
    docker = await testDocker();
    const busybox = await ensureLocalImage(docker, busyboxSpec);
    busyboxId = (await docker.getImage(busybox).inspect()).Id;
    dir = await mkdtemp(join(tmpdir(), 'knode-cri-registry-'));
    await run(['htpasswd', '-Bbc', join(dir, 'htpasswd'), user, password]);
    for (let attempt = 0; attempt < 5 && !registry; attempt++) {
      const port = 20000 + Math.floor(Math.random() * 30000);
      address = `127.0.0.1:${port}`;
      const config = [
        'version: 0.1',
        'log: { level: error }',
        `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} } }`,
        `http: { addr: "${address}" }`,
        `auth: { htpasswd: { realm: knode, path: ${join(dir, 'htpasswd')} } }`,
      ].join('\n');
      await writeFile(join(dir, 'config.yml'), config);
      const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && child.exitCode === null) {
        const probe = await run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${address}/v2/`], { allowFailure: true });
        if (probe.stdout === '401') break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      if (child.exitCode === null) registry = child;
    }
    if (!registry) throw new Error('docker-registry did not start');
    ref = `${address}/knode-test/busybox:${runId}`;
    const [repo, tag] = [ref.slice(0, ref.lastIndexOf(':')), runId];
    await docker.getImage(busybox).tag({ repo, tag });
    const auth = { username: user, password, serveraddress: address };
    await follow(docker, await docker.getImage(ref).push({ authconfig: auth }));
    await docker.getImage(ref).remove();
  });

  afterAll(async () => {
    if (ref) await docker?.getImage(ref).remove().catch(() => undefined);
    if (registry && registry.exitCode === null) {
      const exited = new Promise((resolve) => registry?.once('exit', resolve));
      registry.kill('SIGTERM');
      await exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pulls with dockerconfigjson credentials, reports and removes the image; a denied pull is ErrImagePull', async () => {
    const runtime = new DockerRuntime({ docker, logger: createLogger('cri', 'silent') });
    expect(await runtime.imageStatus({ image: ref })).toBeUndefined();
    await expect(runtime.pullImage({ image: ref })).rejects.toSatisfy(
      (error: unknown) => isCriError(error) && error.reason === 'ErrImagePull' && /unauthorized|authentication required|no basic auth/i.test(error.message),
    );
    await expect(runtime.pullImage({ image: ref }, { username: user, password: 'wrong' })).rejects.toSatisfy((error: unknown) => isCriError(error) && error.reason === 'ErrImagePull');
    const auth = Buffer.from(`${user}:${password}`).toString('base64');
    const id = await runtime.pullImage({ image: ref }, { auth, serverAddress: address });
    expect(id).toBe(busyboxId);
    const status = await runtime.imageStatus({ image: ref });
    expect(status?.repoTags).toContain(ref);
    expect(status?.size).toBeGreaterThan(0);
    expect((await runtime.listImages({ image: { image: ref } })).map((image) => image.id)).toEqual([busyboxId]);
    expect((await runtime.listImages()).some((image) => image.repoTags.includes(ref))).toBe(true);
    const [fs] = await runtime.imageFsInfo();
    expect(fs?.usedBytes).toBeGreaterThan(0);
    await runtime.removeImage({ image: ref });
    await runtime.removeImage({ image: ref }); // absent: success
    expect(await runtime.imageStatus({ image: ref })).toBeUndefined();
    expect((await docker.getImage(busyboxId).inspect()).Id).toBe(busyboxId);
    await expect(runtime.pullImage({ image: 'UPPER/Case:1' })).rejects.toSatisfy((error: unknown) => isCriError(error) && error.reason === 'InvalidImageName');
  });
});
