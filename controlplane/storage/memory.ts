/**
 * In-memory storage, optionally durable: with a directory, every acknowledged write is appended
 * to a write-ahead log and fsync'ed before the call resolves; on start the last snapshot plus
 * the log are replayed, so objects and their resourceVersions survive a restart. The log is
 * folded into a new snapshot (written to a temp file, fsync'ed, renamed) every
 * `compactEvery` records.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { StorageError, revisionOf, withRevision, type KObject, type Storage, type StoredEvent } from './types.js';

interface WalRecord {
  op: 'put' | 'del';
  key: string;
  rev: number;
  obj?: KObject;
}

interface Snapshot {
  revision: number;
  objects: Record<string, KObject>;
}

export interface MemoryStorageOptions {
  /** Persist to this directory (file store); memory only when absent. */
  dir?: string;
  compactEvery?: number;
}

export class MemoryStorage implements Storage {
  private readonly objects = new Map<string, KObject>();
  private readonly listeners = new Set<(event: StoredEvent) => void>();
  private rev = 0;
  private walFd: number | undefined;
  private walRecords = 0;
  private readonly compactEvery: number;

  constructor(private readonly options: MemoryStorageOptions = {}) {
    this.compactEvery = options.compactEvery ?? 10_000;
  }

  async start(): Promise<void> {
    const dir = this.options.dir;
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    this.load(dir);
    this.walFd = openSync(join(dir, 'wal.jsonl'), 'a');
  }

  async stop(): Promise<void> {
    if (this.walFd !== undefined) {
      closeSync(this.walFd);
      this.walFd = undefined;
    }
    this.listeners.clear();
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
  private append(record: WalRecord): void {
    if (this.walFd === undefined) return;
    writeSync(this.walFd, `${JSON.stringify(record)}\n`);
    fsyncSync(this.walFd);
    this.walRecords++;
  }

  private maybeCompact(): void {
    if (this.walFd !== undefined && this.walRecords >= this.compactEvery) this.compact();
  }

  private compact(): void {
    const dir = this.options.dir as string;
    const snapshot: Snapshot = { revision: this.rev, objects: Object.fromEntries(this.objects) };
    const tmp = join(dir, 'snapshot.json.tmp');
    const fd = openSync(tmp, 'w');
    writeSync(fd, JSON.stringify(snapshot));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, join(dir, 'snapshot.json'));
    closeSync(this.walFd as number);
    this.walFd = openSync(join(dir, 'wal.jsonl'), 'w');
    fsyncSync(this.walFd);
    this.walRecords = 0;
  }

  private load(dir: string): void {
    const snapshotFile = join(dir, 'snapshot.json');
    if (existsSync(snapshotFile)) {
      let snapshot: Snapshot;
      try {
        snapshot = JSON.parse(readFileSync(snapshotFile, 'utf8')) as Snapshot;
      } catch (error) {
        throw new Error(`cannot read the storage snapshot ${snapshotFile}`, { cause: error });
      }
      this.rev = snapshot.revision;
      for (const [key, object] of Object.entries(snapshot.objects)) this.objects.set(key, object);
    }
    const walFile = join(dir, 'wal.jsonl');
    if (!existsSync(walFile)) return;
    const text = readFileSync(walFile);
    let offset = 0;
    while (offset < text.length) {
      const end = text.indexOf(0x0a, offset);
      let record: WalRecord;
      try {
        if (end < 0) throw new Error('no newline');
        record = JSON.parse(text.subarray(offset, end).toString('utf8')) as WalRecord;
      } catch {
        // A torn last record was never acknowledged: cut it off so later appends start clean.
        truncateSync(walFile, offset);
        break;
      }
      offset = end + 1;
      if (record.rev <= this.rev) continue;
      if (record.op === 'put' && record.obj) this.objects.set(record.key, record.obj);
      else this.objects.delete(record.key);
      this.rev = record.rev;
      this.walRecords++;
    }
  }
}
