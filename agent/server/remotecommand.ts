/**
 * The Kubernetes remote-command WebSocket sub-protocols (pure part): what `kubectl exec` and
 * `kubectl attach` speak to the API server, and the API server to the kubelet.
 *
 * - Every binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error
 *   (one metav1.Status when the command ends), 4 resize (`{"Width":W,"Height":H}`, tty only)
 *   (k8s.io/apimachinery/pkg/util/remotecommand/constants.go, "channel.k8s.io" in
 *   k8s.io/apiserver/pkg/util/wsstream/conn.go).
 * - v4.channel.k8s.io: the error channel carries a Status; a non-zero exit is reason
 *   NonZeroExitCode with details.causes[{reason: "ExitCode", message: "<code>"}], which kubectl
 *   turns into its own exit code (client-go tools/remotecommand errorDecoderV4).
 * - v5.channel.k8s.io adds channel 255: `[255, N]` closes stream N, so that the end of kubectl's
 *   stdin reaches the process (KEP-4006 "Transition from SPDY to WebSockets").
 * Only the binary protocols are served (not base64.channel.k8s.io nor the v1-v3 versions).
 */

export const protocolV5 = 'v5.channel.k8s.io';
export const protocolV4 = 'v4.channel.k8s.io';
/** In order of preference. */
export const supportedProtocols: readonly string[] = [protocolV5, protocolV4];

export const Channel = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

/** Picks the sub-protocol from those the client offered (Sec-WebSocket-Protocol), preferring v5. */
export function negotiateProtocol(offered: Iterable<string>): string | undefined {
  const set = new Set([...offered].map((p) => p.trim()));
  return supportedProtocols.find((p) => set.has(p));
}

/** One message on a channel. */
export function frame(channel: number, data: Buffer | string): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return Buffer.concat([Buffer.from([channel]), payload]);
}

type ClientMessage =
  | { kind: 'stdin'; data: Buffer }
  | { kind: 'resize'; width: number; height: number }
  | { kind: 'close'; channel: number }
  | { kind: 'ignored'; why: string };

/** What a message from the client means under the negotiated protocol. */
export function parseClientMessage(message: Buffer, protocol: string): ClientMessage {
  if (message.length === 0) return { kind: 'ignored', why: 'empty message' };
  const channel = message[0]!;
  const data = message.subarray(1);
  if (channel === Channel.stdin) return { kind: 'stdin', data };
  if (channel === Channel.resize) {
    try {
      const size = JSON.parse(data.toString('utf8')) as { Width?: unknown; Height?: unknown };
      const width = Number(size.Width);
      const height = Number(size.Height);
      if (Number.isInteger(width) && Number.isInteger(height) && width >= 0 && height >= 0 && width <= 0xffff && height <= 0xffff) return { kind: 'resize', width, height };
    } catch {
      // Not JSON (JSON.parse's SyntaxError is the only failure): reported as a malformed resize below.
    }
    return { kind: 'ignored', why: 'malformed resize message' };
  }
  if (channel === Channel.close && protocol === protocolV5) {
    if (data.length !== 1) return { kind: 'ignored', why: 'malformed close message' };
    return { kind: 'close', channel: data[0]! };
  }
  return { kind: 'ignored', why: `unexpected channel ${channel}` };
}

export interface StatusMessage {
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  code?: number;
  details?: { causes: { reason: string; message: string }[] };
}

/**
 * The Status written on the error channel when a command ends (pkg/kubelet/cri/streaming/
 * remotecommand/exec.go ServeExec): Success on 0, NonZeroExitCode with the code otherwise.
 */
export function exitStatus(exitCode: number, command: readonly string[]): StatusMessage {
  if (exitCode === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

/** A failure before or while running the command (container gone, runtime error). */
export function errorStatus(message: string): StatusMessage {
  return { metadata: {}, status: 'Failure', message, reason: 'InternalError', code: 500 };
}

export interface StreamOptions {
  /** exec only: the command and its arguments (`command` query parameters, in order). */
  command: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

const truthy = (value: string | null): boolean => value !== null && ['1', 'true', 'True', 'TRUE', ''].includes(value);

/**
 * The exec/attach query (`command=a&command=b&stdin=1&stdout=1&stderr=1&tty=0`), checked as
 * the kubelet does (pkg/kubelet/cri/streaming/remotecommand/httpstream.go NewOptions): at least
 * one stream, no stderr with a tty; exec needs a command. Returns an error message or options.
 */
export function parseStreamOptions(query: URLSearchParams, kind: 'exec' | 'attach'): StreamOptions | string {
  const options: StreamOptions = {
    command: query.getAll('command'),
    stdin: truthy(query.get('stdin')),
    stdout: truthy(query.get('stdout')),
    stderr: truthy(query.get('stderr')),
    tty: truthy(query.get('tty')),
  };
  if (!options.stdin && !options.stdout && !options.stderr) return 'you must specify at least 1 of stdin, stdout, stderr';
  if (options.tty && options.stderr) options.stderr = false; // the kubelet drops stderr with a tty (all output is on stdout)
  if (kind === 'exec' && options.command.length === 0) return 'you must specify a command (command=...)';
  if (kind === 'attach') options.command = [];
  return options;
}
