/**
 * The certificates between a control plane and its kubelets, named as kubeadm names them
 * (https://kubernetes.io/docs/setup/best-practices/certificates/): a CA, the kubelet's serving
 * certificate signed by it, and the client certificate the API server presents to kubelets
 * (CN kube-apiserver-kubelet-client, O system:masters). The kubelet trusts that client through
 * `authentication.x509.clientCAFile` = the CA; the API server uses it through
 * `--kubelet-client-certificate/--kubelet-client-key`. Made with openssl; kept when present.
 * With `caDir`, the CA is the cluster CA kept there (a control plane's DATA_DIR/pki, which then
 * signs its serving certificate and CSRs with it too: one CA, as kubeadm has); `dir` gets a copy
 * of its certificate, and certificates of an earlier, different CA are made again.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';

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

interface KubeletPkiOptions {
  /** subjectAltName entries of the serving certificate, e.g. ["IP:127.0.0.1", "DNS:node1"]. */
  servingNames: string[];
  days?: number;
  /** Where the CA (ca.crt, ca.key) lives, when not in `dir`. */
  caDir?: string;
}

const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: string[]): Promise<void> {
  try {
    await run(['openssl', ...args], { timeoutMs: 30_000 });
  } catch (error) {
    throw new Error(`openssl ${args[0]} failed (is openssl installed?)`, { cause: error });
  }
}

async function signed(dir: string, caDir: string, name: string, subject: string, extensions: string, days: number): Promise<void> {
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, extensions);
  await openssl(['req', '-new', ...newKey, '-keyout', join(dir, `${name}.key`), '-out', csr, '-subj', subject]);
  await openssl(['x509', '-req', '-in', csr, '-CA', join(caDir, 'ca.crt'), '-CAkey', join(caDir, 'ca.key'), '-CAcreateserial', '-CAserial', join(dir, 'ca.srl'), '-out', join(dir, `${name}.crt`), '-days', String(days), '-extfile', ext]);
  await rm(csr, { force: true });
  await rm(ext, { force: true });
}

/** Creates the files in `dir` that are missing (an existing CA keeps its kubelets trusted across restarts). */
export async function ensureKubeletPki(dir: string, options: KubeletPkiOptions): Promise<KubeletPki> {
  const days = options.days ?? 3650;
  const caDir = options.caDir ?? dir;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await mkdir(caDir, { recursive: true, mode: 0o700 });
  let caFresh = !existsSync(join(caDir, 'ca.crt')) || !existsSync(join(caDir, 'ca.key'));
  if (caFresh) await openssl(['req', '-x509', ...newKey, '-keyout', join(caDir, 'ca.key'), '-out', join(caDir, 'ca.crt'), '-days', String(days), '-subj', '/CN=knode-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature']);
  if (caDir !== dir) {
    const caPem = await readFile(join(caDir, 'ca.crt'), 'utf8');
    const copy = existsSync(join(dir, 'ca.crt')) ? await readFile(join(dir, 'ca.crt'), 'utf8') : '';
    if (copy !== caPem) {
      caFresh = true;
      await writeFile(join(dir, 'ca.crt'), caPem);
    }
  }
  if (caFresh || !existsSync(join(dir, 'kubelet.crt'))) {
    await signed(dir, caDir, 'kubelet', '/CN=knode-kubelet', `subjectAltName=${options.servingNames.join(',')}\nextendedKeyUsage=serverAuth\n`, days);
  }
  if (caFresh || !existsSync(join(dir, 'client.crt'))) {
    await signed(dir, caDir, 'client', '/O=system:masters/CN=kube-apiserver-kubelet-client', 'extendedKeyUsage=clientAuth\n', days);
  }
  const files = {
    caFile: join(dir, 'ca.crt'),
    servingCertFile: join(dir, 'kubelet.crt'),
    servingKeyFile: join(dir, 'kubelet.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
  };
  return { ...files, ca: await readFile(files.caFile, 'utf8'), clientCert: await readFile(files.clientCertFile, 'utf8'), clientKey: await readFile(files.clientKeyFile, 'utf8') };
}
