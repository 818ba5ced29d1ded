/**
 * Durability of the file store: every acknowledged write is appended to the live log segment
 * and fsync'ed before the write resolves; on start the snapshot and the segments are replayed
 * by streaming (file-log.ts). When the live segment passes `compactBytes`, compaction runs
 * after the write was acknowledged, never inside it (issue 25 item 3: a failing compaction
 * made committed writes answer 500): a new segment is opened, the state at that revision is
 * written to `snapshot.log.tmp` in chunks, fsync'ed and renamed over `snapshot.log` (the
 * directory fsync'ed too), and only then are the segments it covers removed. A crash at any
 * point leaves a snapshot plus segments that replay to the same state.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../lib/log.js';
import { CorruptRecordError, encodeRecord, legacySnapshotFile, listSegments, scanFile, segmentName, snapshotFile, type LogRecord } from './file-log.js';
import type { KObject } from './types.js';
import { isRecord } from '../util.js';

interface FileStoreOptions {
  dir: string;
  /** Compact once the live segment holds this many bytes (default 64 MiB). */
  compactBytes?: number;
  /** Keep every record before the first damaged one instead of refusing to start. */
  repair?: boolean;
  /** Read chunk size while loading (tests use a small one to cross chunk borders). */
  readChunkBytes?: number;
  log?: Logger;
}

interface LoadedState {
  revision: number;
  objects: Map<string, KObject>;
}

export class FileStore {
  private fd: number | undefined;
  private liveBytes = 0;
  private compaction: Promise<void> | undefined;
  private nextCompactAt: number;
  private readonly compactBytes: number;

  constructor(private readonly options: FileStoreOptions) {
    this.compactBytes = options.compactBytes ?? 64 * 1024 * 1024;
    this.nextCompactAt = this.compactBytes;
  }

  /** Replays the directory into `state` and opens the live segment for appends. */
  open(state: LoadedState): void {
    const { dir } = this.options;
    mkdirSync(dir, { recursive: true });
    this.loadSnapshot(state);
    const segments = listSegments(dir);
    for (const [i, name] of segments.entries()) {
      const last = i === segments.length - 1;
      if (!this.replaySegment(join(dir, name), last, state)) {
        // Repaired: the segments after a damaged record would leave a gap; set them aside.
        for (const later of segments.slice(i + 1)) renameSync(join(dir, later), join(dir, `${later}.after-corruption`));
        break;
      }
    }
    const live = listSegments(dir).at(-1);
    const file = join(dir, live ?? segmentName(state.revision + 1));
    this.fd = openSync(file, 'a');
    this.liveBytes = fstatSync(this.fd).size;
    this.nextCompactAt = this.liveBytes + this.compactBytes;
  }

  /** Durable before acknowledged: on disk (fsync) when this returns. */
  append(record: LogRecord): void {
    if (this.fd === undefined) throw new Error('the file store is not open');
    const line = encodeRecord(record);
    writeSync(this.fd, line);
    fsyncSync(this.fd);
    this.liveBytes += line.length;
  }

  /** Starts a compaction in the background when the live segment is large enough. */
  maybeCompact(state: LoadedState): void {
    if (this.fd === undefined || this.compaction || this.liveBytes < this.nextCompactAt) return;
    const snapshot: LoadedState = { revision: state.revision, objects: new Map(state.objects) };
    // Roll first: writes from now on go to a segment the snapshot does not replace.
    let covered: string[];
    try {
      covered = listSegments(this.options.dir);
      const next = openSync(join(this.options.dir, segmentName(snapshot.revision + 1)), 'a');
      closeSync(this.fd);
      this.fd = next;
    } catch (error) {
      this.nextCompactAt = this.liveBytes + this.compactBytes;
      this.options.log?.error({ err: error, dir: this.options.dir }, 'cannot start a new log segment; compaction retried later');
      return;
    }
    this.liveBytes = 0;
    this.nextCompactAt = this.compactBytes;
    this.compaction = this.writeSnapshot(snapshot, covered)
      .catch((error: unknown) => this.options.log?.error({ err: error, dir: this.options.dir }, 'storage compaction failed; the log is kept and compaction retried later'))
      .finally(() => {
        this.compaction = undefined;
      });
  }

  /** Waits for a running compaction (tests, shutdown). */
  async settle(): Promise<void> {
    await this.compaction;
  }

  async close(): Promise<void> {
    await this.settle();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private async writeSnapshot(state: LoadedState, covered: string[]): Promise<void> {
    const { dir } = this.options;
    const tmp = join(dir, `${snapshotFile}.tmp`);
    const handle = await open(tmp, 'w');
    try {
      let batch: Buffer[] = [encodeRecord({ op: 'snapshot', key: '', rev: state.revision })];
      let batchBytes = 0;
      for (const [key, obj] of state.objects) {
        const line = encodeRecord({ op: 'put', key, rev: state.revision, obj });
        batch.push(line);
        batchBytes += line.length;
        if (batchBytes >= 1024 * 1024) {
          await handle.write(Buffer.concat(batch));
          batch = [];
          batchBytes = 0;
        }
      }
      await handle.write(Buffer.concat(batch));
      await handle.sync();
    } catch (error) {
      await handle.close();
      await rm(tmp, { force: true });
      throw error;
    }
    await handle.close();
    await rename(tmp, join(dir, snapshotFile));
    fsyncDir(dir);
    for (const name of covered) await rm(join(dir, name), { force: true });
    await rm(join(dir, legacySnapshotFile), { force: true });
  }

  private loadSnapshot(state: LoadedState): void {
    const { dir } = this.options;
    const file = join(dir, snapshotFile);
    if (existsSync(file)) {
      const result = scanFile(
        file,
        (record) => {
          if (record.op === 'snapshot') state.revision = record.rev;
          else if (record.op === 'put' && record.obj) state.objects.set(record.key, record.obj);
        },
        this.options.readChunkBytes,
      );
      if (result.tornAt !== undefined) throw new CorruptRecordError(file, result.tornAt, 'the snapshot ends inside a record');
      return;
    }
    const legacy = join(dir, legacySnapshotFile);
    if (!existsSync(legacy)) return;
    // The earlier format: one JSON document, written by compactions of small stores only.
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(legacy, 'utf8'));
    } catch (error) {
      throw new Error(`cannot read the storage snapshot ${legacy}`, { cause: error });
    }
    if (!isRecord(parsed) || typeof parsed.revision !== 'number' || !isRecord(parsed.objects)) throw new Error(`the storage snapshot ${legacy} is not a snapshot`);
    state.revision = parsed.revision;
    for (const [key, object] of Object.entries(parsed.objects)) if (isRecord(object) && isRecord(object.metadata)) state.objects.set(key, { ...object, metadata: object.metadata });
  }

  /** False when a damaged record was cut off (repair); throws on damage otherwise. */
  private replaySegment(file: string, last: boolean, state: LoadedState): boolean {
    const apply = (record: LogRecord) => {
      if (record.rev <= state.revision) return;
      if (record.op === 'put' && record.obj) state.objects.set(record.key, record.obj);
      else if (record.op === 'del') state.objects.delete(record.key);
      state.revision = record.rev;
    };
    let result;
    try {
      result = scanFile(file, apply, this.options.readChunkBytes);
    } catch (error) {
      if (!(error instanceof CorruptRecordError)) throw error;
      if (!this.options.repair) throw new Error(`${error.message}; start with --repair to keep every record before it`, { cause: error });
      this.options.log?.warn({ file, offset: error.offset, reason: error.message }, 'repair: cutting the log at a damaged record, keeping every record before it');
      truncateSync(file, error.offset);
      return false;
    }
    if (result.tornAt !== undefined) {
      // A write cut off mid-record was never acknowledged (no fsync returned): drop it. In an
      // older segment it is damage, since later segments were written after it.
      if (!last && !this.options.repair) throw new Error(`${new CorruptRecordError(file, result.tornAt, 'a record without its end before later segments').message}; start with --repair to keep every record before it`);
      this.options.log?.warn({ file, offset: result.tornAt }, 'dropping a torn last record that was never acknowledged');
      truncateSync(file, result.tornAt);
      return last;
    }
    return true;
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
