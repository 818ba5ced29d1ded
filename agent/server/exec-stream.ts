/**
 * The kubelet's streaming endpoints `/exec/<ns>/<pod>/[<uid>/]<container>` and `/attach/...`
 * over WebSockets (remotecommand v5/v4, ./remotecommand.ts), bridged to a CRI exec/attach
 * session (cri/runtime.ts StreamSession).
 *
 * The kubelet hands exec/attach to the runtime's streaming server behind a redirect or a proxy
 * (pkg/kubelet/server/server.go getExec); here the runtime returns node streams, so the kubelet
 * API serves the WebSocket itself. Authentication/authorization happen before the upgrade
 * (server/server.ts), so a refused client gets a plain 401/403 and never a 101. Errors found before
 * the upgrade (bad query, unknown pod/container) are HTTP errors; errors after it travel on the
 * error channel as a Status, as the kubelet's ServeExec does.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ContainerRuntime, StreamSession } from '../../cri/runtime.js';
import { describeError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { Channel, errorStatus, exitStatus, frame, negotiateProtocol, parseClientMessage, parseStreamOptions, supportedProtocols, type StatusMessage, type StreamOptions } from './remotecommand.js';

/** Pause a stream while this much output waits for the client. */
const highWaterBytes = 1024 * 1024;

interface ExecStreamOptions {
  runtime: ContainerRuntime;
  log: Logger;
  /** The running container's runtime id, or an HTTP status and message. */
  resolveContainer(namespace: string, pod: string, container: string): string | { status: number; message: string };
}

interface StreamRequest {
  kind: 'exec' | 'attach';
  namespace: string;
  pod: string;
  container: string;
}

/** `/exec/ns/pod/container`, `/exec/ns/pod/uid/container` (and attach); undefined for other paths. */
export function parseStreamPath(parts: readonly string[]): StreamRequest | undefined {
  const kind = parts[0];
  if ((kind !== 'exec' && kind !== 'attach') || (parts.length !== 4 && parts.length !== 5)) return undefined;
  return { kind, namespace: parts[1]!, pod: parts[2]!, container: parts[parts.length - 1]! };
}

/** Writes a plain HTTP error on a socket that was not upgraded. */
export function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const reasons: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 500: 'Internal Server Error' };
  const body = `${message}\n`;
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${reasons[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  else socket.destroy();
}

export class ExecStreams {
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: true, handleProtocols: (offered) => negotiateProtocol(offered) ?? false });

  constructor(private readonly options: ExecStreamOptions) {}

  /** Serves an authorized upgrade request for a stream path. */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer, target: StreamRequest, query: URLSearchParams): void {
    const reject = (status: number, message: string) => rejectUpgrade(socket, status, message);
    if (req.method !== 'GET' && req.method !== 'POST') return reject(405, 'method not allowed');
    // The request is checked before the protocol: kubectl retries a refused WebSocket over SPDY,
    // and that retry must meet the same error, not "unsupported upgrade".
    const options = parseStreamOptions(query, target.kind);
    if (typeof options === 'string') return reject(400, options);
    const resolved = this.options.resolveContainer(target.namespace, target.pod, target.container);
    if (typeof resolved !== 'string') return reject(resolved.status, resolved.message);
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      return reject(400, `unsupported upgrade "${req.headers.upgrade ?? ''}": this kubelet streams over WebSockets only (${supportedProtocols.join(', ')})`);
    }
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',');
    if (!negotiateProtocol(offered)) return reject(400, `no supported WebSocket sub-protocol offered; want one of ${supportedProtocols.join(', ')}`);
    // ws checks the method itself; kubectl and kube-apiserver only use GET for WebSockets.
    if (req.method === 'POST') req.method = 'GET';
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.serve(ws, target, resolved, options).catch((error: unknown) => {
        this.options.log.warn({ err: error, pod: `${target.namespace}/${target.pod}` }, `${target.kind} stream failed`);
        ws.terminate();
      });
    });
  }

  /** Ends every open stream (kubelet API stop). */
  stop(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }

  private async serve(ws: WebSocket, target: StreamRequest, containerId: string, options: StreamOptions): Promise<void> {
    const protocol = ws.protocol;
    // The client may send stdin (and v5's close) at once: queue it until the session exists.
    let session: StreamSession | undefined;
    let closed = false;
    const pending: Buffer[] = [];
    const deliver = (data: Buffer): void => {
      const message = parseClientMessage(data, protocol);
      if (message.kind === 'stdin') {
        // Back-pressure: stop reading the client while the process does not read its stdin.
        const stdin = session?.stdin;
        if (stdin && !stdin.write(message.data)) {
          ws.pause();
          stdin.once('drain', () => ws.resume());
        }
      } else if (message.kind === 'resize') session?.resize(message.width, message.height).catch((error: unknown) => this.options.log.debug({ err: error }, 'terminal resize failed'));
      else if (message.kind === 'close' && message.channel === Channel.stdin) session?.stdin?.end();
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      const buffer = Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (session) deliver(buffer);
      else pending.push(buffer);
    });
    const end = () => {
      closed = true;
      session?.close();
    };
    ws.on('close', end);
    ws.on('error', end);
    try {
      const request = { containerId, tty: options.tty, stdin: options.stdin, stdout: options.stdout, stderr: options.stderr };
      session = target.kind === 'exec' ? await this.options.runtime.exec({ ...request, cmd: options.command }) : await this.options.runtime.attach(request);
    } catch (error) {
      finish(ws, errorStatus(`container ${target.container} of pod ${target.namespace}/${target.pod}: ${describeError(error)}`));
      return;
    }
    if (closed) return session.close();
    session.stdin?.on('error', () => undefined); // the process may exit before its stdin is drained
    for (const data of pending.splice(0)) deliver(data);
    const outputs = [relay(ws, session.stdout, Channel.stdout), relay(ws, options.tty ? undefined : session.stderr, Channel.stderr)];
    const { exitCode } = await session.wait();
    await Promise.all(outputs);
    finish(ws, target.kind === 'exec' ? exitStatus(exitCode, options.command) : { metadata: {}, status: 'Success' });
  }
}

/** Copies a runtime stream onto a channel, pausing it while the client lags behind. Resolves at its end. */
function relay(ws: WebSocket, stream: Readable | undefined, channel: number): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    stream.on('data', (chunk: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      const resume = ws.bufferedAmount > highWaterBytes ? (stream.pause(), () => stream.resume()) : undefined;
      ws.send(frame(channel, chunk), { binary: true }, () => resume?.());
    });
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', () => resolve());
  });
}

/** Writes the final Status on the error channel and closes the connection normally. */
function finish(ws: WebSocket, status: StatusMessage): void {
  if (ws.readyState !== ws.OPEN) return;
  ws.send(frame(Channel.error, JSON.stringify(status)), { binary: true }, () => ws.close(1000));
}
