/**
 * Image GC against the real Docker Engine. The test builds five throw-away images (docker import
 * of busybox plus a random filler, tagged and labelled uniquely for this run), and an ImageStore
 * adapter over dockerode that only ever LISTS this run's images, so the GC can never touch
 * anyone else's (the real CRI ImageService replaces the adapter in the agent).
 *
 * The image filesystem is virtual: its capacity is chosen from the real image sizes so that the
 * thresholds force the GC to free some images; "available" is recomputed from the images Docker
 * really still has after each removal.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type Docker from 'dockerode';
import { run } from '../../lib/exec.js';
import { createLogger } from '../../lib/log.js';
import { prerequisites } from '../helpers/prereq.js';
import { removeLabelledContainers, testDocker } from '../helpers/docker.js';
import { ImageGCManager, type ImageInfo, type ImageStore } from '../../eviction/image-gc.js';

const env = await prerequisites('root', 'docker', 'command:tar', 'command:busybox');
const runId = randomBytes(4).toString('hex');
const labelKey = 'io.knode.test.eviction-image-gc';
const repo = `knode-evtest/gc-${runId}`;
const Mi = 2 ** 20;

class DockerTestImageStore implements ImageStore {
  capacityBytes = 0;
  constructor(private readonly docker: Docker) {}
  async listImages(): Promise<ImageInfo[]> {
    const images = await this.docker.listImages({ filters: { label: [`${labelKey}=${runId}`] } });
    return images.map((image) => ({ id: image.Id, sizeBytes: image.Size, repoTags: image.RepoTags ?? [] }));
  }
  async imagesInUse(): Promise<Set<string>> {
    const containers = await this.docker.listContainers({ all: true });
    return new Set(containers.map((container) => container.ImageID));
  }
  async removeImage(id: string): Promise<void> {
    await this.docker
      .getImage(id)
      .remove()
      .catch((error: { statusCode?: number }) => {
        if (error.statusCode !== 404) throw error;
      });
  }
  async imageFsInfo(): Promise<{ capacityBytes: number; availableBytes: number }> {
    const used = (await this.listImages()).reduce((total, image) => total + image.sizeBytes, 0);
    return { capacityBytes: this.capacityBytes, availableBytes: this.capacityBytes - used };
  }
}

async function buildImage(docker: Docker, index: number, fillerBytes: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'knode-evgc-'));
  try {
    const rootfs = join(dir, 'rootfs');
    await mkdir(join(rootfs, 'bin'), { recursive: true });
    await copyFile('/bin/busybox', join(rootfs, 'bin/busybox')).catch(() => copyFile('/usr/bin/busybox', join(rootfs, 'bin/busybox')));
    await chmod(join(rootfs, 'bin/busybox'), 0o755);
    for (const applet of ['sh', 'sleep']) await symlink('busybox', join(rootfs, 'bin', applet));
    await writeFile(join(rootfs, 'filler'), randomBytes(fillerBytes));
    const tarball = join(dir, 'rootfs.tar');
    await run(['tar', '-C', rootfs, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarball, '.']);
    const changes = ['CMD ["/bin/sleep","3600"]', `LABEL ${labelKey}=${runId}`, `LABEL ${labelKey}.index=${index}`];
    const stream = await docker.importImage(createReadStream(tarball) as unknown as string, { repo, tag: String(index), changes } as object);
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve())));
    return (await docker.getImage(`${repo}:${index}`).inspect()).Id;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe.skipIf(env.skip)('image GC against the real Docker Engine', () => {
  let docker: Docker;
  const ids: string[] = [];

  beforeAll(async () => {
    docker = await testDocker();
    // Images 2 and 4 are big and never used; 0 is used once, then released; 1 and 3 stay in use.
    const fillers = [256 * 1024, 256 * 1024, 6 * Mi, 256 * 1024, 6 * Mi];
    for (const [index, filler] of fillers.entries()) ids.push(await buildImage(docker, index, filler));
  });

  afterAll(async () => {
    if (!docker) return;
    await removeLabelledContainers(docker, `${labelKey}=${runId}`);
    for (const id of ids) {
      await docker
        .getImage(id)
        .remove({ force: true })
        .catch(() => undefined);
    }
  });

  const container = (index: number, start: boolean) =>
    docker
      .createContainer({ Image: `${repo}:${index}`, Labels: { [labelKey]: runId }, HostConfig: { NetworkMode: 'none' } })
      .then(async (created) => {
        if (start) await created.start();
        return created;
      });

  it('frees unused images down to the low threshold, oldest last-used first, never an image in use', async () => {
    const store = new DockerTestImageStore(docker);
    const gc = new ImageGCManager(store, { highThresholdPercent: 80, lowThresholdPercent: 50, minAgeMs: 0, maxAgeMs: 0 }, { logger: createLogger('evgc-test', 'silent') });

    await container(1, true); // running
    await container(3, false); // created, never started: still "in use", as the kubelet counts it
    const transient = await container(0, false);
    await gc.detect(); // image 0 is last used now
    await transient.remove({ force: true });
    await new Promise((resolve) => setTimeout(resolve, 5));

    const images = await store.listImages();
    expect(images.map((image) => image.id).sort()).toEqual([...ids].sort());
    const size = (index: number) => images.find((image) => image.id === ids[index])!.sizeBytes;
    const total = images.reduce((sum, image) => sum + image.sizeBytes, 0);
    // Bytes to free = total − capacity/2 (low = 50%); make it need both big unused images (2, 4)
    // but not image 0: capacity = 2 × (total − (size2 + size4 − 1)).
    store.capacityBytes = 2 * (total - (size(2) + size(4) - 1));
    const before = await store.imageFsInfo();
    expect(100 - Math.trunc((before.availableBytes * 100) / before.capacityBytes)).toBeGreaterThanOrEqual(80);

    const result = await gc.garbageCollect();
    expect(new Set(result.removed)).toEqual(new Set([ids[2], ids[4]]));
    expect(result.freedBytes).toBeGreaterThanOrEqual(result.wantedBytes);
    const after = await store.imageFsInfo();
    expect(after.availableBytes).toBeGreaterThanOrEqual(after.capacityBytes * 0.5);
    const left = (await store.listImages()).map((image) => image.id).sort();
    expect(left).toEqual([ids[0], ids[1], ids[3]].sort());

    // Eviction reclaim frees every unused image: image 0 goes, the two in use stay.
    await gc.deleteUnusedImages();
    expect((await store.listImages()).map((image) => image.id).sort()).toEqual([ids[1], ids[3]].sort());
    // Docker agrees that they still exist and that image 2 is gone.
    await expect(docker.getImage(ids[1]!).inspect()).resolves.toBeTruthy();
    await expect(docker.getImage(ids[2]!).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });
});
