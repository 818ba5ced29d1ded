/**
 * One conformance suite for every storage backend (memory, file, etcd): revisions, conditional
 * writes, ordered change events, and — for the durable ones — a restart that keeps objects and
 * resourceVersions.
 */
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../controlplane/storage/memory.js';
import { listSegments } from '../../controlplane/storage/file-log.js';
import { StorageError, type Storage, type StoredEvent } from '../../controlplane/storage/types.js';
import { storageBackends } from './controlplane-storage-backends.js';

const backends = await storageBackends();

describe.each(backends)('storage conformance: $name', (backend) => {
  let storage: Storage;
  beforeAll(async () => {
    storage = await backend.open();
  });
  afterAll(async () => {
    await storage?.stop();
    await backend.cleanup();
  });

  it('creates with a new revision and refuses duplicates', async () => {
    const before = storage.revision();
    const created = await storage.create('/registry/core/configmaps/ns/a', { metadata: { name: 'a' } });
    expect(Number(created.metadata.resourceVersion)).toBeGreaterThan(before);
    expect(storage.revision()).toBe(Number(created.metadata.resourceVersion));
    await expect(storage.create('/registry/core/configmaps/ns/a', { metadata: { name: 'a' } })).rejects.toMatchObject({ kind: 'AlreadyExists' });
  });

  it('updates conditionally on the revision read', async () => {
    const current = (await storage.get('/registry/core/configmaps/ns/a'))!;
    const rv = Number(current.metadata.resourceVersion);
    const updated = await storage.update('/registry/core/configmaps/ns/a', { ...current, data: { x: '1' } }, rv);
    expect(Number(updated.metadata.resourceVersion)).toBeGreaterThan(rv);
    await expect(storage.update('/registry/core/configmaps/ns/a', current, rv)).rejects.toBeInstanceOf(StorageError);
    await expect(storage.update('/registry/core/configmaps/ns/missing', current)).rejects.toMatchObject({ kind: 'NotFound' });
  });

  it('lists by prefix in key order with the current revision', async () => {
    await storage.create('/registry/core/configmaps/ns/c', { metadata: { name: 'c' } });
    await storage.create('/registry/core/configmaps/ns/b', { metadata: { name: 'b' } });
    await storage.create('/registry/core/configmaps/other/z', { metadata: { name: 'z' } });
    const list = await storage.list('/registry/core/configmaps/ns/');
    expect(list.items.map((i) => i.metadata.name)).toEqual(['a', 'b', 'c']);
    expect(list.revision).toBe(storage.revision());
  });

  it('publishes every change in revision order, with the previous state', async () => {
    const events: StoredEvent[] = [];
    const off = storage.subscribe((event) => events.push(event));
    const a = (await storage.get('/registry/core/configmaps/ns/b'))!;
    await storage.update('/registry/core/configmaps/ns/b', { ...a, data: { y: '2' } });
    await storage.delete('/registry/core/configmaps/ns/c');
    await storage.create('/registry/core/configmaps/ns/d', { metadata: { name: 'd' } });
    const deadline = Date.now() + 10_000;
    while (events.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    off();
    expect(events.map((e) => e.type)).toEqual(['MODIFIED', 'DELETED', 'ADDED']);
    expect(events[0]?.previous?.data).toBeUndefined();
    expect(events[1]?.object.metadata.name).toBe('c');
    const revisions = events.map((e) => e.revision);
    expect([...revisions].sort((x, y) => x - y)).toEqual(revisions);
    expect(Number(events[1]?.object.metadata.resourceVersion)).toBe(events[1]?.revision);
  });

  it('deletes conditionally', async () => {
    const d = (await storage.get('/registry/core/configmaps/ns/d'))!;
    await expect(storage.delete('/registry/core/configmaps/ns/d', Number(d.metadata.resourceVersion) - 1)).rejects.toMatchObject({ kind: 'Conflict' });
    await storage.delete('/registry/core/configmaps/ns/d', Number(d.metadata.resourceVersion));
    expect(await storage.get('/registry/core/configmaps/ns/d')).toBeUndefined();
    await expect(storage.delete('/registry/core/configmaps/ns/d')).rejects.toMatchObject({ kind: 'NotFound' });
  });

  // Only durable backends promise this, so the memory store does not define the test at all.
  if (backend.durable) it('keeps objects and revisions across a restart', async () => {
    const before = await storage.list('/registry/');
    const revision = storage.revision();
    await storage.stop();
    storage = await backend.reopen();
    const after = await storage.list('/registry/');
    expect(after.items).toEqual(before.items);
    expect(storage.revision()).toBe(revision);
    const next = await storage.create('/registry/core/configmaps/ns/e', { metadata: { name: 'e' } });
    expect(Number(next.metadata.resourceVersion)).toBeGreaterThan(revision);
  });
});

describe('file storage write-ahead log', () => {
  it('drops a torn last record and keeps later writes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knode-cp-torn-'));
    try {
      const first = new MemoryStorage({ dir });
      await first.start();
      await first.create('/registry/core/configmaps/ns/a', { metadata: { name: 'a' } });
      await first.stop();
      appendFileSync(join(dir, listSegments(dir).at(-1) ?? 'missing'), '{"op":"put","key":"/registry/core/configmaps/ns/torn","rev":2,"obj":{"meta');
      const second = new MemoryStorage({ dir });
      await second.start();
      expect(second.revision()).toBe(1);
      await second.create('/registry/core/configmaps/ns/b', { metadata: { name: 'b' } });
      await second.stop();
      const third = new MemoryStorage({ dir });
      await third.start();
      expect((await third.list('/registry/')).items.map((i) => i.metadata.name)).toEqual(['a', 'b']);
      expect(third.revision()).toBe(2);
      await third.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('file storage compaction', () => {
  it('folds the log into a snapshot without losing writes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knode-cp-wal-'));
    try {
      const first = new MemoryStorage({ dir, compactBytes: 600 });
      await first.start();
      for (let i = 0; i < 30; i++) await first.create(`/registry/core/configmaps/ns/k${i}`, { metadata: { name: `k${i}` } });
      for (let i = 0; i < 30; i += 3) await first.delete(`/registry/core/configmaps/ns/k${i}`);
      const revision = first.revision();
      await first.stop();
      const second = new MemoryStorage({ dir, compactBytes: 600 });
      await second.start();
      expect(second.revision()).toBe(revision);
      expect((await second.list('/registry/')).items).toHaveLength(20);
      await second.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
