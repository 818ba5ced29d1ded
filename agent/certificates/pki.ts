/**
 * Keys, certificate signing requests and certificates of a node, made with @peculiar/x509 over
 * Node's WebCrypto. ECDSA P-256 keys, as the kubelet makes them
 * (k8s.io/client-go/util/certificate: ecdsa.GenerateKey(elliptic.P256())), PEM files shaped as the
 * kubelet writes them: "EC PRIVATE KEY" (SEC1) keys and "CERTIFICATE" blocks.
 */
import 'reflect-metadata';
import { KeyObject, X509Certificate, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface KeyPair {
  /** The private key, PEM (SEC1 "EC PRIVATE KEY"). */
  keyPem: string;
  keys: CryptoKeyPair;
}

export interface Subject {
  commonName: string;
  organizations: string[];
}

export interface CertificateInfo {
  subject: Subject;
  notBefore: Date;
  notAfter: Date;
  /** DNS names and IP addresses of the subjectAltName extension. */
  dnsNames: string[];
  ipAddresses: string[];
}

export async function generateKey(): Promise<KeyPair> {
  const keys = (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const keyPem = KeyObject.from(keys.privateKey as unknown as webcrypto.CryptoKey).export({ type: 'sec1', format: 'pem' }).toString();
  return { keyPem, keys };
}

/** Loads a PEM private key (SEC1 or PKCS#8) back into a WebCrypto key pair. */
export async function importKey(keyPem: string): Promise<KeyPair> {
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (error) {
    throw new Error('not a PEM private key', { cause: error });
  }
  if (key.asymmetricKeyType !== 'ec') throw new Error(`private key type ${key.asymmetricKeyType}: only ECDSA P-256 keys are made and read here`);
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, ecdsa, true, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', spki, ecdsa, true, ['verify']);
  return { keyPem, keys: { privateKey, publicKey } as unknown as CryptoKeyPair };
}


function subjectName(subject: Subject): x509.JsonName {
  return [...subject.organizations.map((o) => ({ O: [o] })), { CN: [subject.commonName] }];
}

function altNames(names: string[]): x509.SubjectAlternativeNameExtension {
  return new x509.SubjectAlternativeNameExtension(names.map((value) => (isIP(value) ? { type: 'ip' as const, value } : { type: 'dns' as const, value })));
}

/** A PKCS#10 request, PEM ("CERTIFICATE REQUEST"), with the subjectAltNames given (serving certificates). */
export async function createCsr(key: KeyPair, subject: Subject, sans: string[] = []): Promise<string> {
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subjectName(subject),
    keys: key.keys,
    signingAlgorithm: ecdsa,
    extensions: sans.length > 0 ? [altNames(sans)] : [],
  });
  return request.toString('pem') + '\n';
}

/** The certificates of a PEM bundle, in order (a leaf first, then its chain). */
export function splitPem(pem: string, label = 'CERTIFICATE'): string[] {
  const pattern = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, 'g');
  return (pem.match(pattern) ?? []).map((block) => `${block}\n`);
}

function oneValue(text: string | undefined, key: string): string[] {
  return (text ?? '').split('\n').filter((line) => line.startsWith(`${key}=`)).map((line) => line.slice(key.length + 1));
}

/** Subject, validity and SANs of the first certificate of a PEM bundle; throws when there is none. */
export function certificateInfo(pem: string): CertificateInfo {
  const first = splitPem(pem)[0];
  if (!first) throw new Error('no PEM certificate found');
  const cert = new X509Certificate(first);
  const sans = (cert.subjectAltName ?? '').split(/,\s*/).filter(Boolean);
  return {
    subject: { commonName: oneValue(cert.subject, 'CN')[0] ?? '', organizations: oneValue(cert.subject, 'O') },
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    dnsNames: sans.filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4)),
    ipAddresses: sans.filter((s) => s.startsWith('IP Address:')).map((s) => s.slice('IP Address:'.length)),
  };
}

/** Whether the certificate's public key is the key's (a cert file and a key file belong together). */
export function certificateMatchesKey(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(splitPem(certPem)[0] ?? '').checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    // unparsable certificate or key: they do not belong together
    return false;
  }
}

const serial = () => {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f; // positive
  return bytes.toString('hex');
};

/**
 * The kubelet's default serving certificate (client-go/util/cert GenerateSelfSignedCertKey): a CA
 * "<host>-ca@<unix time>" and a certificate "<host>@<unix time>" signed by it for the node's
 * addresses and names, valid one year; the file holds the certificate then the CA.
 */
export async function selfSignedServing(host: string, sans: string[], now = new Date()): Promise<{ certPem: string; keyPem: string }> {
  const stamp = Math.floor(now.getTime() / 1000);
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime() + 365 * 24 * 3600 * 1000);
  const caKey = await generateKey();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [`${host}-ca@${stamp}`] }],
    notBefore,
    notAfter,
    keys: caKey.keys,
    signingAlgorithm: ecdsa,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, true)],
  });
  const key = await generateKey();
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [`${host}@${stamp}`] }],
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: key.keys.publicKey,
    signingKey: caKey.keys.privateKey,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      altNames(sans.length > 0 ? sans : [host]),
    ],
  });
  return { certPem: `${leaf.toString('pem')}\n${ca.toString('pem')}\n`, keyPem: key.keyPem };
}

/** What makes two requests "the same" (client-go csr ensureCompatible): public key and subject. */
export function csrIdentity(csrPem: string): { publicKey: string; subject: string } {
  const request = new x509.Pkcs10CertificateRequest(csrPem);
  return { publicKey: Buffer.from(request.publicKey.rawData).toString('hex'), subject: request.subject };
}
