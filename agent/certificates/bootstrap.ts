/**
 * Kubelet TLS bootstrapping (pkg/kubelet/certificate/bootstrap LoadClientCert; docs
 * "TLS bootstrapping"): when --kubeconfig is missing or its client certificate is unreadable or
 * expired, the agent uses --bootstrap-kubeconfig (a bootstrap token) to request a client
 * certificate (CN system:node:<name>, O system:nodes, signer kube-apiserver-client-kubelet),
 * waits for it to be approved and signed, stores it in --cert-dir as kubelet-client-current.pem
 * and writes --kubeconfig pointing at that file. The private key is kept in
 * kubelet-client.key.tmp until the certificate arrives, so a restart reuses the same request.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fs.js';
import { loadKubeconfig } from '../../lib/config/kubeconfig.js';
import { clusterOf, nodeKubeconfigText } from '../../lib/config/node-kubeconfig.js';
import type { Logger } from '../../lib/log.js';
import { apiErrorCode } from '../status/manager.js';
import { clientSigner, clientUsages, digestedName, kubeCsrApi, requestCertificate, waitForCertificate, type CsrApi } from './csr.js';
import { createCsr, generateKey, importKey, type KeyPair } from './pki.js';
import { CertificateStore, parsePair } from './store.js';

export const tmpPrivateKeyFile = 'kubelet-client.key.tmp';

export function nodeSubject(nodeName: string): { commonName: string; organizations: string[] } {
  return { commonName: `system:node:${nodeName}`, organizations: ['system:nodes'] };
}

/**
 * isClientConfigStillValid: the kubeconfig exists and its client certificate(s) can be read and
 * have not expired. A kubeconfig without a client certificate is not valid for a bootstrapping
 * kubelet (client-go: "unable to read certificates").
 */
export function clientConfigStillValid(file: string, now: Date, log: Logger): boolean {
  if (!existsSync(file)) return false;
  try {
    const cluster = clusterOf(file);
    const certText = cluster.certData ?? (cluster.certFile ? readFileSync(cluster.certFile, 'utf8') : '');
    const keyText = cluster.keyData ?? (cluster.keyFile ? readFileSync(cluster.keyFile, 'utf8') : '');
    const pair = parsePair(certText, keyText);
    if (!pair) {
      log.warn({ kubeconfig: file }, 'the kubeconfig has no readable client certificate and key; bootstrapping a new one');
      return false;
    }
    if (now > pair.info.notAfter || now < pair.info.notBefore) {
      log.warn({ kubeconfig: file, notBefore: pair.info.notBefore, notAfter: pair.info.notAfter }, 'the kubeconfig\'s client certificate is expired or not yet valid; bootstrapping a new one');
      return false;
    }
    return true;
  } catch (error) {
    log.warn({ kubeconfig: file, err: error }, 'the kubeconfig cannot be read; bootstrapping a new one');
    return false;
  }
}

interface BootstrapOptions {
  kubeconfig: string;
  bootstrapKubeconfig: string;
  certDir: string;
  nodeName: string;
  log: Logger;
  /** How long to wait for approval (kubelet: 1 h). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** The CSR API (tests); default: the bootstrap kubeconfig's API server. */
  api?: CsrApi;
  /** spec.expirationSeconds of the request (short-lived certificates for rotation tests). */
  expirationSeconds?: number;
}

/**
 * The key to request with: the cached temporary key, else a new one (cached). Unlike the kubelet,
 * the key of an expired stored pair is not reused: its digested CSR name would find the old,
 * already issued (expired) certificate again.
 */
async function bootstrapKey(certDir: string): Promise<KeyPair> {
  const tmp = join(certDir, tmpPrivateKeyFile);
  if (existsSync(tmp)) {
    try {
      return await importKey(readFileSync(tmp, 'utf8'));
    } catch {
      // An unreadable cached key is replaced (kubelet LoadOrGenerateKeyFile then verifyKeyData).
    }
  }
  const key = await generateKey();
  writeFileAtomic(tmp, key.keyPem, { mode: 0o600, mkdir: true });
  return key;
}

function rejectedCredential(file: string, error: unknown): Error {
  const code = apiErrorCode(error) ?? apiErrorCode((error as Error | undefined)?.cause);
  if (code === 401) return new ConfigError(`bootstrap kubeconfig "${file}": the API server rejected its credential (HTTP 401 Unauthorized): the bootstrap token is unknown, expired or malformed`, { cause: error });
  if (code === 403) return new ConfigError(`bootstrap kubeconfig "${file}": its credential may not create certificate signing requests (HTTP 403 Forbidden): a bootstrap token needs the usage "authentication" and the group system:bootstrappers`, { cause: error });
  return new Error(`bootstrap with "${file}" failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

/** Makes sure `kubeconfig` holds a valid client certificate, bootstrapping one when needed. */
export async function loadClientCert(options: BootstrapOptions): Promise<'valid' | 'bootstrapped'> {
  const { kubeconfig, bootstrapKubeconfig, certDir, nodeName, log } = options;
  if (clientConfigStillValid(kubeconfig, new Date(), log)) {
    log.info({ kubeconfig }, 'kubeconfig exists and is valid, skipping bootstrap');
    return 'valid';
  }
  if (!existsSync(bootstrapKubeconfig)) throw new ConfigError(`--bootstrap-kubeconfig "${bootstrapKubeconfig}" does not exist, and --kubeconfig "${kubeconfig}" has no valid client certificate`);
  const bootstrap = clusterOf(bootstrapKubeconfig); // a clear ConfigError for a broken file
  if (!bootstrap.caPem && bootstrap.server.startsWith('https://')) log.warn({ bootstrapKubeconfig }, 'the bootstrap kubeconfig has no CA: the server certificate is checked against the system CAs');
  const api = options.api ?? kubeCsrApi(await loadKubeconfig(bootstrapKubeconfig, log), log);
  const store = new CertificateStore(certDir, 'kubelet-client');
  const key = await bootstrapKey(certDir);
  const subject = nodeSubject(nodeName);
  const csrPem = await createCsr(key, subject);
  const name = digestedName(key.keyPem, subject, clientUsages);
  log.info({ csr: name, bootstrapKubeconfig }, 'using the bootstrap kubeconfig to request a client certificate');
  let certPem: string;
  try {
    await requestCertificate(api, { csrPem, signerName: clientSigner, usages: clientUsages, name, ...(options.expirationSeconds ? { expirationSeconds: options.expirationSeconds } : {}) }, log);
    log.info({ csr: name }, 'waiting for the client certificate to be issued');
    certPem = await waitForCertificate(api, name, options.timeoutMs ?? 3600_000, options.signal);
  } catch (error) {
    throw rejectedCredential(bootstrapKubeconfig, error);
  }
  const pair = store.update(certPem, key.keyPem);
  rmSync(join(certDir, tmpPrivateKeyFile), { force: true });
  const text = nodeKubeconfigText({ server: bootstrap.server, ...(bootstrap.caPem ? { caPem: bootstrap.caPem } : {}), clientCertificate: store.currentPath, clientKey: store.currentPath });
  writeFileAtomic(kubeconfig, text, { mode: 0o600, mkdir: true });
  log.info({ kubeconfig, certificate: store.currentPath, notAfter: pair.info.notAfter.toISOString() }, 'client certificate issued; kubeconfig written');
  return 'bootstrapped';
}
