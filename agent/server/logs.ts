/**
 * Container logs for the kubelet API (`/containerLogs`, kubectl logs): reads the container's log
 * file, which is either Docker's json-file format ({"log","stream","time"} per line; the Docker
 * runtime links the CRI log path to it, as cri-dockerd) or the CRI format
 * ("<RFC3339Nano> <stream> <P|F> <content>", pkg/kubelet/kuberuntime/logs). Supports tailLines,
 * timestamps, sinceSeconds, limitBytes and follow (the file is polled for growth until the
 * container stops or the client goes away). Partial CRI lines ("P") are joined.
 */
import { open, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';

interface LogEntry {
  time: string;
  stream: 'stdout' | 'stderr';
  content: string;
}

/** Parses one line of either format; undefined for a line that is neither. */
export function parseLogLine(line: string): (LogEntry & { partial: boolean }) | undefined {
  if (line.startsWith('{')) {
    try {
      const entry = JSON.parse(line) as { log?: string; stream?: string; time?: string };
      if (typeof entry.log !== 'string') return undefined;
      return { time: entry.time ?? '', stream: entry.stream === 'stderr' ? 'stderr' : 'stdout', content: entry.log, partial: !entry.log.endsWith('\n') };
    } catch {
      // Not a json-file log line (torn write at rotation): skipped, as the kubelet's log parser does.
      return undefined;
    }
  }
  const match = /^(\S+) (stdout|stderr) ([PF]) (.*)$/s.exec(line);
  if (!match) return undefined;
  const partial = match[3] === 'P';
  return { time: match[1]!, stream: match[2] as 'stdout' | 'stderr', content: partial ? match[4]! : `${match[4]!}\n`, partial };
}

interface LogOptions {
  tailLines?: number;
  timestamps?: boolean;
  sinceSeconds?: number;
  limitBytes?: number;
  now?: number;
}

/** Formats entries from complete log text (pure; used for the non-follow part). */
export function formatLogs(text: string, options: LogOptions): { output: string; consumed: number } {
  const lastNewline = text.lastIndexOf('\n');
  const complete = lastNewline >= 0 ? text.slice(0, lastNewline + 1) : '';
  const entries: LogEntry[] = [];
  let pending: LogEntry | undefined;
  for (const line of complete.split('\n')) {
    if (!line) continue;
    const entry = parseLogLine(line);
    if (!entry) continue;
    if (pending && pending.stream === entry.stream) {
      pending.content += entry.content;
    } else {
      if (pending) entries.push(pending);
      pending = { time: entry.time, stream: entry.stream, content: entry.content };
    }
    if (!entry.partial) {
      entries.push(pending);
      pending = undefined;
    }
  }
  if (pending) entries.push(pending);
  let selected = entries;
  if (options.sinceSeconds !== undefined) {
    const since = (options.now ?? Date.now()) - options.sinceSeconds * 1000;
    selected = selected.filter((e) => Date.parse(e.time) >= since);
  }
  if (options.tailLines !== undefined) selected = options.tailLines === 0 ? [] : selected.slice(-options.tailLines);
  let output = selected.map((e) => (options.timestamps ? `${e.time} ${e.content}` : e.content)).join('');
  if (options.limitBytes !== undefined) output = Buffer.from(output).subarray(0, options.limitBytes).toString('utf8');
  return { output, consumed: Buffer.byteLength(complete) };
}

async function readFrom(path: string, offset: number): Promise<{ text: string; size: number }> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const start = size < offset ? 0 : offset;
    const buffer = Buffer.alloc(size - start);
    if (buffer.length) await handle.read(buffer, 0, buffer.length, start);
    return { text: buffer.toString('utf8'), size: start };
  } finally {
    await handle.close();
  }
}

interface StreamLogsOptions extends LogOptions {
  follow?: boolean;
  /** For follow: whether the container still runs (polled). */
  stillRunning?: () => Promise<boolean>;
  pollMs?: number;
  signal?: AbortSignal;
}

/** Writes the logs of the file at path to out; with follow, keeps going while the container runs. */
export async function streamLogs(path: string, out: Writable, options: StreamLogsOptions): Promise<void> {
  await stat(path);
  let { text, size: base } = await readFrom(path, 0);
  const first = formatLogs(text, options);
  out.write(first.output);
  let offset = base + first.consumed;
  let written = Buffer.byteLength(first.output);
  if (!options.follow) return;
  const pollMs = options.pollMs ?? 250;
  while (!options.signal?.aborted && (options.limitBytes === undefined || written < options.limitBytes)) {
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    ({ text, size: base } = await readFrom(path, offset));
    if (base < offset) offset = 0; // rotated or truncated: start over on the new file
    const next = formatLogs(text, { timestamps: options.timestamps ?? false });
    if (next.output) {
      out.write(next.output);
      written += Buffer.byteLength(next.output);
    }
    offset = base + next.consumed;
    if (!next.output && options.stillRunning && !(await options.stillRunning())) break;
  }
}
