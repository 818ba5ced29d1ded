/**
 * Reading container logs at the CRI log path. With the Docker runtime the path is a symlink to
 * Docker's json-file log (see docker/containers.ts); other runtimes write the CRI format. Like
 * the kubelet's reader (pkg/kubelet/kuberuntime/logs/logs.go), each line is parsed in either
 * format:
 *   Docker: {"log":"hello\n","stream":"stdout","time":"2026-11-22T02:14:39.123456789Z"}
 *   CRI:    2026-11-22T02:14:39.123456789Z stdout F hello
 * ("F" is a full line, "P" a partial one continued by the next entry).
 */

interface LogEntry {
  /** RFC 3339 timestamp with nanoseconds, as written. */
  time: string;
  stream: 'stdout' | 'stderr';
  /** The content, without the trailing newline for full lines. */
  log: string;
  /** False for a partial line (CRI "P", or a Docker line without "\n"). */
  full: boolean;
}

export function parseLogLine(line: string): LogEntry | undefined {
  if (line.startsWith('{')) {
    try {
      const value = JSON.parse(line) as { log?: unknown; stream?: unknown; time?: unknown };
      if (typeof value.log !== 'string' || (value.stream !== 'stdout' && value.stream !== 'stderr')) return undefined;
      const full = value.log.endsWith('\n');
      return { time: String(value.time ?? ''), stream: value.stream, log: full ? value.log.slice(0, -1) : value.log, full };
    } catch {
      // Not a json-file log line (torn write at rotation): skipped, as the kubelet's log parser does.
      return undefined;
    }
  }
  const match = /^(\S+) (stdout|stderr) ([FP]) (.*)$/s.exec(line);
  if (!match) return undefined;
  return { time: match[1] ?? '', stream: match[2] as 'stdout' | 'stderr', log: match[4] ?? '', full: match[3] === 'F' };
}

/** Parses a whole log text (lines that parse in neither format are skipped). */
export function parseLog(text: string): LogEntry[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map(parseLogLine)
    .filter((entry): entry is LogEntry => entry !== undefined);
}

/** Formats one entry in the CRI format (for runtimes or tests that write CRI logs). */
export function formatCriLogLine(entry: LogEntry): string {
  return `${entry.time} ${entry.stream} ${entry.full ? 'F' : 'P'} ${entry.log}\n`;
}
