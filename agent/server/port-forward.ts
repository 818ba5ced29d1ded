/**
 * The kubelet's `/portForward/<ns>/<pod>[/<uid>]` endpoint, the far end of `kubectl port-forward`.
 *
 * Two transports carry the same SPDY/3 session (./spdy.ts), as in Kubernetes 1.30+ (KEP-4006):
 * - an HTTP upgrade to `SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`;
 * - a WebSocket with sub-protocol `SPDY/3.1+portforward.k8s.io`, whose binary messages are the
 *   SPDY bytes. kubectl tries this first and falls back to the plain upgrade when it is refused.
 *
 * (The WebSocket channel protocol of client libraries, `v4.channel.k8s.io`, is served too:
 * ./port-forward-channels.ts.)
 *
 * For every local connection the client opens two streams sharing a `requestID`: `streamType:
 * error` and `streamType: data`, both with `port`. The pair is forwarded into the pod's network
 * namespace to localhost:<port> by the runtime (CRI PortForward); a failure is written on the
 * error stream as the kubelet words it (pkg/kubelet/cri/streaming/portforward/httpstream.go).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocketServer, type WebSocket } from 'ws';
import type { ContainerRuntime } from '../../cri/runtime.js';
import { describeError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { rejectUpgrade } from './exec-stream.js';
import { channelProtocol, parsePortsQuery, portNumber, serveChannels } from './port-forward-channels.js';
import { SpdySession, type SpdyStream } from './spdy.js';

const portForwardProtocol = 'portforward.k8s.io';
const portForwardTunnelProtocol = `SPDY/3.1+${portForwardProtocol}`;
/**
 * ws checks sub-protocols as RFC 7230 tokens, and the '/' of the tunnel's name is not a token
 * character (ws lib/subprotocol.js answers 400), while Go's servers take it. ws is handed this
 * token instead, and the real name is put back into its 101 answer.
 */
const tunnelToken = 'knode-spdy-tunnel';

export interface PortForwardTarget {
  namespace: string;
  pod: string;
  uid?: string;
}

interface PortForwardOptions {
  runtime: ContainerRuntime;
  log: Logger;
  /** The pod's ready sandbox and its uid, or an HTTP status and message. */
  resolveSandbox(target: PortForwardTarget): Promise<{ sandboxId: string; uid: string } | { status: number; message: string }>;
  /** How long the second stream of a pair may keep the first waiting (kubelet streamCreationTimeout, 30 s). */
  streamCreationTimeoutMs?: number;
  /** A connection without any stream traffic this long is closed (kubelet streamingConnectionIdleTimeout, 4 h). */
  idleTimeoutMs?: number;
}

/** `/portForward/ns/pod` or `/portForward/ns/pod/uid`; undefined for other paths. */
export function parsePortForwardPath(parts: readonly string[]): PortForwardTarget | undefined {
  if (parts[0] !== 'portForward' || (parts.length !== 3 && parts.length !== 4)) return undefined;
  return { namespace: parts[1]!, pod: parts[2]!, ...(parts.length === 4 ? { uid: parts[3]! } : {}) };
}

/** A stream's port header: a TCP port number, or the kubelet's error text. */
export function parsePort(value: string | undefined): number | string {
  if (value === undefined || value === '') return 'port header is missing';
  return portNumber(value) ?? `invalid port "${value}"`;
}

/** The kubelet's words for a failed forward (what kubectl prints after "an error occurred forwarding"). */
function forwardFailure(port: number | string, pod: { sandboxId: string; uid: string }, error: unknown): string {
  return `error forwarding port ${port} to pod ${pod.sandboxId}, uid ${pod.uid}: ${describeError(error)}`;
}

/**
 * The tunnel's bytes as a stream. Parts written together (corked: a SPDY frame's head and its
 * payload) go out as one WebSocket message in fragments, in one write to the socket, instead of
 * being copied into one buffer first: the copy and the 64 KiB allocation per DATA frame were a
 * tenth of the kubelet's CPU in a download, and the allocations drove its major GCs. client-go
 * reads the tunnel as a byte stream across messages and gorilla/websocket joins fragments
 * (RFC 6455 section 5.4), so the peer sees the same bytes.
 */
function tunnelStream(ws: WebSocket, socket: Duplex): Duplex {
  const stream = createWebSocketStream(ws);
  stream._writev = (chunks, callback) => {
    if (ws.readyState !== ws.OPEN) return callback(new Error('WebSocket is not open'));
    socket.cork();
    chunks.forEach(({ chunk }, i) => {
      const last = i === chunks.length - 1;
      ws.send(chunk as Buffer, { binary: true, fin: last }, last ? callback : undefined);
    });
    socket.uncork();
  };
  return stream;
}

interface PendingPair {
  error?: SpdyStream;
  data?: SpdyStream;
  timer: NodeJS.Timeout;
}

export class PortForwardStreams {
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    clientTracking: true,
    handleProtocols: (offered) => (offered.has(tunnelToken) ? tunnelToken : offered.has(channelProtocol) ? channelProtocol : false),
  });
  private readonly sessions = new Set<SpdySession>();

  constructor(private readonly options: PortForwardOptions) {
    this.wss.on('headers', (headers) => {
      const index = headers.indexOf(`Sec-WebSocket-Protocol: ${tunnelToken}`);
      if (index >= 0) headers[index] = `Sec-WebSocket-Protocol: ${portForwardTunnelProtocol}`;
    });
  }

  /** Serves an authorized upgrade request for a /portForward path. */
  async handle(req: IncomingMessage, socket: Duplex, head: Buffer, target: PortForwardTarget, query: URLSearchParams): Promise<void> {
    const reject = (status: number, message: string) => rejectUpgrade(socket, status, message);
    if (req.method !== 'GET' && req.method !== 'POST') return reject(405, 'method not allowed');
    const resolved = await this.options.resolveSandbox(target);
    if ('status' in resolved) return reject(resolved.status, resolved.message);
    const upgrade = (req.headers.upgrade ?? '').toLowerCase();
    if (upgrade === 'websocket') {
      const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
      if (req.method === 'POST') req.method = 'GET';
      if (offered.includes(portForwardTunnelProtocol)) {
        req.headers['sec-websocket-protocol'] = tunnelToken;
        this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(tunnelStream(ws, socket), target, resolved, 'websocket'));
        return;
      }
      // Refused without a 101, so that kubectl falls back to the SPDY upgrade.
      if (offered.length > 0 && !offered.includes(channelProtocol)) return reject(400, `port-forward over WebSocket needs the sub-protocol ${portForwardTunnelProtocol} or ${channelProtocol}`);
      const ports = parsePortsQuery(query);
      if (typeof ports === 'string') return reject(400, ports);
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.options.log.info({ pod: `${target.namespace}/${target.pod}`, transport: 'websocket-channels', ports }, 'port-forward connection opened');
        serveChannels(ws, ports, (port, stream) => this.options.runtime.portForward(resolved.sandboxId, port, stream), (port, error) => forwardFailure(port, resolved, error)).catch(
          (error: unknown) => {
            this.options.log.warn({ pod: `${target.namespace}/${target.pod}`, err: error }, 'port-forward stream failed');
            ws.terminate();
          },
        );
      });
      return;
    }
    if (upgrade !== 'spdy/3.1') return reject(400, `unsupported upgrade "${req.headers.upgrade ?? ''}": port-forward speaks SPDY/3.1 or ${portForwardTunnelProtocol}`);
    // httpstream.Handshake: a client that names protocols must name ours; one that names none is served.
    const versions = String(req.headers['x-stream-protocol-version'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
    if (versions.length > 0 && !versions.includes(portForwardProtocol)) return reject(403, `unable to upgrade: unable to negotiate protocol: client supports ${JSON.stringify(versions)}, server supports ["${portForwardProtocol}"]`);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${portForwardProtocol}\r\n\r\n`);
    if (head.length > 0) socket.unshift(head);
    this.serve(socket, target, resolved, 'spdy');
  }

  /** Ends every open port-forward connection (kubelet API stop). */
  stop(): void {
    for (const session of this.sessions) session.close();
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }

  private serve(connection: Duplex, target: PortForwardTarget, pod: { sandboxId: string; uid: string }, transport: 'websocket' | 'spdy'): void {
    const session = new SpdySession(connection);
    const name = `${target.namespace}/${target.pod}`;
    this.options.log.info({ pod: name, transport }, 'port-forward connection opened');
    this.sessions.add(session);
    const pairs = new Map<string, PendingPair>();
    const idleMs = this.options.idleTimeoutMs ?? 4 * 3600_000;
    let idle = setTimeout(() => session.close(), idleMs);
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => session.close(), idleMs);
    };
    session.on('error', (error) => this.options.log.info({ pod: name, err: error }, 'port-forward connection failed'));
    session.on('close', () => {
      clearTimeout(idle);
      for (const pair of pairs.values()) clearTimeout(pair.timer);
      pairs.clear();
      this.sessions.delete(session);
    });
    // Any frame counts as activity, as spdystream's idle timer (a 'data' listener on a stream
    // would take its bytes before the forward is piped).
    connection.on('data', touch);
    session.on('stream', (stream) => {
      stream.on('error', () => undefined); // a reset stream ends its own forward only
      const type = stream.headers.streamtype;
      const requestId = stream.headers.requestid ?? '';
      if (type !== 'error' && type !== 'data') {
        this.options.log.info({ pod: name, streamType: type }, 'port-forward stream of unknown type reset');
        return stream.reset();
      }
      stream.reply().catch((error: unknown) => this.options.log.debug({ err: error, pod: name, requestId }, 'port-forward stream reply failed (connection closing)'));
      let pair = pairs.get(requestId);
      if (!pair) {
        pair = {
          timer: setTimeout(() => {
            pairs.delete(requestId);
            pair?.error?.reset();
            pair?.data?.reset();
          }, this.options.streamCreationTimeoutMs ?? 30_000),
        };
        pairs.set(requestId, pair);
      }
      if (pair[type]) return stream.reset();
      pair[type] = stream;
      if (!pair.error || !pair.data) return;
      clearTimeout(pair.timer);
      pairs.delete(requestId);
      void this.forward(name, pod, pair.error, pair.data);
    });
  }

  private async forward(name: string, pod: { sandboxId: string; uid: string }, errorStream: SpdyStream, dataStream: SpdyStream): Promise<void> {
    // The client only reads the error stream: its own end of it is closed at once.
    errorStream.resume();
    const port = parsePort(dataStream.headers.port);
    try {
      if (typeof port === 'string') throw new Error(port);
      await this.options.runtime.portForward(pod.sandboxId, port, dataStream);
    } catch (error) {
      const message = forwardFailure(typeof port === 'number' ? port : dataStream.headers.port ?? '', pod, error);
      this.options.log.info({ pod: name, port }, message);
      if (errorStream.writable) errorStream.write(message);
    } finally {
      // What the client still sends has nowhere to go: drained, so that the stream can end.
      dataStream.resume();
      if (!dataStream.writableEnded && !dataStream.destroyed) dataStream.end();
      if (!errorStream.writableEnded && !errorStream.destroyed) errorStream.end();
    }
  }
}
