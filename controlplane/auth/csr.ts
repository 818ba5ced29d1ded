/**
 * Reading the PKCS#10 request of a CertificateSigningRequest
 * (https://kubernetes.io/docs/reference/access-authn-authz/certificate-signing-requests/):
 * `spec.request` is the base64 of a PEM `CERTIFICATE REQUEST` block whose self-signature must
 * verify. What the approver and the signer look at: subject CN and O, and the SANs.
 */
import { x509 } from './pki.js';

/** The largest `spec.request` accepted (decoded PEM); a CSR is a few hundred bytes. */
const maxCsrBytes = 64 * 1024;

/** What a CSR asks for: subject and subjectAltNames (the approver's and the signer's input). */
export interface CsrNames {
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
  emailAddresses: string[];
  uris: string[];
}

interface ParsedCsr extends CsrNames {
  request: x509.Pkcs10CertificateRequest;
}

/** The PEM of spec.request (base64 in the API); throws with a message fit for a 422 cause. */
export function decodeRequest(request: unknown): string {
  if (typeof request !== 'string' || request === '') throw new Error('Required value');
  if (request.length > (maxCsrBytes * 4) / 3 + 4) throw new Error(`must be no more than ${maxCsrBytes} bytes`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(request)) throw new Error('illegal base64 data');
  const pem = Buffer.from(request, 'base64').toString('utf8');
  const blocks = pem.match(/-----BEGIN CERTIFICATE REQUEST-----[\s\S]*?-----END CERTIFICATE REQUEST-----/g) ?? [];
  if (blocks.length !== 1) throw new Error('PEM block type must be CERTIFICATE REQUEST');
  return blocks[0] as string;
}

/** Parses and verifies the request; throws a plain Error naming the problem. */
export async function parseCsr(request: unknown): Promise<ParsedCsr> {
  const pem = decodeRequest(request);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (error) {
    throw new Error(`invalid certificate request: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch (error) {
    throw new Error(`invalid certificate request: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (!valid) throw new Error('invalid certificate request: the signature does not verify');
  const names = (csr.getExtension('2.5.29.17') as x509.SubjectAlternativeNameExtension | null)?.names.items ?? [];
  const of = (type: string) => names.filter((n) => n.type === type).map((n) => n.value);
  return {
    commonName: csr.subjectName.getField('CN')[0] ?? '',
    organizations: csr.subjectName.getField('O'),
    dnsNames: of('dns'),
    ipAddresses: of('ip'),
    emailAddresses: of('email'),
    uris: of('url'),
    request: csr,
  };
}
