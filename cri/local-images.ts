/**
 * Images built on the node itself, because no registry may be reachable: a busybox image
 * (Debian's static busybox plus its applet links) and a pause image for pod sandboxes.
 * Each is a root filesystem packed with tar and loaded with `docker import` (dockerode's
 * importImage), and carries a label with a content hash so that a rebuild only happens when the
 * inputs change. Building is idempotent and safe to run from several processes at once.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, symlink, writeFile, copyFile, chmod } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { run } from '../lib/exec.js';
import { errnoCode } from '../lib/errors.js';
import { isNotFound } from './docker/errors.js';

export const busyboxImage = 'knode.local/busybox:1';
export const pauseImage = 'knode.local/pause:3.10';
const hashLabel = 'io.knode.image.hash';

/**
 * The pause process: PID 1 of the sandbox, it holds the pod's namespaces, exits 0 on
 * SIGTERM/SIGINT, and reaps children (busybox ash's wait reaps any child) when the pod shares
 * its PID namespace.
 */
const pauseCommand = ['/bin/sh', '-c', "trap 'exit 0' TERM INT; while :; do sleep 2147483647 & wait $!; done"];

interface LocalImageSpec {
  ref: string;
  cmd: string[];
  /** Applets linked into /bin; all of them when undefined. */
  applets?: string[];
}

export const busyboxSpec: LocalImageSpec = { ref: busyboxImage, cmd: ['/bin/sh'] };
export const pauseSpec: LocalImageSpec = { ref: pauseImage, cmd: pauseCommand, applets: ['sh', 'sleep'] };

async function findBusybox(): Promise<string> {
  for (const path of ['/bin/busybox', '/usr/bin/busybox']) {
    try {
      await readFile(path, { flag: 'r' }).then(() => undefined);
      return path;
    } catch (error) {
      // Not there: try the next place.
      if (errnoCode(error) !== 'ENOENT') throw new Error(`cannot read ${path}`, { cause: error });
    }
  }
  throw new Error('busybox not found: install Debian\'s busybox-static (apt-get install busybox-static)');
}

async function applets(busybox: string): Promise<string[]> {
  const { stdout } = await run([busybox, '--list']);
  return stdout.split('\n').filter((name) => /^[\w.[-]+$/.test(name) && name !== 'busybox');
}

async function specHash(spec: LocalImageSpec, busybox: string): Promise<string> {
  const binary = await readFile(busybox);
  return createHash('sha256').update(binary).update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}

async function writeRootfs(dir: string, busybox: string, names: string[]): Promise<void> {
  for (const sub of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'var/www', 'var/run']) {
    await mkdir(join(dir, sub), { recursive: true });
  }
  await chmod(join(dir, 'tmp'), 0o1777);
  await copyFile(busybox, join(dir, 'bin/busybox'));
  await chmod(join(dir, 'bin/busybox'), 0o755);
  for (const name of names) await symlink('busybox', join(dir, 'bin', name));
  await writeFile(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}

async function imageHash(docker: Docker, ref: string): Promise<string | undefined> {
  try {
    const info = await docker.getImage(ref).inspect();
    return info.Config?.Labels?.[hashLabel];
  } catch (error) {
    // No such image: it is built.
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/** Builds the image when it is absent or its inputs changed; returns the image reference. */
export async function ensureLocalImage(docker: Docker, spec: LocalImageSpec): Promise<string> {
  const busybox = await findBusybox();
  const hash = await specHash(spec, busybox);
  if ((await imageHash(docker, spec.ref)) === hash) return spec.ref;
  const dir = await mkdtemp(join(tmpdir(), 'knode-image-'));
  try {
    const rootfs = join(dir, 'rootfs');
    await writeRootfs(rootfs, busybox, spec.applets ?? (await applets(busybox)));
    const tarball = join(dir, 'rootfs.tar');
    await run(['tar', '-C', rootfs, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarball, '.']);
    const [repo, tag] = splitRef(spec.ref);
    const changes = [
      `CMD ${JSON.stringify(spec.cmd)}`,
      'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin',
      `LABEL ${hashLabel}=${hash}`,
    ];
    const stream = await docker.importImage(createReadStream(tarball) as unknown as string, { repo, tag, changes } as object);
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve()));
    });
    if ((await imageHash(docker, spec.ref)) !== hash) throw new Error(`docker import of ${spec.ref} did not produce the expected image`);
    return spec.ref;
  } catch (error) {
    throw new Error(`failed to build local image ${spec.ref}`, { cause: error });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function splitRef(ref: string): [string, string] {
  const index = ref.lastIndexOf(':');
  return index > ref.lastIndexOf('/') ? [ref.slice(0, index), ref.slice(index + 1)] : [ref, 'latest'];
}
