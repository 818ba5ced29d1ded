/**
 * Memory working set from cgroups, as the kubelet (through cAdvisor) computes it:
 *   working_set = usage − inactive_file   (never below 0)
 *   cgroup v1: memory.usage_in_bytes − memory.stat total_inactive_file
 *   cgroup v2: memory.current        − memory.stat inactive_file
 * The v2 root cgroup has no memory.current; runc/cAdvisor emulate it from /proc/meminfo
 * (MemTotal − MemFree), which we do too. memory.available = capacity − root working set
 * (docs: node-pressure-eviction "memory.available"; kubelet's memory-available.sh).
 */
import { readFile, access } from 'node:fs/promises';
import { join } from 'node:path';

type CgroupVersion = 1 | 2;

export interface CgroupLayout {
  version: CgroupVersion;
  /** The memory hierarchy's mount point: /sys/fs/cgroup/memory (v1) or /sys/fs/cgroup (v2). */
  memoryRoot: string;
}

/** v2 when /sys/fs/cgroup/cgroup.controllers exists (unified mount), else v1. */
export async function detectCgroupLayout(base = '/sys/fs/cgroup'): Promise<CgroupLayout> {
  try {
    await access(join(base, 'cgroup.controllers'));
    return { version: 2, memoryRoot: base };
  } catch {
    // Not v2 (no unified cgroup.controllers): then v1's memory controller must be there.
    await access(join(base, 'memory', 'memory.usage_in_bytes')).catch((error: unknown) => {
      throw new Error(`no cgroup memory controller under ${base} (neither v2 cgroup.controllers nor v1 memory/)`, { cause: error });
    });
    return { version: 1, memoryRoot: join(base, 'memory') };
  }
}

async function readNumber(path: string): Promise<number> {
  const text = (await readFile(path, 'utf8')).trim();
  const value = Number(text);
  if (!Number.isFinite(value)) throw new Error(`unexpected content in ${path}: "${text.slice(0, 40)}"`);
  return value;
}

async function readKeyedFile(path: string): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined) result.set(key.replace(/:$/, ''), Number(value));
  }
  return result;
}

/** /proc/meminfo in bytes (values are in kB). */
async function readMeminfo(path = '/proc/meminfo'): Promise<Map<string, number>> {
  const raw = await readKeyedFile(path);
  return new Map([...raw].map(([key, kb]) => [key, kb * 1024]));
}

interface MemoryReading {
  usage: number;
  inactiveFile: number;
  workingSet: number;
}

/**
 * Working set of a cgroup given by its path relative to the memory hierarchy ("" = root,
 * "docker/<id>", "system.slice/docker-<id>.scope").
 */
export async function readWorkingSet(layout: CgroupLayout, relative: string): Promise<MemoryReading> {
  const dir = join(layout.memoryRoot, relative);
  try {
    const stat = await readKeyedFile(join(dir, 'memory.stat'));
    let usage: number;
    let inactiveFile: number;
    if (layout.version === 1) {
      usage = await readNumber(join(dir, 'memory.usage_in_bytes'));
      inactiveFile = stat.get('total_inactive_file') ?? 0;
    } else {
      inactiveFile = stat.get('inactive_file') ?? 0;
      if (relative === '' || relative === '/') {
        const meminfo = await readMeminfo();
        usage = (meminfo.get('MemTotal') ?? 0) - (meminfo.get('MemFree') ?? 0);
      } else {
        usage = await readNumber(join(dir, 'memory.current'));
      }
    }
    return { usage, inactiveFile, workingSet: Math.max(0, usage - inactiveFile) };
  } catch (error) {
    throw new Error(`failed to read memory working set of cgroup "${dir}"`, { cause: error });
  }
}

/** The memory cgroup of a process, relative to the hierarchy, from /proc/<pid>/cgroup. */
export async function memoryCgroupOfPid(layout: CgroupLayout, pid: number): Promise<string> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch((error: unknown) => {
    throw new Error(`cannot read cgroups of pid ${pid}`, { cause: error });
  });
  for (const line of text.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers === undefined || path === undefined) continue;
    const matches = layout.version === 2 ? controllers === '' : controllers.split(',').includes('memory');
    if (matches) return path.replace(/^\//, '');
  }
  throw new Error(`pid ${pid} has no ${layout.version === 2 ? 'unified' : 'memory'} cgroup in /proc/${pid}/cgroup`);
}
