/**
 * What kube-controller-manager's csrapproving and csrsigning controllers decide, as pure
 * functions (https://kubernetes.io/docs/reference/access-authn-authz/kubelet-tls-bootstrapping/,
 * pkg/controller/certificates/approver/sarapprove.go, pkg/apis/certificates/v1 helpers
 * IsKubeletClientCSR / IsKubeletServingCSR):
 * - a kubelet client CSR (signer kube-apiserver-client-kubelet, O = [system:nodes],
 *   CN = system:node:<n>, no SANs, usages client auth [+ digital signature, key encipherment])
 *   is approved when a bootstrap token asked for it (group system:bootstrappers: kubeadm's
 *   nodeclient binding) or when the node renews its own (requestor = CN: selfnodeclient);
 * - a kubelet serving CSR (signer kubelet-serving, O = [system:nodes], CN = system:node:<n>,
 *   DNS/IP SANs only, usages server auth [+ digital signature, key encipherment]) is approved
 *   only when the node itself asks and every SAN is one of the addresses/hostname of its Node
 *   object (kube-controller-manager leaves all serving CSRs to an operator; knode approves the
 *   provably-own ones so that `knode join` needs no manual step). Anything else waits for
 *   `kubectl certificate approve`;
 * - a client CSR of signer kube-apiserver-client (signed as kube-controller-manager signs it,
 *   approved by an operator upstream) is auto-approved only when a node asks for one of its
 *   components' identities: CN=system:kube-proxy (the default system:node-proxier binding's
 *   user) or CN=system:knode:overlay:<that node>, no organization, no SANs — both can do less
 *   than the node's own credential (controlplane/auth/authz.ts);
 * - a CSR for another node's name is never approved.
 */
import type { CsrNames } from '../auth/csr.js';
import { apiserverClientSigner, kubeletClientSigner, kubeletServingSigner } from '../kinds-csr.js';
import { kubeProxyUser, nodeOverlayPrefix } from '../auth/authz.js';

export interface CsrFacts extends CsrNames {
  signerName: string;
  username: string;
  groups: string[];
  usages: string[];
}

const clientUsages = ['client auth', 'digital signature', 'key encipherment'];
const servingUsages = ['server auth', 'digital signature', 'key encipherment'];

function usagesOk(usages: string[], required: string, allowed: string[]): boolean {
  return usages.includes(required) && usages.every((u) => allowed.includes(u));
}

/** Why this is not a well-formed kubelet client CSR; undefined when it is (ValidateKubeletClientCSR). */
function kubeletClientProblem(csr: CsrFacts): string | undefined {
  if (csr.organizations.length !== 1 || csr.organizations[0] !== 'system:nodes') return 'subject organization is not system:nodes';
  if (!csr.commonName.startsWith('system:node:') || csr.commonName === 'system:node:') return 'subject common name does not begin with system:node:';
  if (csr.dnsNames.length + csr.ipAddresses.length + csr.emailAddresses.length + csr.uris.length > 0) return 'subject alternative names are not allowed';
  if (!usagesOk(csr.usages, 'client auth', clientUsages)) return `usages did not match ${clientUsages.join(', ')}`;
  return undefined;
}

/** Why this is not a well-formed kubelet serving CSR (IsKubeletServingCSR); undefined when it is. */
function kubeletServingProblem(csr: CsrFacts): string | undefined {
  if (csr.organizations.length !== 1 || csr.organizations[0] !== 'system:nodes') return 'subject organization is not system:nodes';
  if (!csr.commonName.startsWith('system:node:') || csr.commonName === 'system:node:') return 'subject common name does not begin with system:node:';
  if (csr.emailAddresses.length + csr.uris.length > 0) return 'email addresses and URIs are not allowed';
  if (csr.dnsNames.length + csr.ipAddresses.length === 0) return 'at least one DNS or IP subject alternative name is required';
  if (!usagesOk(csr.usages, 'server auth', servingUsages)) return `usages did not match ${servingUsages.join(', ')}`;
  return undefined;
}

/** Why this is not a client certificate request kube-apiserver-client signs (usages); undefined when it is. */
function apiserverClientProblem(csr: CsrFacts): string | undefined {
  if (!usagesOk(csr.usages, 'client auth', clientUsages)) return `usages did not match ${clientUsages.join(', ')}`;
  if (csr.commonName === '') return 'subject common name is empty';
  return undefined;
}

function componentDecision(csr: CsrFacts): ApprovalDecision {
  const problem = apiserverClientProblem(csr);
  if (problem) return { approve: false, why: problem };
  const node = csr.groups.includes('system:nodes') && csr.username.startsWith('system:node:') ? csr.username.slice('system:node:'.length) : undefined;
  if (node === undefined) return { approve: false, why: `requestor ${csr.username} is not a node` };
  const component = csr.commonName === kubeProxyUser || csr.commonName === `${nodeOverlayPrefix}${node}`;
  if (!component || csr.organizations.length > 0) return { approve: false, why: `${csr.commonName} is not a component identity of node ${node}` };
  if (csr.dnsNames.length + csr.ipAddresses.length + csr.emailAddresses.length + csr.uris.length > 0) return { approve: false, why: 'subject alternative names are not allowed' };
  return { approve: true, message: `Auto approving the ${csr.commonName} client certificate of node ${node}.` };
}

type ApprovalDecision = { approve: true; message: string } | { approve: false; why: string };

/**
 * The approver's decision. `nodeAddresses` are the status.addresses of the Node the CSR names
 * (undefined when no such Node exists).
 */
export function approvalDecision(csr: CsrFacts, nodeAddresses: string[] | undefined): ApprovalDecision {
  if (csr.signerName === kubeletClientSigner) {
    const problem = kubeletClientProblem(csr);
    if (problem) return { approve: false, why: problem };
    if (csr.username === csr.commonName && csr.groups.includes('system:nodes')) return { approve: true, message: 'Auto approving self kubelet client certificate after SubjectAccessReview.' };
    if (csr.groups.includes('system:bootstrappers') && csr.username.startsWith('system:bootstrap:')) return { approve: true, message: 'Auto approving kubelet client certificate after SubjectAccessReview.' };
    return { approve: false, why: `requestor ${csr.username} may not ask for a client certificate of ${csr.commonName}` };
  }
  if (csr.signerName === kubeletServingSigner) {
    const problem = kubeletServingProblem(csr);
    if (problem) return { approve: false, why: problem };
    if (csr.username !== csr.commonName || !csr.groups.includes('system:nodes')) return { approve: false, why: `requestor ${csr.username} is not ${csr.commonName}` };
    if (nodeAddresses === undefined) return { approve: false, why: `no Node ${csr.commonName.slice('system:node:'.length)}` };
    const foreign = [...csr.dnsNames, ...csr.ipAddresses].filter((name) => !nodeAddresses.includes(name));
    if (foreign.length > 0) return { approve: false, why: `${foreign.join(', ')} not among the node's addresses` };
    return { approve: true, message: 'Auto approving kubelet serving certificate: every name is an address of the node.' };
  }
  if (csr.signerName === apiserverClientSigner) return componentDecision(csr);
  return { approve: false, why: `signer ${csr.signerName} is not auto-approved` };
}

interface SigningPlan {
  notBefore: Date;
  notAfter: Date;
  keyUsages: string[];
  extendedUsages: ('client auth' | 'server auth')[];
}

/** Validity and usages of an approved CSR's certificate; a string says why it fails (SignerValidationFailure). */
export function signingPlan(csr: CsrFacts, expirationSeconds: number | undefined, options: { maxSeconds: number; minSeconds: number }, now: Date): SigningPlan | string {
  const problem =
    csr.signerName === kubeletClientSigner
      ? kubeletClientProblem(csr)
      : csr.signerName === kubeletServingSigner
        ? kubeletServingProblem(csr)
        : csr.signerName === apiserverClientSigner
          ? apiserverClientProblem(csr)
          : `signer ${csr.signerName} is not served`;
  if (problem) return problem;
  const seconds = Math.max(options.minSeconds, Math.min(expirationSeconds ?? options.maxSeconds, options.maxSeconds));
  // Backdated by 5 minutes for clock skew, except certificates shorter than that (PermissiveSigningPolicy).
  const start = Math.floor(now.getTime() / 1000) * 1000;
  const backdate = seconds >= 3600 ? 300_000 : 0;
  return {
    notBefore: new Date(start - backdate),
    notAfter: new Date(start + seconds * 1000),
    keyUsages: csr.usages.filter((u) => u === 'digital signature' || u === 'key encipherment'),
    extendedUsages: csr.usages.filter((u): u is 'client auth' | 'server auth' => u === 'client auth' || u === 'server auth'),
  };
}
