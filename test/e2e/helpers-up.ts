/**
 * Running the built `knode up` inside a test node netns, as an operator runs it in the
 * foreground (the same approach as up.test.ts): started with `nsenter --net` rather than
 * `ip netns exec`, because the latter remounts /sys for the netns, which hides /sys/fs/cgroup
 * from the agent (pod cgroups, eviction stats); the network is the same.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../helpers/wait.js';

/** The executable an operator runs (it loads dist/, so `npm run build` first). */
export const knodeBin = fileURLToPath(new URL('../../bin/knode', import.meta.url));

export interface RunningUp {
  child: ChildProcess;
  /** stdout, then the tail of stderr (JSON logs). */
  output: () => string;
  exit: Promise<number | null>;
}

export interface UpOptions {
  /** Path of the node's netns (/var/run/netns/NAME). */
  netnsPath: string;
  dataDir: string;
  iface: string;
  nodeName: string;
  /** KNODE_RUNTIME_SCOPE: the label on every container, for cleanup. */
  scope: string;
}

export function startKnodeUp(options: UpOptions): RunningUp {
  const args = ['up', '--data-dir', options.dataDir, '--iface', options.iface, '--hostname-override', options.nodeName];
  const child = spawn('nsenter', [`--net=${options.netnsPath}`, process.execPath, knodeBin, ...args], {
    env: { ...process.env, KNODE_RUNTIME_SCOPE: options.scope, KNODE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

/** Resolves once `knode up` printed its summary; rejects with its output if it exits first. */
export async function waitKnodeUp(up: RunningUp, timeoutMs = 150_000): Promise<void> {
  let exited = false;
  void up.exit.then(() => (exited = true));
  await waitFor('knode up to finish starting', () => {
    if (exited) throw new Error(`knode up exited:\n${up.output()}`);
    return up.output().includes('knode is up.') ? true : undefined;
  }, timeoutMs, 250).catch((error: unknown) => {
    throw new Error(`${String(error)}\n--- output:\n${up.output()}`, { cause: error });
  });
}

/** SIGTERM (as Ctrl-C), SIGKILL after 90 s; resolves with the exit code. */
export async function stopKnodeUp(up: RunningUp): Promise<number | null> {
  if (up.child.exitCode !== null || up.child.signalCode !== null) return up.exit;
  up.child.kill('SIGTERM');
  const timer = setTimeout(() => up.child.kill('SIGKILL'), 90_000);
  const code = await up.exit;
  clearTimeout(timer);
  return code;
}

/**
 * SIGKILLs the children a killed `knode up` left (its pid file in the data dir lists them), each
 * only if its command line still names the data dir (pids get reused).
 */
export function killUpLeftovers(dataDir: string): void {
  try {
    const pids = JSON.parse(readFileSync(join(dataDir, 'knode-up.pid'), 'utf8')) as { children: { pid?: number }[] };
    for (const { pid } of pids.children) {
      if (!pid) continue;
      try {
        if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dataDir)) continue;
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  } catch {
    /* no pid file: nothing left */
  }
}
