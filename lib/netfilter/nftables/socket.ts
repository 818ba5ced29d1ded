/**
 * A NETLINK_NETFILTER socket for nf_tables: batches (one kernel transaction each) and dumps.
 *
 * Built on the `netlink` package's RawNetlinkSocket (a real AF_NETLINK socket for any protocol
 * number; its higher NetlinkSocket handles one request → one reply, which does not fit batches).
 *
 * - A batch is NFNL_MSG_BATCH_BEGIN, the messages, NFNL_MSG_BATCH_END in one sendmsg; the kernel
 *   applies all or nothing and reports errors (with the failed message's sequence number) even
 *   without NLM_F_ACK. Netlink input is processed synchronously in the sender's context, so a
 *   NFT_MSG_GETGEN request sent right after is answered only after every error of the batch:
 *   its reply closes the batch, one ack instead of one per message (what nft's mnl_batch_talk
 *   gets from NLM_F_ACK on each message costs 100k acks at 10k Services).
 * - One sendmsg is limited by SO_SNDBUF, which an unprivileged setsockopt caps at
 *   net.core.wmem_max (the package has no SO_SNDBUFFORCE, which nft uses; the kernel doubles
 *   what it grants). A bigger batch is sent as several transactions,
 *   split only where the caller allowed (Batch.cut) —
 *   the proxier orders its messages so that every cut leaves a consistent ruleset (new chains
 *   before the map elements that point at them).
 */
import { constants } from 'node:os';
import { RawNetlinkSocket } from 'netlink';
import { Batch } from './batch.js';
import { Msg, NETLINK_NETFILTER, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NFPROTO_IPV4, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP, NLM_F_REQUEST, message, nftType, parseMessages, type NlMessage } from './wire.js';

const errnoNames = new Map(Object.entries(constants.errno).map(([name, number]) => [number, name]));

export class NftError extends Error {
  constructor(message: string, readonly errno: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NftError';
  }
  get code(): string {
    return errnoNames.get(this.errno) ?? `errno ${this.errno}`;
  }
}

export const isNotFound = (error: unknown) => error instanceof NftError && error.errno === constants.errno.ENOENT;

interface Pending {
  seqs: { first: number; last: number };
  errors: { seq: number; errno: number }[];
  replies: NlMessage[];
  doneSeq: number;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface NftSocketOptions {
  /** Socket buffer sizes requested (the kernel caps them at net.core.{w,r}mem_max and doubles them). */
  bufferBytes?: number;
  /** The largest transaction to send (bytes; capped by the send buffer the kernel granted). */
  maxBatchBytes?: number;
  timeoutMs?: number;
}

/** What the proxier needs of nf_tables (NftSocket; tests carry it into a netns). */
export interface NftTransport {
  commit(batch: Batch): Promise<{ transactions: number }>;
  dump(msg: number, attrs: Buffer[], family?: number): Promise<Buffer[]>;
  close(): void;
}

/**
 * Transactions are as large as one write can be (the send buffer the kernel granted), so that a
 * sync is as few transactions as possible: each commit that adds a jump validates every chain
 * reachable from the base chains (nft_table_validate) and walks the table's whole chain list.
 * (While each Service had an anonymous numgen map, binding it walked the whole transaction so
 * far, __nft_set_trans_bind, and 2 MiB transactions were faster; build.ts numgenPick.)
 * Measured, 10k Services × 10 endpoints, first sync: 2 MiB 7.6 s (54 transactions), 7 MiB
 * 6.7–6.9 s (16).
 */
const defaultMaxBatchBytes = Number.POSITIVE_INFINITY;

/**
 * Every recvmsg offers this many bytes. The kernel sizes a dump's datagrams by the largest
 * recvmsg length it has seen (netlink_recvmsg's max_recvmsg_len, capped just under 32 KiB), and
 * nf_tables dumps restart their walk of the table's chains (rules, set elements) from the start
 * for every datagram: with the `netlink` package's default message peeking (a 1-byte peek, then
 * a read of exactly the datagram) the kernel stays at ~4 KiB datagrams. Measured, 100k Services
 * × 2 endpoints (300k chains, 30 MB): the chain dump took 102 s of kernel time with peeking.
 * Dump datagrams never exceed this; only an error echoing a large request (up to 64 KiB,
 * a set-element message) can, and its header and errno come first (receiveTruncated).
 */
const receiveBytes = 32 * 1024;

export class NftSocket implements NftTransport {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private pending?: Pending;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly timeoutMs: number;
  /** The largest transaction (bytes) one write may carry. */
  readonly maxBatchBytes: number;

  private constructor(private readonly socket: RawNetlinkSocket, options: NftSocketOptions) {
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.maxBatchBytes = Math.max(64 * 1024, Math.min(options.maxBatchBytes ?? defaultMaxBatchBytes, socket.getSendBufferSize() - 64 * 1024));
    socket.on('message', (data: Buffer) => this.receive(data));
    socket.on('truncatedMessage', (data: Buffer, info: { truncated?: number }) => this.receiveTruncated(data, info.truncated ?? 0));
    socket.on('error', (error: Error) => this.pending?.reject(new Error('nf_tables netlink socket error', { cause: error })));
  }

  static open(options: NftSocketOptions = {}): NftSocket {
    const bytes = options.bufferBytes ?? 16 * 1024 * 1024;
    try {
      return new NftSocket(new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: bytes, sendBufferSize: bytes, messagePeeking: false, msgBufferSize: receiveBytes }), options);
    } catch (error) {
      throw new Error('cannot open a NETLINK_NETFILTER socket', { cause: error });
    }
  }

  close(): void {
    this.socket.close();
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) & 0x7fffffff;
    return this.seq;
  }

  private receive(data: Buffer): void {
    const pending = this.pending;
    if (!pending) return;
    // the limit is on silence, not on the whole exchange: a dump of 100k Services' sets and
    // chains streams for minutes (measured), each datagram a sign of progress
    pending.timer.refresh();
    for (const msg of parseMessages(data)) {
      if (msg.type === NLMSG_ERROR) {
        const errno = -msg.payload.readInt32LE(0);
        if (msg.seq === pending.doneSeq) {
          if (errno !== 0) pending.errors.push({ seq: msg.seq, errno });
          pending.resolve();
          return;
        }
        if (errno !== 0) pending.errors.push({ seq: msg.seq, errno });
        continue;
      }
      if (msg.seq !== pending.doneSeq) continue;
      if (msg.type === NLMSG_DONE || msg.type === nftType(Msg.newGen)) {
        pending.resolve();
        return;
      }
      pending.replies.push(msg);
    }
  }

  /**
   * A datagram larger than receiveBytes: an error answering a big request (the kernel echoes the
   * request after the errno) is still read — its header, sequence number and errno are whole;
   * anything else cannot be trusted and fails the exchange.
   */
  private receiveTruncated(data: Buffer, size: number): void {
    const pending = this.pending;
    if (!pending) return;
    if (data.length >= 20 && data.readUInt16LE(4) === NLMSG_ERROR) {
      const header = Buffer.from(data.subarray(0, 20));
      header.writeUInt32LE(20, 0);
      this.receive(header);
      return;
    }
    pending.reject(new Error(`nf_tables netlink: a ${size}-byte reply is larger than the ${receiveBytes}-byte receive buffer`));
  }

  /** Sends buffers and waits for the message with sequence number doneSeq (reply, error or DONE). */
  private exchange(writes: Buffer[][], doneSeq: number, seqs = { first: doneSeq, last: doneSeq }): Promise<Pending> {
    const run = () =>
      new Promise<Pending>((resolve, reject) => {
        const pending: Pending = {
          seqs, errors: [], replies: [], doneSeq,
          resolve: () => finish(() => resolve(pending)),
          reject: (error) => finish(() => reject(error)),
          timer: setTimeout(() => pending.reject(new Error(`nf_tables netlink: no answer for ${this.timeoutMs} ms`)), this.timeoutMs),
        };
        const finish = (then: () => void) => {
          clearTimeout(pending.timer);
          if (this.pending === pending) this.pending = undefined;
          then();
        };
        this.pending = pending;
        for (const buffers of writes) {
          // one buffer per write: sendmsg takes at most UIO_MAXIOV (1024) iovecs
          this.socket.send(Buffer.concat(buffers), { port: 0 }, (error) => {
            if (error) pending.reject(new Error('nf_tables netlink send failed', { cause: error }));
          });
        }
      });
    const result = this.queue.then(run, run);
    // The failure reaches the caller through `result`; the queue itself goes on.
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Commits the batch: one transaction if it fits in one write, else one per chunk (split at
   * the batch's cuts). Throws NftError naming the first failed message; chunks before it stay
   * committed (the caller then resyncs in full).
   */
  async commit(batch: Batch): Promise<{ transactions: number }> {
    if (batch.size === 0) return { transactions: 0 };
    let transactions = 0;
    for (const chunk of this.chunks(batch)) {
      transactions++;
      const begin = message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, [], NFNL_SUBSYS_NFTABLES);
      const end = message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, [], NFNL_SUBSYS_NFTABLES);
      const first = this.nextSeq();
      begin.writeUInt32LE(first, 8);
      // consecutive sequence numbers: a failed message's index is its distance from `first`
      for (const index of chunk) batch.messages[index]?.writeUInt32LE(this.nextSeq(), 8);
      end.writeUInt32LE(this.nextSeq(), 8);
      const gen = message(nftType(Msg.getGen), NLM_F_REQUEST, 0, []);
      const doneSeq = this.nextSeq();
      gen.writeUInt32LE(doneSeq, 8);
      // The batch must be alone in its write: the kernel ignores what follows BATCH_END in it.
      const buffers = [begin, ...chunk.map((index) => batch.messages[index] as Buffer), end];
      const result = await this.exchange([buffers, [gen]], doneSeq, { first, last: doneSeq });
      const failure = result.errors.find((error) => error.seq !== doneSeq) ?? result.errors[0];
      if (failure) {
        const offset = (failure.seq - first - 1) & 0x7fffffff;
        const index = offset < chunk.length ? chunk[offset] : undefined;
        const what = index === undefined ? 'the batch' : `"${batch.description(index)}"`;
        const error = new NftError(`nf_tables transaction ${transactions} failed at ${what}: ${errnoNames.get(failure.errno) ?? failure.errno}`, failure.errno);
        throw error;
      }
    }
    return { transactions };
  }

  private *chunks(batch: Batch): Generator<number[]> {
    let chunk: number[] = [];
    let bytes = 0;
    let lastCut = 0;
    let nextCut = 0;
    const length = (index: number) => batch.messages[index]?.length ?? 0;
    for (let index = 0; index < batch.size; index++) {
      // cut before the message that would not fit: a chunk stays within one write unless a
      // single unit between two cuts is larger than that
      if (bytes + length(index) > this.maxBatchBytes && lastCut > 0) {
        yield chunk.slice(0, lastCut);
        chunk = chunk.slice(lastCut);
        bytes = chunk.reduce((sum, i) => sum + length(i), 0);
        lastCut = 0;
      }
      chunk.push(index);
      bytes += length(index);
      if (batch.cuts[nextCut] === index) {
        nextCut++;
        lastCut = chunk.length;
      }
    }
    if (chunk.length > 0) yield chunk;
  }

  /** A GET dump (NLM_F_DUMP) of one object kind, filtered by the attributes given. */
  async dump(msg: number, attrs: Buffer[], family = NFPROTO_IPV4): Promise<Buffer[]> {
    const request = message(nftType(msg), NLM_F_REQUEST | NLM_F_DUMP, family, attrs);
    const seq = this.nextSeq();
    request.writeUInt32LE(seq, 8);
    const result = await this.exchange([[request]], seq);
    const failure = result.errors[0];
    if (failure) throw new NftError(`nf_tables dump (message ${msg}) failed: ${errnoNames.get(failure.errno) ?? failure.errno}`, failure.errno);
    return result.replies.map((reply) => reply.payload);
  }
}
