/**
 * The server side of a SPDY/3 connection as Kubernetes streams use it (k8s.io/apimachinery
 * util/httpstream/spdy over github.com/moby/spdystream): the client opens streams with
 * SYN_STREAM whose headers say what each is for, the server answers each with an empty
 * SYN_REPLY, and bytes travel in DATA frames until a FIN or a RST_STREAM. This is not
 * HTTP-over-SPDY (no :method/:path), which is why a SPDY-for-HTTP library (spdy-transport
 * insists on both) cannot parse it.
 *
 * Frame layouts follow the SPDY/3 draft (draft-mbelshe-httpbis-spdy-00, section 2.2 and 2.6);
 * header blocks are zlib-compressed with the spec's dictionary, one zlib context per direction
 * for the whole connection. Flow control (WINDOW_UPDATE) is ignored in both directions, as
 * spdystream does, so the peer's window never stalls a stream.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { constants as zlibConstants, createDeflate, createInflate, type Deflate, type Inflate } from 'node:zlib';
import { spdy3HeaderDictionary as headerDictionary } from './spdy-dictionary.js';

const version = 3;
export const FrameType = { synStream: 1, synReply: 2, rstStream: 3, settings: 4, ping: 6, goAway: 7, headers: 8, windowUpdate: 9 } as const;
const flagFin = 0x01;
/** RST_STREAM status codes (section 2.6.3). */
export const RstStatus = { protocolError: 1, invalidStream: 2, refusedStream: 3, cancel: 5, internalError: 6, streamInUse: 8, streamAlreadyClosed: 9 } as const;
/**
 * The largest DATA payload sent in one frame: a whole socket read of Node (64 KiB) fits, so a
 * forwarded read is one frame, not two. spdystream takes frames up to the format's 16 MiB
 * (spdy/read.go checks MaxDataLength only).
 */
const maxDataPayload = 64 * 1024;
/** A frame bigger than this (16 MiB is the format's limit) is a protocol error. */
const maxFrameLength = 0xffffff;

export type SpdyHeaders = Record<string, string>;

/** One parsed frame header plus its payload. */
interface RawFrame {
  control: boolean;
  /** Control frames: the type; data frames: the stream id. */
  typeOrStream: number;
  flags: number;
  payload: Buffer;
}

/** Splits a byte stream into frames; keeps the incomplete tail for the next chunk. */
export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): RawFrame[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: RawFrame[] = [];
    while (this.buffer.length >= 8) {
      const length = this.buffer.readUIntBE(5, 3);
      if (this.buffer.length < 8 + length) break;
      const first = this.buffer.readUInt32BE(0);
      const control = (first & 0x80000000) !== 0;
      frames.push({
        control,
        typeOrStream: control ? first & 0xffff : first & 0x7fffffff,
        flags: this.buffer[4]!,
        payload: this.buffer.subarray(8, 8 + length),
      });
      this.buffer = this.buffer.subarray(8 + length);
    }
    return frames;
  }
}

export function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  if (payload.length > maxFrameLength) throw new Error(`SPDY frame of ${payload.length} bytes is too large`);
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8000 | version, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt32BE(payload.length, 4);
  head[4] = flags;
  return Buffer.concat([head, payload]);
}

/** The 8-byte head of a DATA frame (section 2.2.2) carrying `length` bytes. */
function dataFrameHead(streamId: number, flags: number, length: number): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(streamId & 0x7fffffff, 0);
  head.writeUInt32BE(length, 4);
  head[4] = flags;
  return head;
}

export function dataFrame(streamId: number, flags: number, payload: Buffer): Buffer {
  return Buffer.concat([dataFrameHead(streamId, flags, payload.length), payload]);
}

/** A decompressed header block: a count, then length-prefixed names and values (section 2.6.10). */
export function parseHeaderBlock(block: Buffer): SpdyHeaders {
  const headers: SpdyHeaders = {};
  if (block.length < 4) throw new Error('SPDY header block shorter than its count');
  const count = block.readUInt32BE(0);
  let offset = 4;
  const take = (): string => {
    if (offset + 4 > block.length) throw new Error('SPDY header block truncated');
    const length = block.readUInt32BE(offset);
    offset += 4;
    if (offset + length > block.length) throw new Error('SPDY header block truncated');
    const text = block.toString('utf8', offset, offset + length);
    offset += length;
    return text;
  };
  for (let i = 0; i < count; i++) {
    const name = take().toLowerCase();
    // Several values of one name are joined by NUL; the first is the one streams use.
    headers[name] = take().split('\0')[0]!;
  }
  return headers;
}

export function encodeHeaderBlock(headers: SpdyHeaders): Buffer {
  const parts: Buffer[] = [];
  const count = Buffer.alloc(4);
  const entries = Object.entries(headers);
  count.writeUInt32BE(entries.length, 0);
  parts.push(count);
  for (const [name, value] of entries) {
    for (const text of [name.toLowerCase(), value]) {
      const bytes = Buffer.from(text, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length, 0);
      parts.push(length, bytes);
    }
  }
  return Buffer.concat(parts);
}

/** A zlib context that lives as long as the connection: each block ends with a sync flush (exported for tests). */
export class HeaderCodec {
  private readonly chunks: Buffer[] = [];

  constructor(private readonly zlib: Inflate | Deflate) {
    zlib.on('data', (chunk: Buffer) => this.chunks.push(chunk));
    zlib.on('error', () => undefined); // reported through the flush that failed
  }

  static inflater(): HeaderCodec {
    return new HeaderCodec(createInflate({ dictionary: headerDictionary }));
  }

  static deflater(): HeaderCodec {
    return new HeaderCodec(createDeflate({ dictionary: headerDictionary }));
  }

  /** Callers serialize their calls (one block at a time). */
  process(block: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(new Error(`SPDY header compression: ${error.message}`));
      this.zlib.once('error', onError);
      this.zlib.write(block);
      this.zlib.flush(zlibConstants.Z_SYNC_FLUSH, () => {
        this.zlib.off('error', onError);
        resolve(Buffer.concat(this.chunks.splice(0)));
      });
    });
  }

  close(): void {
    this.zlib.destroy();
  }
}

/**
 * One stream: readable side = the peer's DATA, writable side = our DATA; ending the writable
 * side sends FIN. `reset()` aborts both sides with RST_STREAM.
 */
export class SpdyStream extends Duplex {
  private remoteClosed = false;
  private localClosed = false;

  constructor(
    readonly id: number,
    readonly headers: SpdyHeaders,
    private readonly session: SpdySession,
  ) {
    super({ allowHalfOpen: true });
  }

  /** Sends the (empty) SYN_REPLY that the client waits for before using the stream. */
  reply(): Promise<void> {
    return this.session.sendReply(this.id);
  }

  /** Aborts the stream; the peer sees RST_STREAM with this status. */
  reset(status: number = RstStatus.cancel): void {
    if (this.destroyed) return;
    this.session.sendReset(this.id, status);
    this.localClosed = true;
    this.remoteClosed = true;
    this.destroy();
  }

  override _read(): void {
    // DATA is pushed as it arrives: spdystream has no flow control to pause a single stream.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.session.sendData(this.id, chunk, false).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.localClosed = true;
    this.session.sendData(this.id, Buffer.alloc(0), true).then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Destroyed before both sides finished: tell the peer, or it waits for this stream forever.
    if (!this.localClosed || !this.remoteClosed) this.session.sendReset(this.id, RstStatus.cancel);
    this.localClosed = true;
    this.remoteClosed = true;
    this.session.forget(this.id);
    callback(error);
  }

  /** @internal DATA from the peer. */
  receive(payload: Buffer, fin: boolean): void {
    if (this.remoteClosed) return;
    if (payload.length > 0) this.push(payload);
    if (fin) {
      this.remoteClosed = true;
      // Once what was pushed is read and our side has finished too, autoDestroy closes the stream.
      this.push(null);
    }
  }

  /** @internal RST_STREAM from the peer, or the connection went away. */
  abort(reason: string): void {
    this.remoteClosed = true;
    this.localClosed = true;
    this.destroy(new Error(reason));
  }
}

interface SpdySessionEvents {
  stream: [SpdyStream];
  close: [];
  error: [Error];
}

/** The server end of one SPDY/3 connection on an already upgraded byte stream. */
export class SpdySession extends EventEmitter<SpdySessionEvents> {
  private readonly reader = new FrameReader();
  private readonly inflater = HeaderCodec.inflater();
  private readonly deflater = HeaderCodec.deflater();
  private readonly streams = new Map<number, SpdyStream>();
  /** Frames are handled one at a time: header blocks share one zlib context. */
  private incoming: Promise<void> = Promise.resolve();
  /** And written in order: a SYN_REPLY compresses asynchronously, DATA must not overtake it. */
  private outgoing: Promise<void> = Promise.resolve();
  private lastStreamId = 0;
  private closed = false;

  constructor(private readonly connection: Duplex) {
    super();
    connection.on('data', (chunk: Buffer) => {
      let frames: RawFrame[];
      try {
        frames = this.reader.push(chunk);
      } catch (error) {
        return this.fail(error as Error);
      }
      for (const frame of frames) this.incoming = this.incoming.then(() => this.handle(frame)).catch((error: unknown) => this.fail(error as Error));
    });
    connection.on('end', () => this.close());
    connection.on('close', () => this.close());
    connection.on('error', (error: Error) => this.fail(error));
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /** Ends the connection with GOAWAY; open streams are aborted. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const stream of [...this.streams.values()]) stream.abort('SPDY connection closed');
    this.streams.clear();
    this.inflater.close();
    this.deflater.close();
    if (this.connection.writable) {
      const payload = Buffer.alloc(8);
      payload.writeUInt32BE(this.lastStreamId, 0);
      this.connection.end(controlFrame(FrameType.goAway, 0, payload));
      // The GOAWAY gets a moment to leave before the connection is torn down.
      setTimeout(() => this.connection.destroy(), 1000).unref();
    } else this.connection.destroy();
    this.emit('close');
  }

  /** @internal */
  sendReply(streamId: number): Promise<void> {
    return this.enqueue(async () => {
      const block = await this.deflater.process(encodeHeaderBlock({}));
      const id = Buffer.alloc(4);
      id.writeUInt32BE(streamId, 0);
      await this.write(controlFrame(FrameType.synReply, 0, Buffer.concat([id, block])));
    });
  }

  /** @internal */
  sendData(streamId: number, data: Buffer, fin: boolean): Promise<void> {
    return this.enqueue(async () => {
      for (let offset = 0; offset < data.length; offset += maxDataPayload) {
        const last = offset + maxDataPayload >= data.length;
        const payload = data.subarray(offset, offset + maxDataPayload);
        // Head and payload go out in one writev (corked): no copy of the payload into a frame buffer.
        await this.write(dataFrameHead(streamId, fin && last ? flagFin : 0, payload.length), payload);
      }
      if (data.length === 0 && fin) await this.write(dataFrameHead(streamId, flagFin, 0));
    });
  }

  /** @internal */
  sendReset(streamId: number, status: number): void {
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(streamId, 0);
    payload.writeUInt32BE(status, 4);
    // A reset on a connection already gone cannot be sent; the peer sees the connection end instead.
    void this.enqueue(() => this.write(controlFrame(FrameType.rstStream, 0, payload))).catch(() => undefined);
  }

  /** @internal */
  forget(streamId: number): void {
    this.streams.delete(streamId);
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.outgoing.then(task);
    // The failure reaches enqueue's caller through `run`; the queue itself goes on.
    this.outgoing = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes a frame given in parts; resolves once the connection takes more. A stream that takes
   * several parts at once (_writev: a socket, the WebSocket tunnel's stream) gets them corked, so
   * they go out together; any other stream gets them joined.
   */
  private write(...parts: Buffer[]): Promise<void> {
    if (this.closed || !this.connection.writable) return Promise.reject(new Error('SPDY connection closed'));
    if (parts.length > 1 && typeof (this.connection as { _writev?: unknown })._writev !== 'function') parts = [Buffer.concat(parts)];
    let more = true;
    if (parts.length > 1) this.connection.cork();
    for (const part of parts) more = this.connection.write(part);
    if (parts.length > 1) this.connection.uncork();
    if (more) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        this.connection.off('drain', done);
        this.connection.off('close', done);
        if (this.closed) reject(new Error('SPDY connection closed'));
        else resolve();
      };
      this.connection.on('drain', done);
      this.connection.on('close', done);
    });
  }

  private fail(error: Error): void {
    if (this.closed) return;
    this.emit('error', error);
    this.close();
  }

  private async handle(frame: RawFrame): Promise<void> {
    if (this.closed) return;
    if (!frame.control) {
      const stream = this.streams.get(frame.typeOrStream);
      // DATA on a stream we do not know (already reset) is dropped, as spdystream does.
      stream?.receive(frame.payload, (frame.flags & flagFin) !== 0);
      return;
    }
    const { payload } = frame;
    switch (frame.typeOrStream) {
      case FrameType.synStream: {
        if (payload.length < 10) throw new Error('SPDY SYN_STREAM too short');
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const headers = parseHeaderBlock(await this.inflater.process(payload.subarray(10)));
        if (id === 0 || id <= this.lastStreamId || id % 2 === 0) {
          // Client streams have odd, increasing ids (section 2.3.2).
          this.sendReset(id, RstStatus.protocolError);
          return;
        }
        this.lastStreamId = id;
        const stream = new SpdyStream(id, headers, this);
        this.streams.set(id, stream);
        if ((frame.flags & flagFin) !== 0) stream.receive(Buffer.alloc(0), true);
        this.emit('stream', stream);
        return;
      }
      case FrameType.rstStream: {
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        this.streams.get(id)?.abort(`stream reset by the client (status ${payload.readUInt32BE(4)})`);
        return;
      }
      case FrameType.headers: {
        // Extra headers change nothing for port-forward, but their block must pass through the zlib context.
        await this.inflater.process(payload.subarray(4));
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        if ((frame.flags & flagFin) !== 0) this.streams.get(id)?.receive(Buffer.alloc(0), true);
        return;
      }
      case FrameType.ping:
        // Client pings (odd ids) are echoed (section 2.6.5); client-go sends them to keep proxies open.
        await this.enqueue(() => this.write(controlFrame(FrameType.ping, 0, payload)));
        return;
      case FrameType.goAway:
        this.close();
        return;
      case FrameType.synReply:
        // The server never opens streams, so a reply can only be a client error: ignored.
        await this.inflater.process(payload.subarray(4));
        return;
      default:
        // SETTINGS, WINDOW_UPDATE and unknown types are ignored (section 2.2.1: receivers must ignore unknown control frames).
        return;
    }
  }
}
