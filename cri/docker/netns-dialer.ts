/**
 * TCP connections opened inside a pod's network namespace without a process per connection.
 *
 * containerd's CRI opens a port-forward connection in-process: it enters the sandbox's netns on
 * one locked OS thread and dials localhost there (internal/cri/server/sandbox_portforward_linux.go,
 * `netns.Do(func() { net.Dial("tcp4", "localhost:<port>") })`), so the bytes go straight between
 * the stream and the socket. Node cannot move one thread into another namespace, so a small
 * helper process per network namespace (`nsenter --net=<path> node -e …`) does the connect()
 * and hands the connected socket to the agent over its IPC channel (SCM_RIGHTS); the agent then
 * reads and writes that socket itself. Compared with `nsenter … socat` per connection (what
 * cri-dockerd runs, ./port-forward.ts) this saves a process spawn per connection and a pipe copy
 * of every byte in each direction.
 *
 * A helper is started on the first connection into a namespace (that connection still goes
 * through socat, so it never waits for a Node start), serves later ones, and exits after
 * `idleMs` without a connection; a helper keeps its namespace alive, so the namespace's inode
 * identifies it. At most `maxHelpers` run at once (each is a Node process of ~40 MiB); beyond
 * that, connections go through socat.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import type { Logger } from '../../lib/log.js';

/** The helper's whole program: connect() on request, pass the connected socket back, never read from it. */
const helperSource = `
const net = require('node:net');
process.on('message', (m) => {
  if (!m || !Number.isInteger(m.id) || !Number.isInteger(m.port)) return;
  const socket = net.connect({ host: '127.0.0.1', port: m.port });
  // Paused before it connects, no byte is read here: the agent reads all of them from the passed socket.
  socket.pause();
  socket.once('connect', () => process.send({ id: m.id }, socket));
  socket.once('error', (e) => process.send({ id: m.id, code: String(e.code || 'EIO'), message: e.message }));
});
process.send({ ready: true });
`;

/** strerror(3) texts, as socat (and so cri-dockerd and the kubelet) word a failed connect. */
const strerror: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  EADDRNOTAVAIL: 'Cannot assign requested address',
};

/** An errno as strerror(3) words it (what socat prints), else Node's message. */
export function socketErrorText(error: { code?: string; message: string }): string {
  return strerror[error.code ?? ''] ?? error.message;
}

/** A connect() inside the namespace that failed; the message is the one socat prints, minus its prefix. */
export class DialError extends Error {
  constructor(
    readonly code: string,
    port: number,
    detail: string,
  ) {
    super(`connect(127.0.0.1:${port}): ${socketErrorText({ code, message: detail })}`);
    this.name = 'DialError';
  }
}

interface Pending {
  port: number;
  resolve(socket: Socket): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

interface Helper {
  key: string;
  child: ChildProcess;
  ready: boolean;
  pending: Map<number, Pending>;
  idle?: NodeJS.Timeout;
}

type HelperMessage = { ready: true } | { id: number; code?: string; message?: string };

interface NetnsDialerOptions {
  log: Logger;
  /** A helper without a connection this long exits (default 60 s). */
  idleMs?: number;
  /** Helpers running at once (default 16). */
  maxHelpers?: number;
  /** A connect() that takes longer fails (default 30 s). */
  dialTimeoutMs?: number;
}

export class NetnsDialer {
  private readonly helpers = new Map<string, Helper>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: NetnsDialerOptions) {}

  /**
   * A socket connected to 127.0.0.1:`port` in the namespace at `netnsPath`, or undefined when no
   * helper is ready for it yet (one is then started; the caller connects another way this time).
   */
  async dial(netnsPath: string, port: number): Promise<Socket | undefined> {
    if (this.closed) return undefined;
    const key = await namespaceKey(netnsPath);
    const helper = this.helpers.get(key);
    if (!helper) {
      if (this.helpers.size < (this.options.maxHelpers ?? 16)) this.start(key, netnsPath);
      return undefined;
    }
    if (!helper.ready) return undefined;
    return this.request(helper, port);
  }

  /** Stops every helper (their connections already handed over stay open). */
  close(): void {
    this.closed = true;
    for (const key of [...this.helpers.keys()]) this.stop(key, new Error('port-forward dialer closed'));
  }

  /** Helpers running (starting or ready). */
  get running(): number {
    return this.helpers.size;
  }

  /** Helpers ready to connect. */
  get ready(): number {
    return [...this.helpers.values()].filter((helper) => helper.ready).length;
  }

  private start(key: string, netnsPath: string): void {
    const child = spawn('nsenter', [`--net=${netnsPath}`, process.execPath, '--input-type=commonjs', '-e', helperSource], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const helper: Helper = { key, child, ready: false, pending: new Map() };
    this.helpers.set(key, helper);
    // Neither the helper nor its channel keeps the agent running; the helper exits when the channel closes.
    child.unref();
    child.channel?.unref();
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8');
    });
    child.on('message', (message: HelperMessage, handle?: Socket) => this.receive(helper, message, handle));
    child.once('error', (error) => {
      this.options.log.warn({ err: error, netns: netnsPath }, 'port-forward helper could not start; connections go through socat');
      this.stop(key, error);
    });
    child.once('exit', (code, signal) => {
      if (this.helpers.get(key) !== helper) return;
      if (!helper.ready) this.options.log.warn({ netns: netnsPath, code, signal, stderr: stderr.trim() }, 'port-forward helper exited before it was ready; connections go through socat');
      this.stop(key, new Error(`port-forward helper exited (${signal ?? code})`));
    });
    this.armIdle(helper);
  }

  private receive(helper: Helper, message: HelperMessage, handle: Socket | undefined): void {
    if ('ready' in message) {
      helper.ready = true;
      return;
    }
    const pending = helper.pending.get(message.id);
    if (!pending) {
      handle?.destroy();
      return;
    }
    helper.pending.delete(message.id);
    clearTimeout(pending.timer);
    if (handle) pending.resolve(handle);
    else pending.reject(new DialError(message.code ?? 'EIO', pending.port, message.message ?? 'connect failed'));
  }

  private request(helper: Helper, port: number): Promise<Socket> {
    const id = this.nextId++;
    this.armIdle(helper);
    return new Promise<Socket>((resolve, reject) => {
      const timer = setTimeout(() => {
        helper.pending.delete(id);
        reject(new DialError('ETIMEDOUT', port, 'Connection timed out'));
      }, this.options.dialTimeoutMs ?? 30_000);
      helper.pending.set(id, { port, resolve, reject, timer });
      helper.child.send({ id, port }, (error) => {
        if (!error) return;
        helper.pending.delete(id);
        clearTimeout(timer);
        reject(new Error('port-forward helper is gone', { cause: error }));
      });
    });
  }

  private armIdle(helper: Helper): void {
    clearTimeout(helper.idle);
    helper.idle = setTimeout(() => {
      if (helper.pending.size > 0) return this.armIdle(helper);
      this.stop(helper.key, new Error('port-forward helper idle'));
    }, this.options.idleMs ?? 60_000);
    helper.idle.unref();
  }

  private stop(key: string, reason: Error): void {
    const helper = this.helpers.get(key);
    if (!helper) return;
    this.helpers.delete(key);
    clearTimeout(helper.idle);
    for (const pending of helper.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(reason);
    }
    helper.pending.clear();
    if (helper.child.connected) helper.child.disconnect();
    helper.child.kill();
  }
}

/** The namespace's identity: its nsfs inode (stable while a helper inside keeps it alive). */
async function namespaceKey(netnsPath: string): Promise<string> {
  const info = await stat(netnsPath);
  return `${info.dev}:${info.ino}`;
}
