/**
 * Pod cgroup directories under the QoS hierarchy (pkg/kubelet/cm/pod_container_manager_linux.go,
 * cgroup_manager_linux.go): the version of the mounted tree, creating a cgroup directory with
 * its files written (idempotent), and removing the pod's (then empty) cgroup directories once
 * the pod is gone, in every mounted hierarchy (cgroup v1 controllers, or the v2 unified tree).
 * The QoS tier directories stay, as the kubelet's do. Thin: what to write is cgroups/pod-resources.ts.
 */
import { mkdir, readFile, readdir, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CgroupWrite } from './pod-resources.js';
import { errnoCode, onErrno } from '../../lib/errors.js';

function candidates(parent: string, root: string, entries: { name: string; isDirectory(): boolean }[]): string[] {
  return [join(root, parent), ...entries.filter((e) => e.isDirectory()).map((e) => join(root, e.name, parent))];
}

// ENOENT is "does not exist"; any other failure (EACCES …) is an error of the caller's step.
const exists = (path: string): Promise<boolean> => stat(path).then(() => true, onErrno(['ENOENT', 'ENOTDIR'], false));

/**
 * 2 when `root` is the cgroup v2 unified mount (it has cgroup.controllers), 1 when it holds v1
 * hierarchies (a cpu or memory directory), undefined when no cgroup tree is there. A hybrid
 * host (v1 controllers plus /sys/fs/cgroup/unified) counts as v1, as for runc.
 */
export async function cgroupVersion(root: string): Promise<1 | 2 | undefined> {
  if (await exists(join(root, 'cgroup.controllers'))) return 2;
  if ((await exists(join(root, 'cpu'))) || (await exists(join(root, 'memory')))) return 1;
  return undefined;
}

function checkPath(path: string): void {
  if (!path.startsWith('/') || path.split('/').includes('..') || path === '/') throw new Error(`refusing cgroup path "${path}": must be absolute, below the root, without ".."`);
}

/** The directory of `path` for a controller: <root>/<controller>/<path> on v1, <root>/<path> on v2. */
function cgroupDir(root: string, version: 1 | 2, controller: string, path: string): string {
  checkPath(path);
  return version === 2 ? join(root, path) : join(root, controller, path);
}

/** v2: the controllers a cgroup directory offers (cgroup.controllers); empty when unreadable. */
async function availableControllers(dir: string): Promise<Set<string>> {
  // Absent (v1, or a cgroup not created yet): no controllers.
  const text = await readFile(join(dir, 'cgroup.controllers'), 'utf8').catch(onErrno(['ENOENT'], ''));
  return new Set(text.split(/\s+/).filter(Boolean));
}

/**
 * v2: enables `controllers` for the children of each ancestor of `path` below the mount root
 * (never the root's own cgroup.subtree_control, which the host manages), as runc does for a
 * cgroup parent. Controllers an ancestor does not offer are skipped.
 */
async function delegateV2(root: string, path: string, controllers: string[]): Promise<void> {
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i < parts.length; i++) {
    const dir = join(root, ...parts.slice(0, i));
    const offered = await availableControllers(dir);
    const wanted = controllers.filter((c) => offered.has(c));
    if (wanted.length > 0) await writeFile(join(dir, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
  }
}

/**
 * Creates the cgroup `path` (and its parents) and writes `writes` into it. v1: in the
 * hierarchy of each write's controller (a controller without a mounted hierarchy is skipped);
 * v2: in the unified tree, after delegating the controllers down to it. Idempotent.
 */
export async function ensureCgroup(root: string, version: 1 | 2, path: string, writes: CgroupWrite[]): Promise<void> {
  checkPath(path);
  const controllers = [...new Set(writes.map((w) => w.controller))];
  let offered: Set<string> | undefined;
  if (version === 2) {
    await mkdir(join(root, path), { recursive: true });
    await delegateV2(root, path, controllers);
    offered = await availableControllers(join(root, path));
  }
  // Controllers side by side (different files; this is on every pod start's critical path), a
  // controller's own files in order (cpu.cfs_period_us before cpu.cfs_quota_us, as runc).
  const ensureController = async (controller: string): Promise<void> => {
    if (version === 1 && !(await exists(join(root, controller)))) return;
    if (offered && !offered.has(controller)) return;
    const dir = cgroupDir(root, version, controller, path);
    if (version === 1) await mkdir(dir, { recursive: true });
    for (const write of writes.filter((w) => w.controller === controller)) {
      try {
        await writeFile(join(dir, write.file), write.value);
      } catch (error) {
        throw new Error(`cannot write ${write.value} to ${join(dir, write.file)}`, { cause: error });
      }
    }
  };
  await Promise.all(controllers.map(ensureController));
}

/** Reads one cgroup file (trimmed), or undefined when absent. */
async function readCgroupFile(root: string, version: 1 | 2, controller: string, path: string, file: string): Promise<string | undefined> {
  // Absent (a controller this hierarchy does not have, a cgroup not created yet): undefined.
  return readFile(join(cgroupDir(root, version, controller, path), file), 'utf8').then((t) => t.trim(), onErrno(['ENOENT'], undefined));
}

/** How many hierarchies still have the pod cgroup directory. */
export async function countPodCgroups(parent: string, root = '/sys/fs/cgroup'): Promise<number> {
  // No cgroup tree mounted there: no pod cgroups.
  const entries = await readdir(root, { withFileTypes: true }).catch(onErrno(['ENOENT'], []));
  let count = 0;
  // Absent in a hierarchy (ENOENT): not counted there.
  for (const dir of candidates(parent, root, entries)) if (await stat(dir).then((s) => s.isDirectory(), onErrno(['ENOENT', 'ENOTDIR'], false))) count++;
  return count;
}

/** Removes <root>/<hierarchy>/<parent> for each hierarchy (or <root>/<parent> on v2). Best effort. */
export async function removePodCgroup(parent: string, root = '/sys/fs/cgroup'): Promise<number> {
  // cgroupfs: …/pod<uid>; systemd: …/kubepods[-<tier>]-pod<uid with _>.slice
  if (!/\/(pod[0-9a-zA-Z_-]+|kubepods(-burstable|-besteffort)?-pod[0-9a-zA-Z_]+\.slice)$/.test(parent) || parent.includes('..')) throw new Error(`refusing to remove cgroup "${parent}": not a pod cgroup`);
  // No cgroup tree mounted there: nothing to remove.
  const entries = await readdir(root, { withFileTypes: true }).catch(onErrno(['ENOENT'], []));
  let removed = 0;
  for (const dir of candidates(parent, root, entries)) {
    try {
      await rmdir(dir);
      removed++;
    } catch (error) {
      // Absent, or still in use (EBUSY; the caller retries): not removed here. Anything else is an error.
      if (!['ENOENT', 'EBUSY', 'ENOTEMPTY'].includes(errnoCode(error) ?? '')) throw new Error(`cannot remove cgroup ${dir}`, { cause: error });
    }
  }
  return removed;
}
