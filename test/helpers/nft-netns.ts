/**
 * An NftTransport whose socket lives in a test netns. A netlink socket belongs to the netns of
 * the process that opens it and Node cannot setns(), so a child process started with
 * `ip netns exec NS vite-node test/helpers/nft-netns.ts` opens the NftSocket there and serves
 * commits and dumps over stdin/stdout (one JSON line per request, buffers in base64).
 *
 * Also `nft(ns, args, input?)`: the nft CLI inside a test netns (never the root one).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Batch } from '../../lib/netfilter/nftables/batch.js';
import { NftError, NftSocket, type NftTransport } from '../../lib/netfilter/nftables/socket.js';
import { run } from '../../lib/exec.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Request {
  id: number;
  op: 'commit' | 'dump';
  table?: string;
  messages?: string[];
  descriptions?: string[];
  cuts?: number[];
  msg?: number;
  attrs?: string[];
  family?: number;
}

interface Reply {
  id: number;
  error?: string;
  errno?: number;
  transactions?: number;
  replies?: string[];
}

const b64 = (buffer: Buffer) => buffer.toString('base64');
const unb64 = (text: string) => Buffer.from(text, 'base64');

export class NetnsNft implements NftTransport {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Reply) => void>();

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const reply = JSON.parse(line) as Reply;
      this.waiting.get(reply.id)?.(reply);
      this.waiting.delete(reply.id);
    });
  }

  /** maxBatchBytes: the socket's transaction limit (NftSocketOptions), to make a test split its batches. */
  static async start(netns: string, options: { maxBatchBytes?: number } = {}): Promise<NetnsNft> {
    if (!netns.startsWith('knt-')) throw new Error(`"${netns}" is not a test netns`);
    const env = { ...process.env, KNODE_NFT_CHILD: '1', ...(options.maxBatchBytes ? { KNODE_NFT_MAX_BATCH: String(options.maxBatchBytes) } : {}) };
    const child = spawn('ip', ['netns', 'exec', netns, join(repo, 'node_modules', '.bin', 'vite-node'), join(repo, 'test', 'helpers', 'nft-netns.ts')], { cwd: repo, stdio: 'pipe', env });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const transport = new NetnsNft(child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nft child did not start: ${stderr}`)), 60_000);
      child.once('exit', (code) => reject(new Error(`nft child exited (${code}): ${stderr}`)));
      void transport.request({ id: 0, op: 'dump', msg: 16, attrs: [] }).then(() => {
        clearTimeout(timer);
        resolve();
      }, reject);
    });
    return transport;
  }

  private request(request: Request): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin.write(`${JSON.stringify({ ...request, id })}\n`);
    });
  }

  async commit(batch: Batch): Promise<{ transactions: number }> {
    const reply = await this.request({ id: 0, op: 'commit', table: batch.table, messages: batch.messages.map(b64), descriptions: batch.descriptions, cuts: [...batch.cuts] });
    if (reply.error) throw new NftError(reply.error, reply.errno ?? 0);
    return { transactions: reply.transactions ?? 0 };
  }

  async dump(msg: number, attrs: Buffer[], family?: number): Promise<Buffer[]> {
    const reply = await this.request({ id: 0, op: 'dump', msg, attrs: attrs.map(b64), family });
    if (reply.error) throw new NftError(reply.error, reply.errno ?? 0);
    return (reply.replies ?? []).map(unb64);
  }

  close(): void {
    this.child.stdin.end();
    this.child.kill('SIGTERM');
  }
}

/** `nft ARGS` inside a test netns; stdin optional. */
export async function nft(netns: string, args: string[], input?: string): Promise<string> {
  if (!netns.startsWith('knt-')) throw new Error(`"${netns}" is not a test netns`);
  const result = await run(['ip', 'netns', 'exec', netns, 'nft', ...args], { input, allowFailure: true, timeoutMs: 600_000 });
  if (result.code !== 0) throw new Error(`nft ${args.join(' ')} failed: ${result.stderr.trim()}`);
  return result.stdout + result.stderr;
}

async function serve(): Promise<void> {
  const socket = NftSocket.open(process.env.KNODE_NFT_MAX_BATCH ? { maxBatchBytes: Number(process.env.KNODE_NFT_MAX_BATCH) } : {});
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const request = JSON.parse(line) as Request;
    let reply: Reply;
    try {
      if (request.op === 'commit') {
        const batch = Batch.fromParts(request.table ?? '', (request.messages ?? []).map(unb64), request.descriptions ?? [], request.cuts ?? []);
        reply = { id: request.id, transactions: (await socket.commit(batch)).transactions };
      } else {
        reply = { id: request.id, replies: (await socket.dump(request.msg ?? 0, (request.attrs ?? []).map(unb64), request.family)).map(b64) };
      }
    } catch (error) {
      reply = { id: request.id, error: error instanceof Error ? error.message : String(error), errno: error instanceof NftError ? error.errno : 0 };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  }
  socket.close();
}

if (process.env.KNODE_NFT_CHILD === '1') await serve();
