/**
 * The proxy's and the overlay's own credentials on a joined node: client certificates of signer
 * `kubernetes.io/kube-apiserver-client`, requested by the node itself (its system:node:<name>
 * certificate) for the identities the control plane approves for a node's components:
 * `system:kube-proxy` (the user kube-proxy's default binding names, system:node-proxier) and
 * `system:knode:overlay:<node>` (the overlay: reading nodes, patching its own Node's status).
 * Each is kept in the cert dir as `<name>-client-current.pem` (the kubelet's store layout) with
 * its kubeconfig. A pair is renewed by `knode join` when less than 30 % of its lifetime is
 * left; the running proxy and overlay do not renew it themselves.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { clientUsages, kubeCsrApi, requestCertificate, waitForCertificate } from '../agent/certificates/csr.js';
import { createCsr, generateKey } from '../agent/certificates/pki.js';
import { CertificateStore } from '../agent/certificates/store.js';
import { nodeKubeconfigText } from '../lib/config/node-kubeconfig.js';
import { writeFileAtomic } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';

const apiserverClientSigner = 'kubernetes.io/kube-apiserver-client';

interface ComponentCredential {
  prefix: 'kube-proxy-client' | 'overlay-client';
  commonName: string;
  kubeconfig: string;
}

/** Whether the pair has more than 30 % of its lifetime left. Pure. */
export function stillFresh(notBefore: Date, notAfter: Date, now: Date): boolean {
  const total = notAfter.getTime() - notBefore.getTime();
  return now < notAfter && notAfter.getTime() - now.getTime() > total * 0.3;
}

export async function ensureComponentCredential(params: { credential: ComponentCredential; certDir: string; server: string; caPem: string; nodeKubeConfig: KubeConfig; log: Logger }): Promise<'valid' | 'issued'> {
  const { credential, certDir, log } = params;
  const store = new CertificateStore(certDir, credential.prefix);
  const current = store.current();
  const write = () => writeFileAtomic(credential.kubeconfig, nodeKubeconfigText({ server: params.server, caPem: params.caPem, clientCertificate: store.currentPath, clientKey: store.currentPath }), { mode: 0o600, mkdir: true });
  if (current && current.info.subject.commonName === credential.commonName && stillFresh(current.info.notBefore, current.info.notAfter, new Date())) {
    write();
    return 'valid';
  }
  const api = kubeCsrApi(params.nodeKubeConfig, log);
  const key = await generateKey();
  const csrPem = await createCsr(key, { commonName: credential.commonName, organizations: [] });
  let certPem: string;
  try {
    const name = await requestCertificate(api, { csrPem, signerName: apiserverClientSigner, usages: clientUsages }, log);
    certPem = await waitForCertificate(api, name, 120_000);
  } catch (error) {
    throw new Error(`cannot get the ${credential.commonName} client certificate: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  store.update(certPem, key.keyPem);
  write();
  return 'issued';
}
