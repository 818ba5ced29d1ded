/**
 * The on-disk format of the file store: a snapshot plus write-ahead log segments, each a
 * sequence of records, one a line: `<crc32 of the JSON, 8 hex digits> <JSON>\n`.
 *
 * Why it is built this way (issue 25 item 3): files are read in fixed-size chunks, never whole,
 * so a log of any size loads (a single readFileSync stops at 2 GiB); every record carries a
 * checksum, so a damaged byte is found and named (file and byte offset) instead of silently
 * cutting off everything after it; the log is split into segments so that compaction can write
 * a snapshot of revision R beside the live segment and then drop the segments R covers, which
 * needs no rewrite of the file being appended to. Lines without a checksum (starting with `{`)
 * are records of the earlier format and are still read.
 */
import { closeSync, existsSync, openSync, readSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { KObject } from './types.js';
import { isRecord } from '../util.js';

export interface LogRecord {
  op: 'put' | 'del' | 'snapshot';
  key: string;
  rev: number;
  obj?: KObject;
}

/** A record that is damaged (not a torn, never-acknowledged tail). */
export class CorruptRecordError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    reason: string,
  ) {
    super(`corrupt record in ${file} at byte offset ${offset}: ${reason}`);
    this.name = 'CorruptRecordError';
  }
}

/** One line longer than this is damage, not a record (objects are at most 1.5 MiB). */
const maxRecordBytes = 64 * 1024 * 1024;

export function encodeRecord(record: LogRecord): Buffer {
  const json = Buffer.from(JSON.stringify(record));
  const sum = crc32(json).toString(16).padStart(8, '0');
  return Buffer.concat([Buffer.from(`${sum} `), json, Buffer.from('\n')]);
}

function isLogRecord(value: unknown): value is LogRecord {
  if (!isRecord(value)) return false;
  const { op, key, rev } = value;
  return (op === 'put' || op === 'del' || op === 'snapshot') && typeof key === 'string' && typeof rev === 'number' && Number.isInteger(rev);
}

/** Decodes one line (without its newline); throws a reason string's Error when damaged. */
function decodeRecord(line: Buffer): LogRecord {
  let json = line;
  if (line[0] !== 0x7b) {
    if (line.length < 10 || line[8] !== 0x20) throw new Error('no checksum');
    json = line.subarray(9);
    const expected = line.subarray(0, 8).toString('latin1');
    const actual = crc32(json).toString(16).padStart(8, '0');
    if (expected !== actual) throw new Error(`checksum mismatch (stored ${expected}, computed ${actual})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch (error) {
    throw new Error(`not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!isLogRecord(parsed)) throw new Error('not a log record');
  return parsed;
}

interface ScanResult {
  /** Offset after the last whole line. */
  end: number;
  /** A last line without its newline: a write that was cut off, never acknowledged. */
  tornAt?: number;
}

/**
 * Reads `file` line by line in chunks of `chunkBytes`, calling `onRecord` for each record.
 * Throws CorruptRecordError on a damaged line (a missing final newline is reported as torn).
 */
export function scanFile(file: string, onRecord: (record: LogRecord, offset: number) => void, chunkBytes = 1024 * 1024): ScanResult {
  const fd = openSync(file, 'r');
  try {
    const chunk = Buffer.allocUnsafe(chunkBytes);
    let parts: Buffer[] = [];
    let partBytes = 0;
    let lineStart = 0;
    let position = 0;
    for (;;) {
      const read = readSync(fd, chunk, 0, chunkBytes, position);
      if (read === 0) break;
      let from = 0;
      for (;;) {
        const newline = chunk.indexOf(0x0a, from);
        if (newline < 0 || newline >= read) break;
        const line = partBytes === 0 ? chunk.subarray(from, newline) : Buffer.concat([...parts, chunk.subarray(from, newline)]);
        let record: LogRecord;
        try {
          record = decodeRecord(line);
        } catch (error) {
          throw new CorruptRecordError(file, lineStart, error instanceof Error ? error.message : String(error));
        }
        onRecord(record, lineStart);
        parts = [];
        partBytes = 0;
        lineStart = position + newline + 1;
        from = newline + 1;
      }
      if (from < read) {
        // Copied: the chunk buffer is reused by the next read.
        parts.push(Buffer.from(chunk.subarray(from, read)));
        partBytes += read - from;
        if (partBytes > maxRecordBytes) throw new CorruptRecordError(file, lineStart, `a line longer than ${maxRecordBytes} bytes`);
      }
      position += read;
    }
    return partBytes > 0 ? { end: lineStart, tornAt: lineStart } : { end: lineStart };
  } finally {
    closeSync(fd);
  }
}

const legacySegment = 'wal.jsonl';
export const snapshotFile = 'snapshot.log';
export const legacySnapshotFile = 'snapshot.json';

/** A segment's name carries the first revision it may hold, zero-padded so names sort. */
export function segmentName(firstRevision: number): string {
  return `wal-${String(firstRevision).padStart(16, '0')}.log`;
}

/** The log segments of a directory, oldest first (the earlier format's single log first). */
export function listSegments(dir: string): string[] {
  const names = readdirSync(dir)
    .filter((name) => /^wal-[0-9]{16}\.log$/.test(name))
    .sort();
  return existsSync(join(dir, legacySegment)) ? [legacySegment, ...names] : names;
}
