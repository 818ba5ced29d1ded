/**
 * Issue 25 item 3: the file store compacts by bytes, loads by streaming, checks each record,
 * refuses to start on a damaged one (naming file and offset) unless repaired, and a failing
 * compaction never fails a write that was committed.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../controlplane/storage/memory.js';
import { listSegments, scanFile } from '../../controlplane/storage/file-log.js';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'knode-cp-fs-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const key = (name: string) => `/registry/core/configmaps/ns/${name}`;
const object = (name: string, size = 10) => ({ metadata: { name }, data: { v: 'z'.repeat(size) } });

async function fill(dir: string, options: { compactBytes?: number }, writes: number, size: number): Promise<number> {
  const storage = new MemoryStorage({ dir, ...options });
  await storage.start();
  for (let i = 0; i < writes; i++) {
    const name = `k${i % 7}`;
    if (await storage.get(key(name))) await storage.update(key(name), object(name, size));
    else await storage.create(key(name), object(name, size));
    // As in a server, the event loop turns between writes (compaction runs in the background).
    await new Promise((resolve) => setImmediate(resolve));
  }
  const revision = storage.revision();
  await storage.stop();
  return revision;
}

/** Changes one byte of record `index` of the live segment (at `at` bytes into the record). */
function damage(dir: string, index: number, at: number): { segment: string; damagedAt: number; bytes: Buffer } {
  const segment = join(dir, listSegments(dir).at(-1) ?? '');
  const offsets: number[] = [];
  scanFile(segment, (_record, offset) => offsets.push(offset));
  const damagedAt = offsets[index] ?? 0;
  const bytes = readFileSync(segment);
  bytes[damagedAt + at] = bytes[damagedAt + at] === 0x61 ? 0x62 : 0x61;
  writeFileSync(segment, bytes);
  return { segment, damagedAt, bytes };
}

describe('issue 25 item 3: the file store', () => {
  it('compacts by bytes, not by record count: few large writes compact, many tiny ones below the size do not', async () => {
    const large = tempDir();
    await fill(large, { compactBytes: 200_000 }, 20, 50_000);
    expect(existsSync(join(large, 'snapshot.log'))).toBe(true);
    const totalLog = listSegments(large).reduce((sum, name) => sum + statSync(join(large, name)).size, 0);
    expect(totalLog).toBeLessThan(400_000);
    const small = tempDir();
    await fill(small, { compactBytes: 1_000_000 }, 400, 10);
    expect(existsSync(join(small, 'snapshot.log'))).toBe(false);
  });

  it('loads by streaming: records far larger than the read chunk, across compactions, replay exactly', async () => {
    const dir = tempDir();
    const revision = await fill(dir, { compactBytes: 300_000 }, 60, 40_000);
    const storage = new MemoryStorage({ dir, readChunkBytes: 4096 });
    await storage.start();
    expect(storage.revision()).toBe(revision);
    const items = (await storage.list('/registry/')).items;
    expect(items.map((i) => i.metadata.name)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6']);
    expect(items.every((i) => (i.data as { v: string }).v.length === 40_000)).toBe(true);
    await storage.stop();
  });

  it('refuses to start on a damaged record, naming the file and the offset; --repair keeps every record before it', async () => {
    const dir = tempDir();
    await fill(dir, { compactBytes: 100_000_000 }, 50, 100);
    const { segment, damagedAt } = damage(dir, 20, 40);
    const refused = new MemoryStorage({ dir });
    await expect(refused.start()).rejects.toThrow(`corrupt record in ${segment} at byte offset ${damagedAt}`);
    const repaired = new MemoryStorage({ dir, repair: true });
    await repaired.start();
    expect(repaired.revision()).toBe(20);
    expect(statSync(segment).size).toBe(damagedAt);
    await repaired.create(key('after'), object('after'));
    await repaired.stop();
    const again = new MemoryStorage({ dir });
    await again.start();
    expect(again.revision()).toBe(21);
    await again.stop();
  });

  it('a compaction that fails does not fail the write that triggered it, nor later ones', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'snapshot.log.tmp'));
    writeFileSync(join(dir, 'snapshot.log.tmp', 'blocker'), 'x');
    const errors: unknown[] = [];
    const log = { error: (fields: unknown) => errors.push(fields), warn: () => undefined } as unknown as import('../../lib/log.js').Logger;
    const storage = new MemoryStorage({ dir, compactBytes: 5_000, log });
    await storage.start();
    for (let i = 0; i < 40; i++) {
      await storage.create(key(`w${i}`), object(`w${i}`, 1_000));
      await storage.settle();
    }
    expect(errors.length).toBeGreaterThan(0);
    const revision = storage.revision();
    await storage.stop();
    const reopened = new MemoryStorage({ dir });
    await reopened.start();
    expect(reopened.revision()).toBe(revision);
    expect((await reopened.list('/registry/')).items).toHaveLength(40);
    await reopened.stop();
    expect(readdirSync(dir).filter((n) => n.startsWith('wal-')).length).toBeGreaterThan(1);
  });

  it('knode controlplane refuses a damaged log with the file and offset, and --repair starts it', async () => {
    const knode = fileURLToPath(new URL('../../bin/knode', import.meta.url));
    if (!existsSync(fileURLToPath(new URL('../../dist/bin/knode.js', import.meta.url)))) throw new Error('dist/ is missing: run "npm run build" first');
    const dataDir = tempDir();
    const store = join(dataDir, 'store');
    await fill(store, { compactBytes: 100_000_000 }, 30, 100);
    const { segment, damagedAt, bytes } = damage(store, 10, 3);
    const args = ['controlplane', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--store', 'file'];
    const refused = spawnSync(knode, args, { encoding: 'utf8', timeout: 30_000, env: { ...process.env, KNODE_LOG_LEVEL: 'silent' } });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain(`corrupt record in ${segment} at byte offset ${damagedAt}`);
    expect(refused.stderr).toContain('--repair');
    // With --repair it starts; SIGTERM after it is ready (spawnSync's timeout sends it).
    const repaired = spawnSync(knode, [...args, '--repair'], { encoding: 'utf8', timeout: 8_000, killSignal: 'SIGTERM', env: { ...process.env, KNODE_LOG_LEVEL: 'info' } });
    expect(repaired.stderr).toContain('control plane ready');
    expect(repaired.stderr).toContain('repair: cutting the log at a damaged record');
    // Every record before the damaged one kept; what follows is the server's own bootstrap.
    const after = readFileSync(segment);
    expect(after.subarray(0, damagedAt).equals(bytes.subarray(0, damagedAt))).toBe(true);
    const kept: number[] = [];
    scanFile(segment, (record) => kept.push(record.rev));
    expect(kept.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  }, 60_000);
});
