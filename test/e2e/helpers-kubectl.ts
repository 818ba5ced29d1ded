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
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
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

export interface PortForward {
  /** The local 127.0.0.1 port kubectl listens on for each remote port, in order. */
  ports: number[];
  stderr(): string;
  stop(): void;
}

/**
 * `kubectl port-forward pod/<pod> :<remote>...` on 127.0.0.1 with free local ports; resolves
 * once kubectl has printed "Forwarding from 127.0.0.1:<local> -> <remote>" for every port.
 */
export async function startPortForward(kubeconfig: string, pod: string, remotePorts: string[], env: NodeJS.ProcessEnv): Promise<PortForward> {
  const child = spawn('kubectl', ['--kubeconfig', kubeconfig, '-n', 'default', 'port-forward', '--address', '127.0.0.1', `pod/${pod}`, ...remotePorts.map((p) => `:${p}`)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-maxOutput)));
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    const ports = await waitFor(
      'kubectl port-forward listening',
      () => {
        if (child.exitCode !== null) throw new Error(`kubectl port-forward exited ${child.exitCode}: ${stderr}`);
        const found = remotePorts.map((remote) => new RegExp(`Forwarding from 127\\.0\\.0\\.1:(\\d+) -> ${remote}\\b`).exec(stdout)?.[1]);
        return found.every(Boolean) ? found.map(Number) : undefined;
      },
      30_000,
      50,
    );
    return { ports, stderr: () => stderr, stop };
  } catch (error) {
    stop();
    throw new Error(`${String(error)}\nstdout: ${stdout}\nstderr: ${stderr}`);
  }
}

/** GET http://127.0.0.1:<port><path>, the whole body (loopback only). */
export function httpGet(port: number, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET 127.0.0.1:${port}${path}: no answer in 30 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Sends `data` to 127.0.0.1:<port>, half-closes, and resolves when the peer closes too. */
export function tcpUpload(port: number, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.end(data));
    socket.setTimeout(30_000, () => socket.destroy(new Error(`upload to 127.0.0.1:${port}: no close in 30 s`)));
    socket.resume();
    socket.on('error', reject);
    socket.on('close', (hadError) => (hadError ? undefined : resolve()));
  });
}
