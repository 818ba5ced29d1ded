/**
 * The plugin's fast path. Starting Node costs ~63 ms, the reference Go bridge+host-local pair
 * does a whole ADD in ~14 ms (bench/cni-add-del.ts), so a per-call Node process cannot keep up.
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
import { dirname, join } from 'node:path';
import { maxNetconfBytes } from '../lib/cni/limits.js';
import { CniError, ErrorCode, errorJson } from '../lib/cni/types.js';
import { NetnsIpPool } from '../lib/ip/pool.js';
import { IpRunner } from '../lib/ip/runner.js';
import { IpBatchSession } from '../lib/ip/session.js';
import type { Logger } from '../lib/log.js';
import { handleCniRequest, pluginContext, type CniContext } from './plugin.js';
import { defaultSubnetFile } from './plugin-config.js';

/** A request: the network configuration plus its CNI_* lines (the kernel caps each at 128 KiB). */
const maxWireRequestBytes = maxNetconfBytes + 256 * 1024;

/**
 * The one rule that places the fast-path socket: `knode-cni.sock` beside the subnet file. The
 * overlay daemon listens there (beside its --subnet-file) and the launcher derives the same path
 * from the netconf's `subnetFile` (cni/launcher.ts generates its Perl from these constants), so a
 * subnet file outside /run/flannel cannot silently turn the fast path off.
 */
export const cniSocketName = 'knode-cni.sock';
export const cniSocketFor = (subnetFile: string): string => join(dirname(subnetFile), cniSocketName);
/** Beside flannel's default subnet file: where a netconf without `subnetFile` finds the daemon. */
export const defaultCniSocket = cniSocketFor(defaultSubnetFile);

interface ParsedRequest {
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
  private ip?: IpRunner;
  private context?: CniContext;
  private readonly ownNetns: number;

  /** `ip`: the host daemon's runner (it owns and closes it); without one the server makes and closes its own. */
  constructor(
    readonly socketPath: string,
    private readonly log?: Logger,
    private readonly sharedIp?: IpRunner,
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
    // One runner for the daemon's lifetime: its host `ip -batch` session, warm pod-netns
    // shells and netlink socket; the iptables backend is detected once, on first masquerade.
    if (this.sharedIp) {
      this.context = pluginContext(this.sharedIp);
    } else {
      const pool = new NetnsIpPool();
      pool.fill();
      this.ip = new IpRunner({ session: new IpBatchSession(), pool });
      this.context = pluginContext(this.ip);
    }
    this.log?.info({ socket: this.socketPath }, 'CNI fast path listening');
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.ip?.close();
    this.ip = undefined;
    this.context = undefined;
    rmSync(this.socketPath, { force: true });
  }

  private serve(socket: Socket): void {
    const chunks: Buffer[] = [];
    let size = 0;
    // Bounded: past the limit the rest is read and dropped (the launcher writes everything
    // before it reads), then the caller gets code 4 instead of the daemon buffering it all.
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxWireRequestBytes) chunks.push(chunk);
    });
    socket.on('error', () => socket.destroy());
    socket.on('end', () => {
      if (size > maxWireRequestBytes) {
        const error = new CniError(ErrorCode.invalidConfig, `CNI request is ${size} bytes, above the limit of ${maxWireRequestBytes}`);
        socket.end(`1\n${JSON.stringify(errorJson(error, '1.1.0'))}`);
        return;
      }
      const request = parseWireRequest(Buffer.concat(chunks));
      const context = this.context;
      if (!request || request.netnsInode !== this.ownNetns || !context) {
        socket.end('FALLBACK\n');
        return;
      }
      const env = { ...request.env, PATH: process.env.PATH };
      handleCniRequest({ env, stdin: request.stdin }, context).then(
        (response) => socket.end(`${response.exitCode}\n${response.stdout}`),
        (error: unknown) => {
          this.log?.error({ err: error }, 'CNI request failed');
          socket.end('FALLBACK\n');
        },
      );
    });
  }
}
