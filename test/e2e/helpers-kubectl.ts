/**
 * Pieces for driving a node through kubectl with kube-apiserver-like kubelet security:
 * - `makeKubeletPki(dir)`: a CA (openssl), the kubelet's serving certificate for 127.0.0.1
 *   signed by it, and a client certificate for the control plane
 *   (CN kube-apiserver-kubelet-client, O system:masters, as kubeadm names it);
 * - `startControlPlaneProcess(...)`: the built `knode controlplane` CLI on a free 127.0.0.1
 *   port with extra flags, its admin kubeconfig once it is ready;
 * - `KnodeProcess`: a child process with its output kept and a stop() that never throws.
 * Everything listens on and dials the root namespace's loopback only (network safety rule).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../lib/exec.js';
import { waitFor } from '../helpers/wait.js';

export const knodeBin = fileURLToPath(new URL('../../bin/knode', import.meta.url));

export interface KubeletPki {
  caFile: string;
  servingCertFile: string;
  servingKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  ca: string;
  clientCert: string;
  clientKey: string;
}

async function signed(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, extensions);
  await run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', subject]);
  await run(['openssl', 'x509', '-req', '-in', csr, '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, `${name}.crt`), '-days', '2', '-extfile', ext]);
}

export async function makeKubeletPki(dir: string): Promise<KubeletPki> {
  await run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '2', '-subj', '/CN=knode-test-kubelet-ca']);
  await signed(dir, 'kubelet', '/CN=knode-test-kubelet', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await signed(dir, 'client', '/O=system:masters/CN=kube-apiserver-kubelet-client', 'extendedKeyUsage=clientAuth\n');
  const pki = {
    caFile: join(dir, 'ca.crt'),
    servingCertFile: join(dir, 'kubelet.crt'),
    servingKeyFile: join(dir, 'kubelet.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
  };
  return { ...pki, ca: await readFile(pki.caFile, 'utf8'), clientCert: await readFile(pki.clientCertFile, 'utf8'), clientKey: await readFile(pki.clientKeyFile, 'utf8') };
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
