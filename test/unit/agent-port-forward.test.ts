/**
 * The SPDY/3 server session (agent/server/spdy.ts) and the port-forward endpoint (agent/server/port-forward.ts)
 * driven by a test client that speaks the frames itself, over an in-memory byte pipe, and the
 * WebSocket channel protocol (agent/server/port-forward-channels.ts) over loopback, with the fake
 * runtime standing for the pod. Interop with the real client (kubectl, Go spdystream) is
 * checked in test/e2e/agent-kubectl.test.ts.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect as connectTcp, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { channelProtocol, parsePortsQuery } from '../../agent/server/port-forward-channels.js';
import { parsePort, parsePortForwardPath, PortForwardStreams } from '../../agent/server/port-forward.js';
import { controlFrame, dataFrame, encodeHeaderBlock, FrameReader, FrameType, HeaderCodec, parseHeaderBlock, RstStatus, SpdySession, type SpdyHeaders, type SpdyStream } from '../../agent/server/spdy.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { createLogger } from '../../lib/log.js';

function duplexPair(): [Duplex, Duplex] {
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  return [Duplex.from({ readable: toServer, writable: toClient }), Duplex.from({ readable: toClient, writable: toServer })];
}

interface Frame {
  control: boolean;
  typeOrStream: number;
  flags: number;
  payload: Buffer;
}

/** The client end: writes frames, collects the server's, decompresses header blocks in order. */
class TestClient {
  private readonly reader = new FrameReader();
  private readonly deflater = HeaderCodec.deflater();
  private readonly inflater = HeaderCodec.inflater();
  readonly frames: Frame[] = [];
  private head = Buffer.alloc(0);
  private all = Buffer.alloc(0);
  private inHead: boolean;

  /** `httpHead`: an HTTP answer (the 101, or an error) comes before any frame. */
  constructor(readonly socket: Duplex, httpHead = false) {
    this.inHead = httpHead;
    socket.on('data', (chunk: Buffer) => {
      this.all = Buffer.concat([this.all, chunk]);
      if (this.inHead) {
        this.head = Buffer.concat([this.head, chunk]);
        const end = this.head.indexOf('\r\n\r\n');
        if (end < 0) return;
        this.inHead = false;
        chunk = this.head.subarray(end + 4);
        this.head = this.head.subarray(0, end + 4);
      }
      this.frames.push(...this.reader.push(chunk));
    });
  }

  /** The HTTP answer before the frames. */
  text(): string {
    return this.head.toString('latin1');
  }

  /** Everything received, for an answer that is not followed by frames. */
  raw(): string {
    return this.all.toString('latin1');
  }

  async open(id: number, headers: SpdyHeaders, fin = false): Promise<void> {
    const block = await this.deflater.process(encodeHeaderBlock(headers));
    const head = Buffer.alloc(10);
    head.writeUInt32BE(id, 0);
    this.socket.write(controlFrame(FrameType.synStream, fin ? 1 : 0, Buffer.concat([head, block])));
  }

  data(id: number, text: string, fin = false): void {
    this.socket.write(dataFrame(id, fin ? 1 : 0, Buffer.from(text)));
  }

  control(type: number, payload: Buffer): void {
    this.socket.write(controlFrame(type, 0, payload));
  }

  async waitFor(what: string, check: () => boolean): Promise<void> {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
    if (!check()) throw new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(this.frames.map((f) => [f.control, f.typeOrStream, f.flags, f.payload.length]))}`);
  }

  replies(): number[] {
    return this.frames.filter((f) => f.control && f.typeOrStream === FrameType.synReply).map((f) => f.payload.readUInt32BE(0));
  }

  async replyHeaders(): Promise<SpdyHeaders[]> {
    const out: SpdyHeaders[] = [];
    for (const f of this.frames.filter((f) => f.control && f.typeOrStream === FrameType.synReply)) out.push(parseHeaderBlock(await this.inflater.process(f.payload.subarray(4))));
    return out;
  }

  dataOf(id: number): { text: string; fin: boolean } {
    const frames = this.frames.filter((f) => !f.control && f.typeOrStream === id);
    return { text: Buffer.concat(frames.map((f) => f.payload)).toString(), fin: frames.some((f) => (f.flags & 1) !== 0) };
  }

  resets(): { id: number; status: number }[] {
    return this.frames.filter((f) => f.control && f.typeOrStream === FrameType.rstStream).map((f) => ({ id: f.payload.readUInt32BE(0), status: f.payload.readUInt32BE(4) }));
  }
}

describe('SPDY/3 framing', () => {
  it('reassembles frames fed a byte at a time', () => {
    const bytes = Buffer.concat([dataFrame(3, 1, Buffer.from('hello')), controlFrame(FrameType.ping, 0, Buffer.from([0, 0, 0, 1]))]);
    const reader = new FrameReader();
    const frames = [...bytes].flatMap((byte) => reader.push(Buffer.from([byte])));
    expect(frames.map((f) => [f.control, f.typeOrStream, f.flags, f.payload.toString('hex')])).toEqual([
      [false, 3, 1, Buffer.from('hello').toString('hex')],
      [true, FrameType.ping, 0, '00000001'],
    ]);
  });

  it('writes the version and 24-bit length into control frames', () => {
    expect(controlFrame(FrameType.rstStream, 0, Buffer.alloc(8)).subarray(0, 8).toString('hex')).toBe('8003000300000008');
  });

  it('round-trips header blocks through one zlib context per direction', async () => {
    const deflater = HeaderCodec.deflater();
    const inflater = HeaderCodec.inflater();
    for (const headers of [{ streamtype: 'error', port: '8080', requestid: '0' }, { streamtype: 'data', port: '8080', requestid: '0' }, {}] as SpdyHeaders[]) {
      expect(parseHeaderBlock(await inflater.process(await deflater.process(encodeHeaderBlock(headers))))).toEqual(headers);
    }
    deflater.close();
    inflater.close();
  });

  it('refuses a truncated header block and keeps the first of several NUL-joined values', () => {
    const block = encodeHeaderBlock({ Port: '80\u000081' });
    expect(parseHeaderBlock(block)).toEqual({ port: '80' });
    expect(() => parseHeaderBlock(block.subarray(0, block.length - 1))).toThrow(/truncated/);
  });
});

describe('SPDY/3 server session', () => {
  let session: SpdySession | undefined;
  afterEach(() => session?.close());

  async function connected(): Promise<{ client: TestClient; streams: SpdyStream[] }> {
    const [serverEnd, clientEnd] = duplexPair();
    session = new SpdySession(serverEnd);
    const streams: SpdyStream[] = [];
    session.on('stream', (stream) => streams.push(stream));
    session.on('error', () => undefined);
    return { client: new TestClient(clientEnd), streams };
  }

  it('opens streams with their headers, replies, carries data both ways and half-closes with FIN', async () => {
    const { client, streams } = await connected();
    await client.open(1, { streamType: 'data', port: '80', requestID: '7' });
    await client.waitFor('stream', () => streams.length === 1);
    const stream = streams[0]!;
    expect(stream.headers).toEqual({ streamtype: 'data', port: '80', requestid: '7' });
    await stream.reply();
    const received: string[] = [];
    stream.on('data', (chunk: Buffer) => received.push(chunk.toString()));
    let ended = false;
    stream.on('end', () => (ended = true));
    client.data(1, 'ping?');
    client.data(1, '', true);
    await client.waitFor('client data and FIN', () => ended);
    expect(received.join('')).toBe('ping?');
    stream.end('pong!');
    await client.waitFor('server FIN', () => client.dataOf(1).fin);
    expect(client.replies()).toEqual([1]);
    expect(await client.replyHeaders()).toEqual([{}]);
    expect(client.dataOf(1).text).toBe('pong!');
    await client.waitFor('stream closed on both sides', () => session!.openStreams === 0);
  });

  it('echoes pings, aborts a stream the client resets and refuses even or repeated stream ids', async () => {
    const { client, streams } = await connected();
    client.control(FrameType.ping, Buffer.from([0, 0, 0, 5]));
    await client.open(3, { streamtype: 'data' });
    await client.waitFor('ping echo and stream', () => streams.length === 1 && client.frames.some((f) => f.control && f.typeOrStream === FrameType.ping));
    const errors: Error[] = [];
    streams[0]!.on('error', (error) => errors.push(error));
    const rst = Buffer.alloc(8);
    rst.writeUInt32BE(3, 0);
    rst.writeUInt32BE(RstStatus.cancel, 4);
    client.control(FrameType.rstStream, rst);
    await client.waitFor('reset stream destroyed', () => streams[0]!.destroyed);
    expect(errors[0]?.message).toMatch(/reset by the client/);
    await client.open(2, { streamtype: 'data' });
    await client.open(3, { streamtype: 'data' });
    await client.waitFor('two refusals', () => client.resets().length === 2);
    expect(client.resets()).toEqual([
      { id: 2, status: RstStatus.protocolError },
      { id: 3, status: RstStatus.protocolError },
    ]);
    expect(streams).toHaveLength(1);
  });

  it('closes on a malformed header block with GOAWAY', async () => {
    const { client } = await connected();
    const head = Buffer.alloc(10);
    head.writeUInt32BE(1, 0);
    client.socket.write(controlFrame(FrameType.synStream, 0, Buffer.concat([head, Buffer.from('not zlib at all')])));
    const closed = new Promise<void>((resolve) => session!.once('close', () => resolve()));
    await closed;
    await client.waitFor('GOAWAY', () => client.frames.some((f) => f.control && f.typeOrStream === FrameType.goAway));
  });
});

describe('SPDY/3 DATA frames as written', () => {
  const big = Buffer.alloc(100_000);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;

  it('gives a stream that takes one write at a time whole frames, one per write', async () => {
    const writes: Buffer[] = [];
    const connection = new Duplex({ read() {}, write(chunk: Buffer, _encoding, callback) { writes.push(chunk); callback(); } });
    const session = new SpdySession(connection);
    await session.sendData(3, big, true);
    expect(writes.map((w) => w.length)).toEqual([8 + 65536, 8 + (100_000 - 65536)]);
    const frames = new FrameReader().push(Buffer.concat(writes));
    expect(frames.map((f) => [f.control, f.typeOrStream, f.flags])).toEqual([[false, 3, 0], [false, 3, 1]]);
    expect(Buffer.concat(frames.map((f) => f.payload)).equals(big)).toBe(true);
    session.close();
  });

  it('writes head and payload together on a socket: the peer reads the same frames, byte for byte', async () => {
    const server = createNetServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const client = connectTcp((server.address() as AddressInfo).port, '127.0.0.1');
    const peer = await accepted;
    const received: Buffer[] = [];
    peer.on('data', (chunk: Buffer) => received.push(chunk));
    const session = new SpdySession(client);
    await session.sendData(5, big, false);
    await session.sendData(5, Buffer.alloc(0), true);
    await vi.waitFor(() => expect(Buffer.concat(received).length).toBe(3 * 8 + big.length));
    const frames = new FrameReader().push(Buffer.concat(received));
    expect(frames.map((f) => [f.typeOrStream, f.flags, f.payload.length])).toEqual([[5, 0, 65536], [5, 0, 100_000 - 65536], [5, 1, 0]]);
    expect(Buffer.concat(frames.map((f) => f.payload)).equals(big)).toBe(true);
    session.close();
    peer.destroy();
    server.close();
  });
});

describe('port-forward endpoint', () => {
  const log = createLogger('test', 'silent');
  let streams: PortForwardStreams | undefined;
  afterEach(() => streams?.stop());

  function request(headers: Record<string, string>, method = 'POST'): IncomingMessage {
    return { method, headers } as unknown as IncomingMessage;
  }

  async function setUp(runtime: FakeRuntime, sandboxId: string): Promise<{ client: TestClient; serve: (headers: Record<string, string>, query?: string) => Promise<void> }> {
    streams = new PortForwardStreams({
      runtime,
      log,
      streamCreationTimeoutMs: 200,
      resolveSandbox: async (target) => (target.pod === 'web' ? { sandboxId, uid: 'uid-1' } : { status: 404, message: `pod "${target.namespace}/${target.pod}" not found on this node` }),
    });
    const [serverEnd, clientEnd] = duplexPair();
    const client = new TestClient(clientEnd, true);
    return { client, serve: (headers, query = '') => streams!.handle(request(headers), serverEnd, Buffer.alloc(0), { namespace: 'default', pod: 'web' }, new URLSearchParams(query)) };
  }

  async function sandbox(runtime: FakeRuntime): Promise<string> {
    return runtime.runPodSandbox({ metadata: { name: 'web', namespace: 'default', uid: 'uid-1', attempt: 0 }, hostname: 'web', logDirectory: '/tmp', labels: {}, annotations: {}, portMappings: [] } as never);
  }

  const spdyUpgrade = { connection: 'Upgrade', upgrade: 'SPDY/3.1', 'x-stream-protocol-version': 'portforward.k8s.io' };

  it('parses its path and port header as the kubelet does', () => {
    expect(parsePortForwardPath(['portForward', 'ns', 'pod'])).toEqual({ namespace: 'ns', pod: 'pod' });
    expect(parsePortForwardPath(['portForward', 'ns', 'pod', 'uid'])).toEqual({ namespace: 'ns', pod: 'pod', uid: 'uid' });
    expect(parsePortForwardPath(['exec', 'ns', 'pod', 'c'])).toBeUndefined();
    expect(parsePort('8080')).toBe(8080);
    expect(parsePort(undefined)).toBe('port header is missing');
    expect(parsePort('0')).toBe('invalid port "0"');
    expect(parsePort('http')).toBe('invalid port "http"');
  });

  it('forwards a stream pair to the runtime and answers on the data stream', async () => {
    const runtime = new FakeRuntime();
    const id = await sandbox(runtime);
    runtime.setPortForwardHandler(async (_sandbox, port, stream) => {
      // The runtime takes a while to connect (docker inspect, nsenter): what the client sent
      // meanwhile must wait in the stream for it, not be lost.
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Then what a server on localhost:<port> in the pod would do: answer once, then close.
      await new Promise<void>((resolve) => {
        stream.once('data', (chunk: Buffer) => stream.end(`port ${port} got ${String(chunk)}`, () => resolve()));
      });
    });
    const { client, serve } = await setUp(runtime, id);
    await serve(spdyUpgrade);
    await client.waitFor('101', () => client.text().length > 0);
    expect(client.text()).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY\/3\.1\r\nX-Stream-Protocol-Version: portforward\.k8s\.io\r\n\r\n/);
    await client.open(1, { streamtype: 'error', port: '8080', requestid: '0' }, true);
    await client.open(3, { streamtype: 'data', port: '8080', requestid: '0' });
    client.data(3, 'hello');
    await client.waitFor('answer and FINs', () => client.dataOf(3).fin && client.dataOf(1).fin);
    expect(client.dataOf(3).text).toBe('port 8080 got hello');
    expect(client.dataOf(1).text).toBe('');
    expect(client.replies().sort()).toEqual([1, 3]);
    expect(runtime.calls.filter((c) => c.method === 'portForward').map((c) => c.args)).toEqual([[id, 8080]]);
  });

  it('writes the reason on the error stream when the runtime cannot connect, and keeps serving', async () => {
    const runtime = new FakeRuntime();
    const id = await sandbox(runtime);
    const { client, serve } = await setUp(runtime, id);
    await serve(spdyUpgrade);
    await client.open(1, { streamtype: 'error', port: '9', requestid: 'a' }, true);
    await client.open(3, { streamtype: 'data', port: '9', requestid: 'a' });
    await client.waitFor('error text', () => client.dataOf(1).fin);
    expect(client.dataOf(1).text).toBe(`error forwarding port 9 to pod ${id}, uid uid-1: connect to localhost:9: Connection refused`);
    await client.open(5, { streamtype: 'error', port: '70000', requestid: 'b' }, true);
    await client.open(7, { streamtype: 'data', port: '70000', requestid: 'b' });
    await client.waitFor('second error text', () => client.dataOf(5).fin);
    expect(client.dataOf(5).text).toMatch(/invalid port "70000"/);
  });

  it('resets a stream whose pair never comes, and streams of an unknown type', async () => {
    const runtime = new FakeRuntime();
    const { client, serve } = await setUp(runtime, await sandbox(runtime));
    await serve(spdyUpgrade);
    await client.open(1, { streamtype: 'error', port: '80', requestid: 'lonely' }, true);
    await client.open(3, { streamtype: 'bogus', port: '80', requestid: 'x' });
    await client.waitFor('both reset', () => client.resets().length === 2);
    expect(client.resets().map((r) => r.id).sort()).toEqual([1, 3]);
  });

  it('refuses what it cannot serve without a 101, so kubectl can fall back or report it', async () => {
    const runtime = new FakeRuntime();
    const id = await sandbox(runtime);
    const cases: [Record<string, string>, RegExp][] = [
      [{ upgrade: 'websocket', 'sec-websocket-protocol': 'v5.channel.k8s.io' }, /^HTTP\/1\.1 400 .*SPDY\/3\.1\+portforward\.k8s\.io or v4\.channel\.k8s\.io/s],
      [{ upgrade: 'websocket', 'sec-websocket-protocol': 'v4.channel.k8s.io' }, /^HTTP\/1\.1 400 .*query parameter "ports" is required/s],
      [{ ...spdyUpgrade, 'x-stream-protocol-version': 'channel.k8s.io' }, /^HTTP\/1\.1 403 .*unable to negotiate protocol/s],
      [{ upgrade: 'h2c' }, /^HTTP\/1\.1 400 .*unsupported upgrade "h2c"/s],
    ];
    for (const [headers, answer] of cases) {
      const { client, serve } = await setUp(runtime, id);
      await serve(headers);
      await client.waitFor('answer', () => answer.test(client.raw()));
    }
    const [serverEnd, clientEnd] = duplexPair();
    const client = new TestClient(clientEnd, true);
    await streams!.handle(request(spdyUpgrade), serverEnd, Buffer.alloc(0), { namespace: 'default', pod: 'gone' }, new URLSearchParams());
    await client.waitFor('404', () => /^HTTP\/1\.1 404 .*pod "default\/gone" not found on this node/s.test(client.raw()));
  });
});

/** WebSocket frames as a server sends them (unmasked): opcode, FIN, payload (RFC 6455 section 5.2). */
function readWsFrames(bytes: Buffer): { opcode: number; fin: boolean; payload: Buffer }[] {
  const frames: { opcode: number; fin: boolean; payload: Buffer }[] = [];
  let offset = 0;
  while (offset + 2 <= bytes.length) {
    let length = bytes[offset + 1]! & 0x7f;
    let head = 2;
    if (length === 126) (length = bytes.readUInt16BE(offset + 2)), (head = 4);
    else if (length === 127) (length = Number(bytes.readBigUInt64BE(offset + 2))), (head = 10);
    if (offset + head + length > bytes.length) break;
    frames.push({ opcode: bytes[offset]! & 0x0f, fin: (bytes[offset]! & 0x80) !== 0, payload: bytes.subarray(offset + head, offset + head + length) });
    offset += head + length;
  }
  return frames;
}

/** A client's binary message: masked, as clients must, with the all-zero key (the bytes stay as they are). */
function wsClientMessage(payload: Buffer): Buffer {
  const head = payload.length < 126 ? Buffer.from([0x82, 0x80 | payload.length]) : Buffer.from([0x82, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, Buffer.alloc(4), payload]);
}

describe('port-forward over the WebSocket tunnel (kubectl)', () => {
  const log = createLogger('test', 'silent');
  let server: Server | undefined;
  let streams: PortForwardStreams | undefined;
  afterEach(() => {
    streams?.stop();
    server?.close();
  });

  it('carries the SPDY session in binary messages, a DATA frame as one message in two fragments (head, payload)', async () => {
    const runtime = new FakeRuntime();
    const id = await runtime.runPodSandbox({ metadata: { name: 'web', namespace: 'default', uid: 'uid-1', attempt: 0 }, hostname: 'web', logDirectory: '/tmp', labels: {}, annotations: {}, portMappings: [] } as never);
    const big = Buffer.alloc(100_000);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    runtime.setPortForwardHandler(async (_sandbox, _port, stream) => {
      await new Promise<void>((resolve) => stream.once('data', () => stream.end(big, () => resolve())));
    });
    const pf = new PortForwardStreams({ runtime, log, resolveSandbox: async () => ({ sandboxId: id, uid: 'uid-1' }) });
    streams = pf;
    const http = createServer();
    server = http;
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void pf.handle(req, socket, head, { namespace: 'default', pod: 'web' }, new URLSearchParams()));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const socket = connectTcp((http.address() as AddressInfo).port, '127.0.0.1');
    socket.write(
      'GET /portForward/default/web HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n',
    );
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    await vi.waitFor(() => expect(received.indexOf('\r\n\r\n')).toBeGreaterThan(0));
    const headEnd = received.indexOf('\r\n\r\n') + 4;
    expect(received.subarray(0, headEnd).toString()).toMatch(/^HTTP\/1\.1 101 .*Sec-WebSocket-Protocol: SPDY\/3\.1\+portforward\.k8s\.io\r\n/s);
    // The client's SPDY frames, each in a message of its own (kubectl's tunnel writes them so).
    const [clientEnd, spdyOut] = duplexPair();
    const client = new TestClient(clientEnd);
    spdyOut.on('data', (chunk: Buffer) => socket.write(wsClientMessage(chunk)));
    await client.open(1, { streamtype: 'error', port: '8080', requestid: '0' }, true);
    await client.open(3, { streamtype: 'data', port: '8080', requestid: '0' });
    client.data(3, 'GET');
    const dataBytes = 3 * 8 + big.length;
    await vi.waitFor(() => {
      const spdy = Buffer.concat(readWsFrames(received.subarray(headEnd)).map((f) => f.payload));
      const frames = new FrameReader().push(spdy);
      expect(frames.filter((f) => !f.control && f.typeOrStream === 3).reduce((n, f) => n + 8 + f.payload.length, 0)).toBe(dataBytes);
    });
    const wsFrames = readWsFrames(received.subarray(headEnd));
    // Every WebSocket frame is binary (2) or a continuation (0); a DATA frame with a payload is a
    // fragment of 8 bytes (its head) and a final one with the payload.
    expect(wsFrames.every((f) => f.opcode === 2 || f.opcode === 0)).toBe(true);
    const dataMessages = wsFrames.flatMap((f, i) => (f.opcode === 2 && !f.fin ? [[f.payload.length, wsFrames[i + 1]!.opcode, wsFrames[i + 1]!.fin, wsFrames[i + 1]!.payload.length]] : []));
    expect(dataMessages).toEqual([
      [8, 0, true, 65536],
      [8, 0, true, 100_000 - 65536],
    ]);
    const spdy = new FrameReader().push(Buffer.concat(wsFrames.map((f) => f.payload)));
    expect(Buffer.concat(spdy.filter((f) => !f.control && f.typeOrStream === 3).map((f) => f.payload)).equals(big)).toBe(true);
    socket.destroy();
  });
});

describe('port-forward over the WebSocket channel protocol (client libraries)', () => {
  const log = createLogger('test', 'silent');
  let server: Server | undefined;
  let streams: PortForwardStreams | undefined;
  afterEach(async () => {
    streams?.stop();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  });

  it('parses the ports query as the kubelet does', () => {
    expect(parsePortsQuery(new URLSearchParams('ports=80&ports=8080,9090'))).toEqual([80, 8080, 9090]);
    expect(parsePortsQuery(new URLSearchParams(''))).toBe('query parameter "ports" is required');
    expect(parsePortsQuery(new URLSearchParams('ports='))).toBe('query parameter "ports" cannot be empty');
    expect(parsePortsQuery(new URLSearchParams('ports=80,x'))).toBe('unable to parse "x" as a port');
  });

  /** A kubelet-like server on loopback whose /portForward upgrades go to PortForwardStreams. */
  async function serve(runtime: FakeRuntime, sandboxId: string): Promise<number> {
    streams = new PortForwardStreams({ runtime, log, resolveSandbox: async () => ({ sandboxId, uid: 'uid-1' }) });
    server = createServer();
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'http://kubelet');
      void streams!.handle(req, socket, head, { namespace: 'default', pod: 'web' }, url.searchParams);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  /** Opens the WebSocket, sends `input` on each data channel, collects every channel until the server closes. */
  function session(port: number, query: string, input: Record<number, string>): Promise<Map<number, Buffer[]>> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/portForward/default/web?${query}`, [channelProtocol]);
      const channels = new Map<number, Buffer[]>();
      ws.on('open', () => {
        for (const [channel, text] of Object.entries(input)) ws.send(Buffer.concat([Buffer.from([Number(channel)]), Buffer.from(text)]));
      });
      ws.on('message', (data: Buffer) => channels.set(data[0]!, [...(channels.get(data[0]!) ?? []), data.subarray(1)]));
      ws.on('close', () => resolve(channels));
      ws.on('error', reject);
    });
  }

  it('sends each port first on its channels, forwards every port at once and closes when they are done', async () => {
    const runtime = new FakeRuntime();
    const id = await runtime.runPodSandbox({ metadata: { name: 'web', namespace: 'default', uid: 'uid-1', attempt: 0 }, hostname: 'web', logDirectory: '/tmp', labels: {}, annotations: {}, portMappings: [] } as never);
    runtime.setPortForwardHandler(async (_sandbox, port, stream) => {
      if (port === 81) throw new Error('connect to localhost:81: Connection refused');
      await new Promise<void>((resolve) => stream.once('data', (chunk: Buffer) => stream.end(`port ${port} got ${String(chunk)}`, () => resolve())));
    });
    const channels = await session(await serve(runtime, id), 'ports=8080,81', { 0: 'hello' });
    const portOf = (channel: number) => channels.get(channel)?.[0]?.readUInt16LE(0);
    expect([portOf(0), portOf(1), portOf(2), portOf(3)]).toEqual([8080, 8080, 81, 81]);
    expect(Buffer.concat(channels.get(0)!.slice(1)).toString()).toBe('port 8080 got hello');
    expect(channels.get(1)).toHaveLength(1); // no error for 8080
    expect(Buffer.concat(channels.get(3)!.slice(1)).toString()).toBe(`error forwarding port 81 to pod ${id}, uid uid-1: connect to localhost:81: Connection refused`);
  });
});
