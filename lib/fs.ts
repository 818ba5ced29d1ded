/**
 * Write-then-rename: a reader sees the old file or the new one, never half of one. The temporary
 * file sits beside the target (same filesystem, so rename is atomic) and carries the pid, so two
 * writers never share one. With `durable` the data and the directory entry are fsynced, for
 * state that must survive a power cut (control-plane snapshots, IPAM allocations).
 */
import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

interface AtomicWriteOptions {
  mode?: number;
  /** fsync the file and its directory before returning. */
  durable?: boolean;
  /** Create the parent directory first. */
  mkdir?: boolean;
}

export function writeFileAtomic(file: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): void {
  if (options.mkdir) mkdirSync(dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  try {
    const fd = openSync(temp, 'w', options.mode ?? 0o644);
    try {
      if (options.mode !== undefined) fchmodSync(fd, options.mode); // not narrowed by the umask
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      if (options.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new Error(`cannot write "${file}"`, { cause: error });
  }
  if (options.durable) {
    const dir = openSync(dirname(file), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}
