/**
 * Pre-started shells that each enter one pod netns and run `ip -batch -` there. Forking a large
 * Node process costs ~9 ms under load (measured); the daemon pays it ahead of time instead of on
 * the ADD path. A warm shell reads the netns path from its first stdin line, then exec()s
 * `ip -n NAME` (netns under /run/netns) or `nsenter --net=PATH ip`, which reads the rest of
 * stdin. Each shell is used once and replaced in the background.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { ExecResult } from '../exec.js';

const script = 'read -r ns; case "$ns" in /run/netns/*|/var/run/netns/*) exec ip -n "${ns##*/}" -batch - ;; *) exec nsenter --net="$ns" ip -batch - ;; esac';

export class NetnsIpPool {
  private readonly idle: ChildProcess[] = [];
  private closed = false;

  constructor(private readonly size = 4) {}

  fill(): void {
    while (!this.closed && this.idle.length < this.size) {
      const child = spawn('sh', ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
      child.on('error', () => this.drop(child));
      child.once('exit', () => this.drop(child));
      child.stdin!.on('error', () => undefined);
      this.idle.push(child);
    }
  }

  /** Runs the lines in the netns; falls back to a fresh process when no warm shell is ready. */
  run(netns: string, lines: string[]): Promise<ExecResult> {
    if (netns.includes('\n')) return Promise.reject(new Error(`invalid netns path ${JSON.stringify(netns)}`));
    const child = this.idle.shift() ?? spawn('sh', ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.removeAllListeners('exit');
    // spawn() forks synchronously: refill once this ADD is likely answered, not during it.
    setTimeout(() => this.fill(), 30).unref();
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code: code ?? (signal ? 128 : 1) });
      });
      child.stdin!.end(`${netns}\n${lines.join('\n')}\n`);
    });
  }

  close(): void {
    this.closed = true;
    for (const child of this.idle.splice(0)) child.kill();
  }

  private drop(child: ChildProcess): void {
    const index = this.idle.indexOf(child);
    if (index >= 0) this.idle.splice(index, 1);
  }
}
