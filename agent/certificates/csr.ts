/**
 * Certificates through certificates.k8s.io/v1 CertificateSigningRequests, as client-go's
 * util/certificate/csr does: create the CSR (a fixed name is reused when it already exists and
 * asks for the same thing, else generateName "csr-"), then watch it until it is Approved and
 * carries status.certificate, or is Denied / Failed. The bootstrap name is kubelet's
 * digestedName: "node-csr-" + the SHA-512/256 of the public key, subject and usages, so a
 * restarted bootstrap finds its own earlier request instead of piling up new ones.
 */
import { createHash, createPublicKey } from 'node:crypto';
import type { KubeConfig, V1CertificateSigningRequest } from '@kubernetes/client-node';
import { CertificatesV1Api } from '../../lib/kube-client.js';
import { Informer } from '../../lib/informer.js';
import type { Logger } from '../../lib/log.js';
import { apiErrorCode } from '../status/manager.js';
import { csrIdentity, type Subject } from './pki.js';

export const clientSigner = 'kubernetes.io/kube-apiserver-client-kubelet';
export const servingSigner = 'kubernetes.io/kubelet-serving';
/** ECDSA keys: no key encipherment (kubelet certificate/kubelet.go getUsages). */
export const clientUsages = ['digital signature', 'client auth'];
export const servingUsages = ['digital signature', 'server auth'];

/** The narrow API this part needs (a fake beside it in the tests). */
export interface CsrApi {
  create(body: V1CertificateSigningRequest): Promise<V1CertificateSigningRequest>;
  read(name: string): Promise<V1CertificateSigningRequest>;
  /** Calls onChange with the CSR (undefined: not there) after the first list and every change. */
  watch(name: string, onChange: (csr: V1CertificateSigningRequest | undefined) => void): { stop(): void };
}

export function kubeCsrApi(kubeConfig: KubeConfig, log: Logger): CsrApi {
  const api = kubeConfig.makeApiClient(CertificatesV1Api);
  return {
    create: (body) => api.createCertificateSigningRequest({ body }),
    read: (name) => api.readCertificateSigningRequest({ name }),
    watch(name, onChange) {
      const fieldSelector = `metadata.name=${name}`;
      const informer = new Informer<V1CertificateSigningRequest>({
        kubeConfig,
        path: '/apis/certificates.k8s.io/v1/certificatesigningrequests',
        list: () => api.listCertificateSigningRequest({ fieldSelector }),
        fieldSelector,
        onItems: (items) => onChange(items.find((item) => item.metadata?.name === name)),
        what: `CertificateSigningRequest ${name}`,
        log,
      });
      informer.start().catch((error: unknown) => log.warn({ err: error, csr: name }, 'cannot watch the certificate signing request'));
      // stopping a watch that already ended has nothing left to report
      return { stop: () => void informer.stop().catch(() => undefined) };
    },
  };
}

/** kubelet bootstrap digestedName (pkg/kubelet/certificate/bootstrap/bootstrap.go). */
export function digestedName(keyPem: string, subject: Subject, usages: string[]): string {
  const hash = createHash('sha512-256');
  const write = (data: Buffer) => {
    hash.update(data.toString('base64url'));
    hash.update('|');
  };
  write(createPublicKey(keyPem).export({ type: 'spki', format: 'der' }));
  write(Buffer.from(subject.commonName));
  for (const org of subject.organizations) write(Buffer.from(org));
  for (const usage of usages) write(Buffer.from(usage));
  return `node-csr-${hash.digest('base64url')}`;
}

interface CertificateRequest {
  csrPem: string;
  signerName: string;
  usages: string[];
  /** Fixed name (bootstrap); otherwise generateName "csr-". */
  name?: string;
  expirationSeconds?: number;
}

/** Creates the CSR; returns its name. */
export async function requestCertificate(api: CsrApi, request: CertificateRequest, log: Logger): Promise<string> {
  const body: V1CertificateSigningRequest = {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: request.name ? { name: request.name } : { generateName: 'csr-' },
    spec: {
      request: Buffer.from(request.csrPem).toString('base64'),
      signerName: request.signerName,
      usages: request.usages,
      ...(request.expirationSeconds ? { expirationSeconds: request.expirationSeconds } : {}),
    },
  };
  try {
    const created = await api.create(body);
    return created.metadata!.name!;
  } catch (error) {
    if (apiErrorCode(error) !== 409 || !request.name) throw new Error(`cannot create certificate signing request: ${describe(error)}`, { cause: error });
  }
  log.info({ csr: request.name }, 'csr for this node already exists, reusing');
  const existing = await api.read(request.name).catch((error: unknown) => {
    throw new Error(`cannot retrieve certificate signing request: ${describe(error)}`, { cause: error });
  });
  // ensureCompatible: the same public key and subject (ECDSA signatures differ run to run), signer and usages.
  let same = false;
  try {
    const a = csrIdentity(Buffer.from(existing.spec.request, 'base64').toString('utf8'));
    const b = csrIdentity(request.csrPem);
    same = a.publicKey === b.publicKey && a.subject === b.subject;
  } catch {
    // an unparsable request on the server is not ours: a new CSR is made
    same = false;
  }
  if (!same || existing.spec.signerName !== request.signerName || JSON.stringify(existing.spec.usages ?? []) !== JSON.stringify(request.usages)) {
    throw new Error(`retrieved csr ${request.name} is not compatible with this request`);
  }
  return request.name;
}

function describe(error: unknown): string {
  const code = apiErrorCode(error);
  const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
  return code ? `HTTP ${code}: ${message}` : message;
}

/** The decision a CSR's state means for a waiting requester (pure). */
export function csrOutcome(csr: V1CertificateSigningRequest | undefined): { certificate: string } | { error: string } | undefined {
  if (!csr) return undefined;
  const conditions = csr.status?.conditions ?? [];
  const denied = conditions.find((c) => c.type === 'Denied' && c.status !== 'False');
  if (denied) return { error: `certificate signing request ${csr.metadata?.name} is denied, reason: ${denied.reason ?? ''}, message: ${denied.message ?? ''}` };
  const failed = conditions.find((c) => c.type === 'Failed' && c.status !== 'False');
  if (failed) return { error: `certificate signing request ${csr.metadata?.name} failed, reason: ${failed.reason ?? ''}, message: ${failed.message ?? ''}` };
  const approved = conditions.some((c) => c.type === 'Approved' && c.status !== 'False');
  const certificate = csr.status?.certificate;
  if (approved && certificate) return { certificate: Buffer.from(certificate, 'base64').toString('utf8') };
  return undefined;
}

/** Waits (watch) until the CSR is issued; rejects when it is denied, failed, or after timeoutMs. */
export function waitForCertificate(api: CsrApi, name: string, timeoutMs: number, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (outcome: { certificate: string } | { error: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      watch.stop();
      if ('certificate' in outcome) resolve(outcome.certificate);
      else reject(new Error(outcome.error));
    };
    const onAbort = () => finish({ error: `stopped while waiting for certificate signing request ${name}` });
    const timer = setTimeout(() => finish({ error: `timed out after ${Math.round(timeoutMs / 1000)} s waiting for certificate signing request ${name} to be approved and signed` }), timeoutMs);
    signal?.addEventListener('abort', onAbort);
    const watch = api.watch(name, (csr) => {
      const outcome = csrOutcome(csr);
      if (outcome) finish(outcome);
    });
    if (signal?.aborted) onAbort();
  });
}
