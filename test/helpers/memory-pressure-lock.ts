/**
 * One machine-wide lock for tests that create real memory pressure (they set thresholds relative
 * to the memory available "now", so two at once would trip each other). Integration files run in
 * parallel forks: each such test holds this lock while its pressure exists. A directory made with
 * mkdir (atomic) holds the owner's pid; a lock whose owner is gone is taken over.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const lockDir = '/tmp/knode-test-memory-pressure.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits (up to `timeoutMs`) for the lock; returns its release function. */
export async function acquireMemoryPressureLock(timeoutMs = 180_000): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, 'pid'), String(process.pid));
      return async () => {
        await rm(lockDir, { recursive: true, force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create ${lockDir}`, { cause: error });
    }
    const owner = Number((await readFile(join(lockDir, 'pid'), 'utf8').catch(() => '')).trim());
    // No pid yet: the owner is between mkdir and writeFile; a dead owner's lock is stale.
    if (owner > 0 && !alive(owner)) await rm(lockDir, { recursive: true, force: true });
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the memory-pressure test lock ${lockDir} (held by pid ${owner || 'unknown'})`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
