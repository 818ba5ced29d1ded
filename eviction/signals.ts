/**
 * The real observation source: reads the node's eviction signals from the kernel.
 *   memory.available   = machine memory (systeminformation mem().total, i.e. MemTotal)
 *                        − root cgroup working set (cgroup-memory.ts), cgroup v1 and v2
 *   nodefs.*           = statfs(rootDir)          (kubelet root dir, /var/lib/kubelet)
 *   imagefs.*          = statfs(imageFsPath)      (runtime data root, e.g. /var/lib/docker)
 *   pid.available      = min(pid_max, threads-max) − tasks (/proc/loadavg 4th field), as the
 *                        kubelet's rlimit stats (MaxPID, NumOfRunningProcesses from sysinfo)
 * available uses f_bavail (blocks available to unprivileged users), capacity f_blocks, as cAdvisor.
 * containerfs.* is reported equal to imagefs.* (split image filesystem is a CRI-O feature).
 */
import { statfs, stat, readFile } from 'node:fs/promises';
import si from 'systeminformation';
import { detectCgroupLayout, readWorkingSet, type CgroupLayout } from './cgroup-memory.js';
import type { ObservationSource, Observations, SignalObservation } from './types.js';
import { systemClock, type Clock } from '../lib/clock.js';

interface FsReading {
  capacityBytes: number;
  availableBytes: number;
  inodes: number;
  inodesFree: number;
}

export async function readFsStats(path: string): Promise<FsReading> {
  try {
    const s = await statfs(path);
    return { capacityBytes: s.blocks * s.bsize, availableBytes: s.bavail * s.bsize, inodes: s.files, inodesFree: s.ffree };
  } catch (error) {
    throw new Error(`statfs of "${path}" failed`, { cause: error });
  }
}

interface PidReading {
  maxPid: number;
  running: number;
}

export async function readPidStats(procRoot = '/proc'): Promise<PidReading> {
  const read = async (file: string) => Number((await readFile(`${procRoot}/${file}`, 'utf8')).trim());
  const [pidMax, threadsMax, loadavg] = await Promise.all([read('sys/kernel/pid_max'), read('sys/kernel/threads-max'), readFile(`${procRoot}/loadavg`, 'utf8')]);
  const total = Number(loadavg.split(/\s+/)[3]?.split('/')[1]);
  if (!Number.isFinite(pidMax) || !Number.isFinite(total)) throw new Error(`unexpected /proc pid data (pid_max ${pidMax}, loadavg "${loadavg.trim()}")`);
  return { maxPid: Number.isFinite(threadsMax) && threadsMax > 0 ? Math.min(pidMax, threadsMax) : pidMax, running: total };
}

interface NodeSignalsOptions {
  /** nodefs: the kubelet root dir (--root-dir, /var/lib/kubelet), which holds pod volumes and logs. */
  rootDir: string;
  /** imagefs: the container runtime's data root (Docker: `docker info` DockerRootDir). */
  imageFsPath: string;
  /** Path of the memory cgroup that bounds the node (""/root by default). */
  memoryCgroup?: string;
  cgroupBase?: string;
  clock?: Clock;
}

export class NodeSignals implements ObservationSource {
  private layout: CgroupLayout | undefined;
  private readonly clock: Clock;

  constructor(private readonly options: NodeSignalsOptions) {
    this.clock = options.clock ?? systemClock;
  }

  async hasDedicatedImageFs(): Promise<boolean> {
    const [a, b] = await Promise.all([stat(this.options.rootDir), stat(this.options.imageFsPath)]);
    return a.dev !== b.dev;
  }

  /** memory.available only (the fast memory poll): root cgroup files + /proc/meminfo, ~1 ms. */
  async observeMemory(): Promise<SignalObservation> {
    this.layout ??= await detectCgroupLayout(this.options.cgroupBase);
    const [mem, reading] = await Promise.all([si.mem(), readWorkingSet(this.layout, this.options.memoryCgroup ?? '')]);
    const capacity = mem.total;
    return { capacity, available: Math.max(0, capacity - reading.workingSet), time: this.clock.now() };
  }

  async observe(): Promise<Observations> {
    const [memory, nodefs, imagefs, pids] = await Promise.all([
      this.observeMemory(),
      readFsStats(this.options.rootDir),
      readFsStats(this.options.imageFsPath),
      readPidStats(),
    ]);
    const time = this.clock.now();
    const bytes = (fs: FsReading): SignalObservation => ({ available: fs.availableBytes, capacity: fs.capacityBytes, time });
    const inodes = (fs: FsReading): SignalObservation => ({ available: fs.inodesFree, capacity: fs.inodes, time });
    return {
      'memory.available': memory,
      'nodefs.available': bytes(nodefs),
      'nodefs.inodesFree': inodes(nodefs),
      'imagefs.available': bytes(imagefs),
      'imagefs.inodesFree': inodes(imagefs),
      'containerfs.available': bytes(imagefs),
      'containerfs.inodesFree': inodes(imagefs),
      'pid.available': { available: Math.max(0, pids.maxPid - pids.running), capacity: pids.maxPid, time },
    };
  }
}
