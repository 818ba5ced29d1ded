/**
 * Pieces for driving a node through kubectl with kube-apiserver-like kubelet security:
 * - `makeKubeletPki(dir)`: lib/kubelet-pki.ts for a kubelet on 127.0.0.1;
 * - `startControlPlaneProcess(...)`: the built `knode controlplane` CLI on a free 127.0.0.1
 *   port with extra flags, its admin kubeconfig once it is ready;
 * - `KnodeProcess`: a child process with its output kept and a stop() that never throws.
 * Everything listens on and dials the root namespace's loopback only (network safety rule).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureKubeletPki, type KubeletPki } from '../../lib/kubelet-pki.js';
import { waitFor } from '../helpers/wait.js';

export type { KubeletPki };

export const knodeBin = fileURLToPath(new URL('../../bin/knode', import.meta.url));

/** The kubelet PKI for 127.0.0.1 in `dir` (a fresh temp dir per test). */
export function makeKubeletPki(dir: string): Promise<KubeletPki> {
  return ensureKubeletPki(dir, { servingNames: ['IP:127.0.0.1'], days: 2 });
}

const maxOutput = 300_000;

export class KnodeProcess {
  private output = '';
  readonly child: ChildProcess;

  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(knodeBin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-maxOutput));
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.child.once('error', (error) => (this.output += `\n[spawn error] ${error.message}\n`));
  }

  logs(): string {
    return this.output;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private exited(timeoutMs: number): Promise<boolean> {
    if (!this.running) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** SIGTERM, then SIGKILL after 15 s. Never throws. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    if (!(await this.exited(15_000))) {
      this.child.kill('SIGKILL');
      await this.exited(5_000);
    }
  }
}

/** `knode controlplane` on 127.0.0.1 (free port), memory store; resolves with its kubeconfig path. */
export async function startControlPlaneProcess(dataDir: string, extraArgs: string[]): Promise<{ process: KnodeProcess; kubeconfigPath: string }> {
  const proc = new KnodeProcess(['controlplane', '--listen', '127.0.0.1:0', '--store', 'memory', '--data-dir', dataDir, ...extraArgs], { ...process.env, KNODE_LOG_LEVEL: 'info' });
  const kubeconfigPath = join(dataDir, 'admin.kubeconfig');
  try {
    await waitFor('control plane admin.kubeconfig', () => existsSync(kubeconfigPath) || (!proc.running && Promise.reject(new Error(`knode controlplane exited: ${proc.logs()}`))), 60_000, 100);
  } catch (error) {
    await proc.stop();
    throw error;
  }
  return { process: proc, kubeconfigPath };
}
