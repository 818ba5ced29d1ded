/**
 * The fake of agent/certificates/csr.ts CsrApi: CSRs in a map, watches called back on every
 * change, and a signer the test drives (approve + sign with a test CA, deny, or refuse with an
 * HTTP status as an API server would). Signed certificates are real X.509, made with the CA.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { V1CertificateSigningRequest } from '@kubernetes/client-node';
import type { CsrApi } from '../../agent/certificates/csr.js';
import { generateKey, type KeyPair } from '../../agent/certificates/pki.js';

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export class ApiStatusError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export class FakeCsrApi implements CsrApi {
  readonly csrs = new Map<string, V1CertificateSigningRequest>();
  private readonly watchers = new Map<number, { name: string; onChange: (csr: V1CertificateSigningRequest | undefined) => void }>();
  private nextId = 1;
  /** When set, every create fails with this status (e.g. 401 for a bad token). */
  refuse?: number;
  /** Called after each create (e.g. to approve at once). */
  onCreate?: (name: string) => void;
  createdCount = 0;

  private constructor(readonly ca: { key: KeyPair; cert: x509.X509Certificate; pem: string }) {}

  static async create(): Promise<FakeCsrApi> {
    const key = await generateKey();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: [{ CN: ['test-ca'] }],
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 24 * 3600_000),
      keys: key.keys,
      signingAlgorithm: ecdsa,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
    });
    return new FakeCsrApi({ key, cert, pem: cert.toString('pem') + '\n' });
  }

  create(body: V1CertificateSigningRequest): Promise<V1CertificateSigningRequest> {
    if (this.refuse) return Promise.reject(new ApiStatusError(this.refuse, `HTTP-Code: ${this.refuse}`));
    const name = body.metadata?.name ?? `csr-${randomBytes(3).toString('hex')}`;
    if (this.csrs.has(name)) return Promise.reject(new ApiStatusError(409, 'AlreadyExists'));
    const stored = { ...body, metadata: { ...body.metadata, name } };
    delete stored.metadata.generateName;
    this.csrs.set(name, stored);
    this.createdCount++;
    this.notify(name);
    this.onCreate?.(name);
    return Promise.resolve(structuredClone(stored));
  }

  read(name: string): Promise<V1CertificateSigningRequest> {
    const csr = this.csrs.get(name);
    return csr ? Promise.resolve(structuredClone(csr)) : Promise.reject(new ApiStatusError(404, 'NotFound'));
  }

  watch(name: string, onChange: (csr: V1CertificateSigningRequest | undefined) => void): { stop(): void } {
    const id = this.nextId++;
    this.watchers.set(id, { name, onChange });
    queueMicrotask(() => onChange(this.csrs.get(name)));
    return { stop: () => this.watchers.delete(id) };
  }

  private notify(name: string): void {
    for (const watcher of this.watchers.values()) if (watcher.name === name) watcher.onChange(structuredClone(this.csrs.get(name)));
  }

  /** Approves and signs with the CA; the certificate is valid from `notBefore` for `lifetimeMs`. */
  async approve(name: string, lifetimeMs = 3600_000, notBefore = new Date()): Promise<void> {
    const csr = this.csrs.get(name)!;
    const request = new x509.Pkcs10CertificateRequest(Buffer.from(csr.spec.request, 'base64').toString('utf8'));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
      subject: request.subject,
      issuer: this.ca.cert.subject,
      notBefore,
      notAfter: new Date(notBefore.getTime() + lifetimeMs),
      publicKey: request.publicKey,
      signingKey: this.ca.key.keys.privateKey,
      signingAlgorithm: ecdsa,
      extensions: request.extensions.filter((e) => e instanceof x509.SubjectAlternativeNameExtension),
    });
    csr.status = {
      conditions: [{ type: 'Approved', status: 'True', reason: 'AutoApproved', message: 'test', lastUpdateTime: new Date(), lastTransitionTime: new Date() }],
      certificate: Buffer.from(cert.toString('pem') + '\n').toString('base64'),
    };
    this.notify(name);
  }

  deny(name: string, reason = 'NotMine'): void {
    const csr = this.csrs.get(name)!;
    csr.status = { conditions: [{ type: 'Denied', status: 'True', reason, message: 'denied by the test' }] };
    this.notify(name);
  }
}

