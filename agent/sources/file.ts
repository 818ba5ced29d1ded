/**
 * The static pod directory source (pkg/kubelet/config/file.go, file_linux.go): every manifest
 * file of staticPodPath, read on a timer (fileCheckFrequency) and on file-system events
 * (fs.watch, debounced). Each scan emits the complete set of pods, so added, changed and removed
 * files become added, replaced (new content → new UID) and removed pods downstream.
 *
 * A file is re-parsed only when its content hash changes. A bad file is reported once per
 * content (not on every rescan) and contributes no pods; the other files are not affected.
 * Two files declaring the same pod: the one already running it wins (else the first in name
 * order), the other is reported.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { constants } from 'node:fs';
import { lstat, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../lib/log.js';
import { describeError, onErrno } from '../../lib/errors.js';
import { ManifestError, isManifestFileName } from './manifest.js';
import { maxManifestBytes, oversize, parseManifestBounded } from './manifest-worker.js';
import { toStaticPod } from './static-pod.js';

export interface SourceListener {
  /** The complete current set of pods of this source. */
  onPods(source: string, pods: V1Pod[]): void;
  /** A manifest could not be used (reported once per bad content). */
  onManifestError(source: string, error: ManifestError): void;
}

interface CachedFile {
  hash: string;
  pods: V1Pod[];
  error?: ManifestError;
  /**
   * The file's inode, size, mtime and ctime (ns) when its content was read: a rescan that finds
   * them unchanged keeps this entry without opening the file. Unset while the entry must be
   * read again (a half-written file waiting to settle).
   */
  identity?: string;
}

interface StaticPodDirOptions {
  dir: string;
  nodeName: string;
  checkFrequencyMs: number;
  listener: SourceListener;
  log: Logger;
  /**
   * Debounce of fs.watch events (ms; default 1). The kubelet reads a manifest on each inotify
   * event at once (pkg/kubelet/config/file_linux.go); a ms only coalesces the events one write
   * makes (create, truncate, write, close) when they come together, and every ms here is pod
   * start latency. A scan that sees the file half written is harmless: it is read again on the
   * write's next event (and once settled), and files that did not change are only stat'ed.
   */
  debounceMs?: number;
  /**
   * A manifest that fails to parse within this long (ms; default 200) of its last write is read
   * again once that time has passed before its error is reported: with a 1 ms debounce a scan
   * can see a file between an editor's truncate and its write.
   */
  settleMs?: number;
}

export const fileSourceName = 'file';

const defaultSettleMs = 200;
/** Manifests read at once during a scan. */
const scanParallelism = 16;

type ManifestRead = { text: string; mtimeMs: number; identity: string } | { unchanged: true } | { skip: string } | { error: ManifestError; stamp: string };

function fileKind(info: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  if (info.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/**
 * Reads one manifest, bounded: only a regular file (after following links) is opened, with
 * O_NONBLOCK so that a file swapped for a FIFO after the stat cannot hang the read; a file over
 * maxManifestBytes is refused from its size; at most maxManifestBytes + 1 bytes are ever read.
 * undefined: the file is gone. (The kubelet's file source skips non-regular files too,
 * pkg/kubelet/config/file.go extractFromDir.) A file whose identity (inode, size, mtime, ctime)
 * is still `known` is not opened: { unchanged }. (The kubelet reads only the file an inotify
 * event names, pkg/kubelet/config/file_linux.go; a scan of the whole directory per event must
 * not cost a read of every manifest.)
 */
async function readManifestFile(file: string, known?: string): Promise<ManifestRead | undefined> {
  let info;
  try {
    info = await stat(file, { bigint: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { skip: 'symbolic link loop' };
    if (code === 'ENOENT') {
      // Gone between stat and lstat: nothing to read.
      const link = await lstat(file).catch(onErrno(['ENOENT'], undefined));
      return link?.isSymbolicLink() ? { skip: 'dangling symbolic link' } : undefined;
    }
    return { skip: `cannot stat: ${describeError(error)}` };
  }
  if (!info.isFile()) return { skip: `${fileKind(info)}, not a regular file` };
  const size = Number(info.size);
  if (size > maxManifestBytes) return { error: oversize(file, size), stamp: `${size}:${info.mtimeMs}` };
  // Taken before the read: a change during the read leaves a stale identity, read again next time.
  const identity = `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
  if (known === identity) return { unchanged: true };
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { skip: `cannot open: ${describeError(error)}` };
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) return { skip: `${fileKind(opened)}, not a regular file` };
    const buffer = Buffer.alloc(Math.min(opened.size, maxManifestBytes) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) {
        if (length > maxManifestBytes) return { error: oversize(file, length), stamp: `${length}:${opened.mtimeMs}` };
        return { skip: 'grew while being read (read again on the next scan)' };
      }
    }
    return { text: buffer.toString('utf8', 0, length), mtimeMs: opened.mtimeMs, identity };
  } finally {
    await handle.close();
  }
}

export class StaticPodDirSource {
  private readonly cache = new Map<string, CachedFile>();
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private settling?: NodeJS.Timeout;
  private watcher?: FSWatcher;
  private scanning?: Promise<void>;
  private rescan = false;
  private stopped = false;
  private lastKey: string | undefined;
  private contributing = new Set<string>();

  constructor(private readonly options: StaticPodDirOptions) {}

  async start(): Promise<void> {
    this.stopped = false;
    await this.scan();
    this.startWatch();
    this.timer = setInterval(() => this.trigger(), Math.max(100, this.options.checkFrequencyMs));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    clearTimeout(this.settling);
    this.watcher?.close();
    this.watcher = undefined;
    await this.scanning;
  }

  private startWatch(): void {
    if (this.watcher || this.stopped) return;
    try {
      this.watcher = watch(this.options.dir, { persistent: false }, () => {
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => this.trigger(), this.options.debounceMs ?? 1);
      });
      this.watcher.on('error', (error) => {
        this.options.log.warn({ err: error, dir: this.options.dir }, 'static pod directory watch failed; relying on periodic rescans');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (error) {
      // The directory may not exist yet: the periodic rescan picks it up later (as the kubelet).
      this.options.log.debug({ dir: this.options.dir, err: error }, 'cannot watch the static pod directory yet');
    }
  }

  private rescanAfter(delayMs: number): void {
    clearTimeout(this.settling);
    this.settling = setTimeout(() => this.trigger(), Math.max(1, Math.ceil(delayMs)));
  }

  private trigger(): void {
    if (this.stopped) return;
    this.scan().catch((error: unknown) => this.options.log.error({ err: error }, 'static pod directory scan failed'));
  }

  /** Scans once (scans never overlap; a request during a scan runs one more scan after it). */
  scan(): Promise<void> {
    if (this.scanning) {
      this.rescan = true;
      return this.scanning;
    }
    const run = (async () => {
      do {
        this.rescan = false;
        await this.scanOnce();
      } while (this.rescan && !this.stopped);
    })();
    const guarded = run.finally(() => {
      if (this.scanning === guarded) this.scanning = undefined;
    });
    this.scanning = guarded;
    return this.scanning;
  }

  private async listFiles(): Promise<string[]> {
    try {
      // Directories are not manifests; every other entry with a manifest name is looked at (a
      // FIFO, socket or broken link is then skipped with a log line, never opened).
      const entries = await readdir(this.options.dir, { withFileTypes: true });
      return entries.filter((e) => !e.isDirectory() && isManifestFileName(e.name)).map((e) => join(this.options.dir, e.name)).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`cannot read static pod directory "${this.options.dir}"`, { cause: error });
    }
  }

  private async loadFile(file: string): Promise<CachedFile | undefined> {
    const cached = this.cache.get(file);
    const read = await readManifestFile(file, cached?.identity);
    if (read === undefined) return undefined; // removed between readdir and read
    if ('unchanged' in read) return cached;
    if ('skip' in read) {
      const hash = `skip:${read.skip}`;
      if (cached?.hash !== hash) this.options.log.warn({ file, reason: read.skip }, 'static pod manifest skipped');
      return { hash, pods: [] };
    }
    if ('error' in read) {
      const hash = `error:${read.error.message}:${read.stamp}`;
      if (cached?.hash === hash) return cached;
      this.options.listener.onManifestError(fileSourceName, read.error);
      return { hash, pods: [], error: read.error };
    }
    const hash = createHash('sha256').update(read.text).digest('hex');
    if (cached && cached.hash === hash) return cached.identity === read.identity ? cached : { ...cached, identity: read.identity };
    try {
      const pods = (await parseManifestBounded(read.text, file)).map((pod) => toStaticPod(pod, this.options.nodeName, 'file', file));
      return { hash, pods, identity: read.identity };
    } catch (error) {
      // A file written moments ago may still be being written (a write truncates first, then
      // fills): it keeps what it gave before and is read again once it has settled.
      const settleMs = this.options.settleMs ?? defaultSettleMs;
      // Date.now() is whole ms while mtimes are finer: a write in the current ms can look up to
      // 1 ms in the future (a clock skew of up to a second is still "just written").
      const age = Date.now() - read.mtimeMs;
      if (age > -1000 && age < settleMs) {
        this.rescanAfter(settleMs - Math.max(0, age));
        return cached ?? { hash: `settling:${hash}`, pods: [] };
      }
      const manifestError = error instanceof ManifestError ? error : new ManifestError(file, describeError(error), { cause: error });
      this.options.listener.onManifestError(fileSourceName, manifestError);
      return { hash, pods: [], error: manifestError, identity: read.identity };
    }
  }

  private async scanOnce(): Promise<void> {
    // Files that already run their pods keep them: a new file that duplicates a name loses.
    const files = (await this.listFiles()).sort((a, b) => Number(!this.contributing.has(a)) - Number(!this.contributing.has(b)));
    const contributing = new Set<string>();
    const seen = new Set<string>();
    const pods: V1Pod[] = [];
    const names = new Map<string, string>();
    // Read side by side, a bounded number at a time (a scan's latency is a static pod's start
    // latency; every file open at once could exhaust descriptors), then used in order.
    const loads: Array<CachedFile | undefined> = [];
    for (let i = 0; i < files.length; i += scanParallelism) loads.push(...(await Promise.all(files.slice(i, i + scanParallelism).map((file) => this.loadFile(file)))));
    for (const [index, file] of files.entries()) {
      const loaded = loads[index];
      if (!loaded) continue;
      seen.add(file);
      this.cache.set(file, loaded);
      const duplicate = loaded.pods.find((pod) => names.has(`${pod.metadata!.namespace}/${pod.metadata!.name}`));
      if (duplicate) {
        const key = `${duplicate.metadata!.namespace}/${duplicate.metadata!.name}`;
        const error = new ManifestError(file, `pod "${key}" is already defined in "${names.get(key)}"; file ignored`);
        if (loaded.error?.message !== error.message) this.options.listener.onManifestError(fileSourceName, error);
        loaded.error = error;
        continue;
      }
      if (loaded.error && loaded.pods.length > 0) delete loaded.error;
      if (loaded.pods.length > 0) contributing.add(file);
      for (const pod of loaded.pods) {
        names.set(`${pod.metadata!.namespace}/${pod.metadata!.name}`, file);
        pods.push(pod);
      }
    }
    for (const file of this.cache.keys()) if (!seen.has(file)) this.cache.delete(file);
    this.contributing = contributing;
    if (!this.watcher) this.startWatch();
    const key = pods.map((pod) => pod.metadata!.uid).join(',');
    if (this.stopped || key === this.lastKey) return;
    this.lastKey = key;
    this.options.listener.onPods(fileSourceName, pods);
  }
}
