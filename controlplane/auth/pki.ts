/**
 * The cluster CA of a control plane (DATA_DIR/pki/ca.crt + ca.key): it signs the API server's
 * serving certificate, the kubelet certificates (bin/up through lib/kubelet-pki.ts, and the
 * CSR signer) and client certificates, as kubeadm's single `ca` does
 * (https://kubernetes.io/docs/setup/best-practices/certificates/). The CA may have been made by
 * openssl (lib/kubelet-pki.ts) or here; both write a PKCS#8 key. Certificates are issued with
 * @peculiar/x509 over WebCrypto.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../lib/fs.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as never);

export { x509 };

export interface ClusterCa {
  certPem: string;
  cert: x509.X509Certificate;
  key: CryptoKey;
  algorithm: (webcrypto.EcdsaParams & webcrypto.EcKeyImportParams) | webcrypto.RsaHashedImportParams;
}

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

function toPem(der: ArrayBuffer, label: string): string {
  const body = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** Imports a PEM private key (PKCS#8, SEC1 or PKCS#1) for signing. */
async function importSigningKey(pem: string): Promise<{ key: CryptoKey; algorithm: ClusterCa['algorithm'] }> {
  const keyObject = createPrivateKey(pem);
  const der = keyObject.export({ format: 'der', type: 'pkcs8' });
  const algorithm: ClusterCa['algorithm'] =
    keyObject.asymmetricKeyType === 'ec'
      ? { name: 'ECDSA', namedCurve: keyObject.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : 'P-256', hash: 'SHA-256' }
      : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const key = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
  return { key: key as CryptoKey, algorithm };
}

async function newKeyPair(): Promise<{ keys: CryptoKeyPair; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as CryptoKeyPair;
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keys, keyPem: toPem(der, 'PRIVATE KEY') };
}

const serial = () => {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f; // positive
  return bytes.toString('hex');
};

/** Loads DIR/ca.crt + ca.key, or creates them (10 years, as kubeadm's CA). */
export async function ensureClusterCa(dir: string): Promise<ClusterCa> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    const { keys, keyPem } = await newKeyPair();
    const now = new Date();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: 'CN=knode-ca',
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + 3650 * 86_400_000),
      keys,
      signingAlgorithm: ecdsa,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    writeFileAtomic(keyFile, keyPem, { mode: 0o600 });
    writeFileAtomic(certFile, cert.toString('pem'), { mode: 0o644 });
  }
  const certPem = readFileSync(certFile, 'utf8');
  const { key, algorithm } = await importSigningKey(readFileSync(keyFile, 'utf8'));
  return { certPem, cert: new x509.X509Certificate(certPem), key, algorithm };
}

interface IssueRequest {
  subject: string | x509.Name;
  publicKey: x509.PublicKey | CryptoKey;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Extended key usages as OIDs (x509.ExtendedKeyUsage.serverAuth / clientAuth). */
  extendedUsages: string[];
  keyUsages?: number;
  notBefore?: Date;
  notAfter: Date;
}

/** A leaf certificate signed by the CA, never outliving it (as the kube-controller-manager signer caps it). */
export async function issueCertificate(ca: ClusterCa, request: IssueRequest): Promise<string> {
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(request.keyUsages ?? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(request.extendedUsages),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
  ];
  const names = [...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })), ...(request.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value }))];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  const notAfter = request.notAfter.getTime() > ca.cert.notAfter.getTime() ? ca.cert.notAfter : request.notAfter;
  const publicKey = request.publicKey instanceof x509.PublicKey ? ((await request.publicKey.export(webcrypto as never)) as unknown as CryptoKey) : request.publicKey;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: request.subject,
    issuer: ca.cert.subjectName,
    notBefore: request.notBefore ?? new Date(Date.now() - 5 * 60_000),
    notAfter,
    publicKey,
    signingKey: ca.key,
    signingAlgorithm: ca.algorithm,
    extensions,
  });
  return cert.toString('pem');
}

/** True when the PEM certificate was issued by this CA (signature checked) and is still valid at `now`. */
function issuedBy(certPem: string, ca: ClusterCa, now = new Date()): boolean {
  try {
    const cert = new NodeX509(certPem);
    const caCert = new NodeX509(ca.certPem);
    return cert.checkIssued(caCert) && cert.verify(caCert.publicKey) && new Date(cert.validTo).getTime() > now.getTime();
  } catch {
    // an unparsable certificate is not one the CA issued
    return false;
  }
}

/** Splits `DNS:x` / `IP:y` subjectAltName entries (security.servingNames) into lists. */
function splitNames(names: string[]): { dnsNames: string[]; ipAddresses: string[] } {
  return {
    dnsNames: names.filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4)),
    ipAddresses: names.filter((n) => n.startsWith('IP:')).map((n) => n.slice(3)),
  };
}

/** True when the certificate's subjectAltName lists every `DNS:x` / `IP:y` of `names`. */
function namesCovered(certPem: string, names: string[]): boolean {
  const listed = new Set((new NodeX509(certPem).subjectAltName ?? '').split(', ').map((entry) => entry.replace(/^IP Address:/, 'IP:')));
  return names.every((name) => listed.has(name));
}

/**
 * DIR/apiserver.crt + apiserver.key signed by the CA with the given SANs; remade when missing,
 * not issued by this CA (an older self-signed one) or not naming every address asked for.
 */
export async function ensureServingCertificate(dir: string, ca: ClusterCa, names: string[]): Promise<{ cert: string; key: string }> {
  const certFile = join(dir, 'apiserver.crt');
  const keyFile = join(dir, 'apiserver.key');
  if (!existsSync(certFile) || !existsSync(keyFile) || !issuedBy(readFileSync(certFile, 'utf8'), ca) || !namesCovered(readFileSync(certFile, 'utf8'), names)) {
    const { keys, keyPem } = await newKeyPair();
    const pem = await issueCertificate(ca, { subject: 'CN=kube-apiserver', publicKey: keys.publicKey, ...splitNames(names), extendedUsages: [x509.ExtendedKeyUsage.serverAuth], notAfter: new Date(Date.now() + 3650 * 86_400_000) });
    writeFileAtomic(keyFile, keyPem, { mode: 0o600 });
    writeFileAtomic(certFile, pem, { mode: 0o644 });
  }
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}
