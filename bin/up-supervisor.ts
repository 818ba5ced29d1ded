/**
 * `knode up`'s children: each component is this same `knode` executable run with its own
 * subcommand, its output appended to DATA_DIR/logs/<component>.log. A child runs in its own
 * process group, so a terminal's Ctrl-C reaches only `up`, which then stops the children one by
 * one in reverse start order (as systemd stops units that were ordered with After=).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The command that runs this CLI again: node + the script it was started with. */
function selfCommand(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1]!];
}

/** The last `count` lines of a log file (empty when it cannot be read). */
function lastLines(file: string, count = 15): string {
  try {
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    return lines.slice(-count).join('\n');
  } catch {
    return '';
  }
}

export class ComponentError extends Error {
  constructor(readonly component: string, message: string, options?: { cause?: unknown }) {
    super(`${component}: ${message}`, options);
    this.name = 'ComponentError';
  }
}

export class Child {
  private process?: ChildProcess;
  readonly logFile: string;
  /** Resolves with the exit description when the process ends (for any reason). */
  exited: Promise<string> = new Promise(() => undefined);
  private stopping = false;

  constructor(
    readonly component: string,
    private readonly args: string[],
    logsDir: string,
    private readonly env: NodeJS.ProcessEnv = {},
  ) {
    this.logFile = join(logsDir, `${component}.log`);
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  get running(): boolean {
    return Boolean(this.process && this.process.exitCode === null && this.process.signalCode === null);
  }

  get expectedExit(): boolean {
    return this.stopping;
  }

  start(): void {
    const fd = openSync(this.logFile, 'a');
    const [command, ...prefix] = selfCommand();
    const child = spawn(command!, [...prefix, ...this.args], {
      stdio: ['ignore', fd, fd],
      detached: true,
      env: { ...process.env, ...this.env },
    });
    closeSync(fd);
    this.process = child;
    this.exited = new Promise((resolve) => {
      child.once('error', (error) => resolve(`could not start: ${error.message}`));
      child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exited with code ${code}`));
    });
  }

  /** An error for a child that ended on its own: its exit and the last lines of its log. */
  async failure(): Promise<ComponentError> {
    const how = await this.exited;
    const tail = lastLines(this.logFile);
    return new ComponentError(this.component, `${how} (log ${this.logFile})${tail ? `; last lines:\n${tail}` : ''}`);
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Resolves when the process is gone. */
  async stop(graceMs = 20_000): Promise<void> {
    this.stopping = true;
    const child = this.process;
    if (!child || !this.running) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Waits until `probe` resolves true, polling every 250 ms; fails with the child's exit and log
 * tail when the child ends first, or after `timeoutMs` with the last probe error.
 */
export async function waitReady(child: Child, what: string, probe: () => Promise<boolean>, timeoutMs: number, aborted: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let ended = false;
  void child.exited.then(() => (ended = true));
  let last = '';
  for (;;) {
    if (aborted()) throw new ComponentError(child.component, 'interrupted while starting');
    if (ended) throw await child.failure();
    try {
      if (await probe()) return;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      const tail = lastLines(child.logFile);
      throw new ComponentError(child.component, `not ${what} after ${Math.round(timeoutMs / 1000)} s${last ? ` (${last})` : ''} (log ${child.logFile})${tail ? `; last lines:\n${tail}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
