import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../lib/fs.js';

describe('writeFileAtomic (one write-then-rename)', () => {
  const dirs: string[] = [];
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'knode-fs-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('replaces the file whole and leaves no temporary file', () => {
    const d = dir();
    const file = join(d, 'state.json');
    writeFileAtomic(file, 'one');
    writeFileAtomic(file, 'two', { durable: true });
    expect(readFileSync(file, 'utf8')).toBe('two');
    expect(readdirSync(d)).toEqual(['state.json']);
  });

  it('sets the mode regardless of the umask and makes the directory on request', () => {
    const file = join(dir(), 'a', 'b', 'plugin');
    writeFileAtomic(file, '#!/bin/sh\n', { mode: 0o755, mkdir: true });
    expect(statSync(file).mode & 0o777).toBe(0o755);
  });

  it('names the file and cleans up when the write fails', () => {
    const d = dir();
    expect(() => writeFileAtomic(join(d, 'missing', 'x'), 'data')).toThrow(/cannot write ".*missing\/x"/);
    expect(readdirSync(d)).toEqual([]);
  });
});
