import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { certificateInfo, certificateMatchesKey, createCsr, generateKey, importKey, selfSignedServing, splitPem } from '../../agent/certificates/pki.js';

describe('node PKI (agent/certificates/pki.ts)', () => {
  it('makes an ECDSA P-256 key and a CSR that openssl reads with the node subject and SANs', async () => {
    const key = await generateKey();
    expect(key.keyPem).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
    const csr = await createCsr(key, { commonName: 'system:node:a', organizations: ['system:nodes'] }, ['10.0.0.1', 'a.example']);
    const text = execFileSync('openssl', ['req', '-noout', '-text', '-verify'], { input: csr, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
    expect(text).toMatch(/Subject: O\s*=\s*system:nodes, CN\s*=\s*system:node:a/);
    expect(text).toMatch(/prime256v1|P-256/);
    expect(text).toContain('IP Address:10.0.0.1');
    expect(text).toContain('DNS:a.example');
  });

  it('reads a key back and checks a certificate against it', async () => {
    const serving = await selfSignedServing('node1', ['10.0.0.1', 'node1']);
    expect(certificateMatchesKey(serving.certPem, serving.keyPem)).toBe(true);
    const other = await generateKey();
    expect(certificateMatchesKey(serving.certPem, other.keyPem)).toBe(false);
    const again = await importKey(serving.keyPem);
    expect(again.keyPem).toBe(serving.keyPem);
    await expect(importKey('garbage')).rejects.toThrow(/not a PEM private key/);
  });

  it('self-signs a serving certificate as the kubelet does: host@time signed by host-ca@time, SANs, one year', async () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const serving = await selfSignedServing('node1', ['10.0.0.1', 'node1'], now);
    const info = certificateInfo(serving.certPem);
    expect(info.subject.commonName).toBe(`node1@${now.getTime() / 1000}`);
    expect(info.ipAddresses).toEqual(['10.0.0.1']);
    expect(info.dnsNames).toEqual(['node1']);
    expect(info.notAfter.getTime() - now.getTime()).toBe(365 * 24 * 3600 * 1000);
    const [leaf, ca] = splitPem(serving.certPem).map((pem) => new X509Certificate(pem));
    expect(ca!.subject).toBe(`CN=node1-ca@${now.getTime() / 1000}`);
    expect(ca!.ca).toBe(true);
    expect(leaf!.verify(ca!.publicKey)).toBe(true);
  });
});
