/**
 * Port-forward over the WebSocket channel protocol (`v4.channel.k8s.io`, or no sub-protocol),
 * what client libraries speak (the Python client, @kubernetes/client-node's PortForward), as the
 * kubelet serves it (pkg/kubelet/cri/streaming/portforward/websocket.go):
 * - the ports come from the `ports` query (repeated or comma-separated), one connection each for
 *   the life of the WebSocket;
 * - port i has data channel 2i (both ways) and error channel 2i+1 (server to client); the first
 *   message on each is the port as a little-endian uint16;
 * - a failed forward writes its reason on the error channel; when every forward is over the
 *   WebSocket is closed.
 */
import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { frame } from './remotecommand.js';

export const channelProtocol = 'v4.channel.k8s.io';

/** A TCP port number written in decimal (1–65535), or undefined. */
export function portNumber(text: string): number | undefined {
  const port = Number(text);
  return /^\d+$/.test(text) && port >= 1 && port <= 65535 ? port : undefined;
}

/** The `ports` query as the kubelet reads it (NewV4Options), or the error text for a 400. */
export function parsePortsQuery(query: URLSearchParams): number[] | string {
  const values = query.getAll('ports');
  if (values.length === 0) return 'query parameter "ports" is required';
  const ports: number[] = [];
  for (const value of values) {
    if (value === '') return 'query parameter "ports" cannot be empty';
    for (const text of value.split(',')) {
      const port = portNumber(text);
      if (port === undefined) return `unable to parse "${text}" as a port`;
      ports.push(port);
    }
  }
  return ports;
}

/** A port's data channel as a stream: the client's messages in, frames on the channel out. */
class ChannelStream extends Duplex {
  constructor(
    private readonly ws: WebSocket,
    private readonly channel: number,
  ) {
    super({ allowHalfOpen: true });
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.OPEN) return callback(new Error('WebSocket closed'));
    this.ws.send(frame(this.channel, chunk), { binary: true }, (error) => callback(error ?? null));
  }

  /** @internal a message from the client on this channel. */
  receive(data: Buffer): void {
    // Back-pressure: stop reading the WebSocket while the forward does not take the data.
    if (!this.push(data)) this.ws.pause();
  }
}

type ForwardOne = (port: number, stream: Duplex) => Promise<void>;

/** Serves one upgraded WebSocket: every port forwarded at once, then the WebSocket closed. */
export async function serveChannels(ws: WebSocket, ports: readonly number[], forward: ForwardOne, describeFailure: (port: number, error: unknown) => string): Promise<void> {
  const streams = ports.map((_, i) => new ChannelStream(ws, 2 * i));
  for (const [i, port] of ports.entries()) {
    const portBytes = Buffer.alloc(2);
    portBytes.writeUInt16LE(port, 0);
    ws.send(frame(2 * i, portBytes), { binary: true });
    ws.send(frame(2 * i + 1, portBytes), { binary: true });
  }
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const message = Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!isBinary || message.length === 0) return;
    // Only data channels take input (the kubelet's error channels are write-only).
    const channel = message[0]!;
    if (channel % 2 === 0) streams[channel / 2]?.receive(message.subarray(1));
  });
  // The client going away ends the input of every forward, and then the forwards themselves.
  ws.once('close', () => {
    for (const stream of streams) {
      stream.push(null);
      stream.destroy();
    }
  });
  await Promise.all(
    ports.map(async (port, i) => {
      const stream = streams[i]!;
      try {
        await forward(port, stream);
      } catch (error) {
        if (ws.readyState === ws.OPEN) ws.send(frame(2 * i + 1, describeFailure(port, error)), { binary: true });
      }
    }),
  );
  if (ws.readyState === ws.OPEN) ws.close(1000);
}
