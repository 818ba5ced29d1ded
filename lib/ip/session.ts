/**
 * A long-lived `ip -force -batch -` in the daemon's own netns, so the host side of an ADD costs
 * no process start (~9 ms each from a busy Node process, measured). Requests are serialised; each
 * is followed by a marker line (`link show dev kmk<N>`, a device that never exists) whose error
 * on stderr — unbuffered, unlike stdout — says the request is done. With -force, ip reports each
 * failing line as "Command failed -:<line>"; those are mapped back to the request's own lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { ExecResult } from '../exec.js';

export class IpBatchSession {
  private child?: ChildProcess;
  private line = 0;
  private marker = 0;
  private stderr = '';
  private queue: Promise<unknown> = Promise.resolve();
  private waiter?: { markerLine: number; firstLine: number; resolve: (result: ExecResult) => void; reject: (error: Error) => void };

  /** Runs the lines; resolves like `ip -force -batch -` would, with line numbers relative to `lines`. */
  run(lines: string[]): Promise<ExecResult> {
    const next = this.queue.then(() => this.send(lines));
    // The failure reaches the caller through `next`; the queue itself goes on.
    this.queue = next.catch(() => undefined);
    return next;
  }

  close(): void {
    this.child?.stdin?.end();
    this.child?.kill();
    this.child = undefined;
  }

  private start(): ChildProcess {
    const child = spawn('ip', ['-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    this.line = 0;
    this.stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
      this.check();
    });
    child.stdin!.on('error', () => undefined);
    child.once('exit', (code) => {
      if (this.child === child) this.child = undefined;
      this.waiter?.reject(new Error(`ip -batch session exited with ${code}`));
      this.waiter = undefined;
    });
    child.once('error', (error) => this.waiter?.reject(error));
    this.child = child;
    return child;
  }

  private send(lines: string[]): Promise<ExecResult> {
    const child = this.child ?? this.start();
    return new Promise((resolve, reject) => {
      const firstLine = this.line + 1;
      this.line += lines.length + 1;
      this.marker += 1;
      const timer = setTimeout(() => {
        this.close();
        reject(new Error('ip -batch session timed out'));
      }, 20_000);
      this.waiter = {
        markerLine: this.line,
        firstLine,
        resolve: (result) => {
          clearTimeout(timer);
          resolve(result);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      child.stdin!.write(`${lines.join('\n')}\nlink show dev kmk${this.marker}\n`);
    });
  }

  private check(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    const done = `Command failed -:${waiter.markerLine}\n`;
    const end = this.stderr.indexOf(done);
    if (end < 0) return;
    const output = this.stderr.slice(0, end);
    this.stderr = this.stderr.slice(end + done.length);
    this.waiter = undefined;
    const relative = output
      .split('\n')
      .filter((text) => text && !/^Device "kmk\d+" does not exist\.$/.test(text))
      .map((text) => text.replace(/Command failed -:(\d+)/, (_m, n: string) => `Command failed -:${Number(n) - waiter.firstLine + 1}`))
      .join('\n');
    const failed = /Command failed -:/.test(relative);
    waiter.resolve({ stdout: '', stderr: relative ? `${relative}\n` : '', code: failed ? 1 : 0 });
  }
}
