/**
 * Pod cgroups under the QoS hierarchy (pkg/kubelet/cm/pod_container_manager_linux.go): the
 * runtime creates /kubepods/<tier>/pod<uid> when a container names it as its cgroup parent; the
 * agent removes the pod's (then empty) cgroup directories once the pod is gone, in every
 * mounted hierarchy (cgroup v1 controllers, or the v2 unified tree). The QoS tier directories
 * stay, as the kubelet's do.
 */
import { readdir, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

function candidates(parent: string, root: string, entries: { name: string; isDirectory(): boolean }[]): string[] {
  return [join(root, parent), ...entries.filter((e) => e.isDirectory()).map((e) => join(root, e.name, parent))];
}

/** How many hierarchies still have the pod cgroup directory. */
export async function countPodCgroups(parent: string, root = '/sys/fs/cgroup'): Promise<number> {
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  let count = 0;
  for (const dir of candidates(parent, root, entries)) if (await stat(dir).then((s) => s.isDirectory(), () => false)) count++;
  return count;
}

/** Removes <root>/<hierarchy>/<parent> for each hierarchy (or <root>/<parent> on v2). Best effort. */
export async function removePodCgroup(parent: string, root = '/sys/fs/cgroup'): Promise<number> {
  if (!/\/pod[0-9a-zA-Z_-]+$/.test(parent) || parent.includes('..')) throw new Error(`refusing to remove cgroup "${parent}": not a pod cgroup`);
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  let removed = 0;
  for (const dir of candidates(parent, root, entries)) {
    try {
      await rmdir(dir);
      removed++;
    } catch {
      // absent, or still in use (EBUSY): nothing to do
    }
  }
  return removed;
}
