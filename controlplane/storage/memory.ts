/**
 * In-memory storage, optionally durable: with a directory, every acknowledged write is in the
 * file store's log (fsync'ed) before the call resolves, and a restart replays snapshot and log,
 * so objects and their resourceVersions survive (file-store.ts has the format and compaction).
 */
import type { Logger } from '../../lib/log.js';
import { FileStore } from './file-store.js';
import { StorageError, revisionOf, withRevision, type KObject, type Storage, type StoredEvent } from './types.js';

export interface MemoryStorageOptions {
  /** Persist to this directory (file store); memory only when absent. */
  dir?: string;
  /** Compact once the live log segment holds this many bytes (default 64 MiB). */
  compactBytes?: number;
  /** Start from a damaged log by keeping every record before the first damaged one. */
  repair?: boolean;
  /** Read chunk size when loading (default 1 MiB). */
  readChunkBytes?: number;
  log?: Logger;
}

export class MemoryStorage implements Storage {
  private readonly objects = new Map<string, KObject>();
  private readonly listeners = new Set<(event: StoredEvent) => void>();
  private rev = 0;
  private readonly file: FileStore | undefined;

  constructor(options: MemoryStorageOptions = {}) {
    const { dir } = options;
    this.file = dir ? new FileStore({ dir, compactBytes: options.compactBytes, repair: options.repair, readChunkBytes: options.readChunkBytes, log: options.log }) : undefined;
  }

  async start(): Promise<void> {
    if (!this.file) return;
    const state = { revision: this.rev, objects: this.objects };
    this.file.open(state);
    this.rev = state.revision;
  }

  async stop(): Promise<void> {
    await this.file?.close();
    this.listeners.clear();
  }

  /** Waits for a background compaction to finish (tests). */
  async settle(): Promise<void> {
    await this.file?.settle();
  }

  revision(): number {
    return this.rev;
  }

  async get(key: string): Promise<KObject | undefined> {
    return this.objects.get(key);
  }

  async list(prefix: string): Promise<{ items: KObject[]; revision: number }> {
    const keys = [...this.objects.keys()].filter((key) => key.startsWith(prefix)).sort();
    return { items: keys.map((key) => this.objects.get(key) as KObject), revision: this.rev };
  }

  async create(key: string, object: KObject): Promise<KObject> {
    if (this.objects.has(key)) throw new StorageError('AlreadyExists', key);
    return this.put(key, object, 'ADDED');
  }

  async update(key: string, object: KObject, expectedRevision?: number): Promise<KObject> {
    const current = this.objects.get(key);
    if (!current) throw new StorageError('NotFound', key);
    if (expectedRevision !== undefined && revisionOf(current) !== expectedRevision) throw new StorageError('Conflict', key);
    return this.put(key, object, 'MODIFIED');
  }

  async delete(key: string, expectedRevision?: number): Promise<KObject> {
    const current = this.objects.get(key);
    if (!current) throw new StorageError('NotFound', key);
    if (expectedRevision !== undefined && revisionOf(current) !== expectedRevision) throw new StorageError('Conflict', key);
    const revision = this.rev + 1;
    this.append({ op: 'del', key, rev: revision });
    this.rev = revision;
    this.objects.delete(key);
    this.maybeCompact();
    const last = withRevision(current, revision);
    this.publish({ type: 'DELETED', key, object: last, previous: current, revision });
    return current;
  }

  subscribe(listener: (event: StoredEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private put(key: string, object: KObject, type: 'ADDED' | 'MODIFIED'): KObject {
    const revision = this.rev + 1;
    const stored = withRevision(object, revision);
    const previous = this.objects.get(key);
    this.append({ op: 'put', key, rev: revision, obj: stored });
    this.rev = revision;
    this.objects.set(key, stored);
    this.maybeCompact();
    this.publish({ type, key, object: stored, previous, revision });
    return stored;
  }

  private publish(event: StoredEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  /** Durable before acknowledged: the record is on disk (fsync) before the write returns. */
  private append(record: { op: 'put' | 'del'; key: string; rev: number; obj?: KObject }): void {
    this.file?.append(record);
  }

  /** After the write is acknowledged state-wise; a compaction failure never fails a write. */
  private maybeCompact(): void {
    this.file?.maybeCompact({ revision: this.rev, objects: this.objects });
  }
}
