/**
 * The plugin's fast path. Starting Node costs ~63 ms, the reference Go bridge+host-local pair
 * does a whole ADD in ~14 ms (../shared/TESTING.md), so a per-call Node process cannot keep up.
 * Instead the installed `knode` plugin is a tiny Perl launcher (cni/launcher.ts) that sends
 * the request over a unix socket to this server, which runs inside the long-lived daemon and
 * calls the very same `handleCniRequest` as the standalone executable. With no server (or a
 * server in another netns) the launcher runs the plugin in-process instead.
 *
 * Wire format (kept trivial for the launcher): request = "KNODE-CNI 1 <netns inode>\n", then
 * "CNI_X=value\n" lines, an empty line, then the network config until EOF (half-close).
 * Response = "<exit code>\n<stdout>", or "FALLBACK\n" when the caller is in another netns.
 */
import { statSync, rmSync, mkdirSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../lib/log.js';
import { IpBatchSession } from './ip-session.js';
import { NetnsIpPool } from './ip-pool.js';
import { useIpHelpers } from './netdev.js';
import { handleCniRequest } from './plugin.js';

/** Next to flannel's default subnet file; the daemon listens at knode-cni.sock beside --subnet-file. */
export const defaultCniSocket = '/run/flannel/knode-cni.sock';

export interface ParsedRequest {
  netnsInode: number;
  env: Record<string, string>;
  stdin: string;
}

/** Parses one request; undefined when it is not ours. Pure. */
export function parseWireRequest(data: Buffer): ParsedRequest | undefined {
  const text = data.toString('utf8');
  const headerEnd = text.indexOf('\n');
  const header = /^KNODE-CNI 1 (\d+)$/.exec(text.slice(0, headerEnd));
  if (!header) return undefined;
  const bodyStart = text.indexOf('\n\n', headerEnd);
  const envText = bodyStart < 0 ? text.slice(headerEnd + 1) : text.slice(headerEnd + 1, bodyStart);
  const env: Record<string, string> = {};
  for (const line of envText.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && line.startsWith('CNI_')) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return { netnsInode: Number(header[1]), env, stdin: bodyStart < 0 ? '' : text.slice(bodyStart + 2) };
}

export class CniSocketServer {
  private server?: Server;
  private session?: IpBatchSession;
  private pool?: NetnsIpPool;
  private readonly ownNetns: number;

  constructor(
    readonly socketPath: string,
    private readonly log?: Logger,
  ) {
    this.ownNetns = statSync('/proc/self/ns/net').ino;
  }

  async start(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true });
    rmSync(this.socketPath, { force: true });
    const server = createServer({ allowHalfOpen: true }, (socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    this.server = server;
    this.session = new IpBatchSession();
    this.pool = new NetnsIpPool();
    this.pool.fill();
    useIpHelpers({ session: this.session, pool: this.pool });
    this.log?.info({ socket: this.socketPath }, 'CNI fast path listening');
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    useIpHelpers({});
    this.session?.close();
    this.pool?.close();
    rmSync(this.socketPath, { force: true });
  }

  private serve(socket: Socket): void {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('end', () => {
      const request = parseWireRequest(Buffer.concat(chunks));
      if (!request || request.netnsInode !== this.ownNetns) {
        socket.end('FALLBACK\n');
        return;
      }
      const env = { ...request.env, PATH: process.env.PATH };
      handleCniRequest({ env, stdin: request.stdin }).then(
        (response) => socket.end(`${response.exitCode}\n${response.stdout}`),
        (error: unknown) => {
          this.log?.error({ err: error }, 'CNI request failed');
          socket.end('FALLBACK\n');
        },
      );
    });
  }
}
