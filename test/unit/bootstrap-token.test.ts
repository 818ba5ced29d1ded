import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  caCertHash,
  caMatchesHash,
  generateToken,
  parseCaCertHash,
  parseToken,
  readTokenSecret,
  signDetached,
  tokenExpired,
  tokenSecretObject,
  validExtraGroups,
  verifyDetached,
} from '../../lib/bootstrap-token.js';

describe('bootstrap token format', () => {
  it('parses id and secret', () => {
    expect(parseToken('abcdef.0123456789abcdef')).toEqual({ id: 'abcdef', secret: '0123456789abcdef' });
  });
  it.each(['', 'abcdef', 'ABCDEF.0123456789abcdef', 'abcde.0123456789abcdef', 'abcdef.0123456789abcde', 'abcdef:0123456789abcdef', 'abcdef.0123456789abcdef ', 'x'.repeat(10_000)])('rejects %j', (text) => {
    expect(parseToken(text)).toBeUndefined();
  });
  it('generates valid tokens', () => {
    for (let i = 0; i < 20; i++) expect(parseToken(`${generateToken().id}.${generateToken().secret}`)).toBeDefined();
  });
});

describe('token Secret', () => {
  it('round-trips what kubeadm writes', () => {
    const secret = tokenSecretObject({ id: 'abcdef', secret: '0123456789abcdef', expiration: '2030-01-01T00:00:00Z', usages: ['authentication', 'signing'], extraGroups: ['system:bootstrappers:kubeadm:default-node-token'] });
    expect((secret.metadata as { name: string }).name).toBe('bootstrap-token-abcdef');
    expect(readTokenSecret(secret as never)).toMatchObject({ id: 'abcdef', secret: '0123456789abcdef', usages: ['authentication', 'signing'], extraGroups: ['system:bootstrappers:kubeadm:default-node-token'] });
  });
  it('refuses a Secret whose name does not match its token-id, or of another type', () => {
    const secret = tokenSecretObject({ id: 'abcdef', secret: '0123456789abcdef', usages: ['authentication'], extraGroups: [] }) as { metadata: { name: string }; type: string };
    expect(readTokenSecret({ ...secret, metadata: { name: 'bootstrap-token-zzzzzz' } })).toBeUndefined();
    expect(readTokenSecret({ ...secret, type: 'Opaque' })).toBeUndefined();
  });
  it('expiration and extra groups', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    expect(tokenExpired({ expiration: '2025-12-31T23:59:59Z' }, now)).toBe(true);
    expect(tokenExpired({ expiration: '2026-01-01T00:00:01Z' }, now)).toBe(false);
    expect(tokenExpired({ expiration: 'garbage' }, now)).toBe(true);
    expect(tokenExpired({}, now)).toBe(false);
    expect(validExtraGroups(['system:bootstrappers:worker'])).toBe(true);
    expect(validExtraGroups(['system:masters'])).toBe(false);
  });
});

describe('detached JWS (cluster-bootstrap/token/jws)', () => {
  const token = { id: 'abcdef', secret: '0123456789abcdef' };
  it('has the go-jose header and verifies', () => {
    const sig = signDetached('hello', token);
    const [header, payload] = sig.split('.');
    expect(Buffer.from(header!, 'base64url').toString()).toBe('{"alg":"HS256","kid":"abcdef"}');
    expect(payload).toBe('');
    expect(verifyDetached(sig, 'hello', token)).toBe(true);
  });
  it('matches a signature computed independently (openssl HMAC)', () => {
    const header = Buffer.from('{"alg":"HS256","kid":"abcdef"}').toString('base64url');
    const input = `${header}.${Buffer.from('hello').toString('base64url')}`;
    const mac = execFileSync('openssl', ['dgst', '-sha256', '-hmac', token.secret, '-binary'], { input });
    expect(signDetached('hello', token)).toBe(`${header}..${mac.toString('base64url')}`);
  });
  it('rejects other content, another token, garbage', () => {
    const sig = signDetached('hello', token);
    expect(verifyDetached(sig, 'hellO', token)).toBe(false);
    expect(verifyDetached(sig, 'hello', { id: 'abcdef', secret: '0123456789abcdee' })).toBe(false);
    expect(verifyDetached(sig, 'hello', { id: 'abcdeg', secret: token.secret })).toBe(false);
    for (const bad of ['', '..', 'a.b.c', 'x'.repeat(5000), sig.replace('..', '.aGk.')]) expect(verifyDetached(bad, 'hello', token)).toBe(false);
  });
});

describe('CA hash (kubeadm pubkeypin)', () => {
  it('is sha256 of the SubjectPublicKeyInfo, as openssl computes it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'knode-catest-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=t', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { stdio: 'ignore' });
      const pem = readFileSync(join(dir, 'c'), 'utf8');
      const pub = execFileSync('openssl', ['x509', '-in', join(dir, 'c'), '-pubkey', '-noout']);
      const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub });
      const hex = execFileSync('sha256sum', { input: der }).toString().split(' ')[0];
      expect(caCertHash(pem)).toBe(`sha256:${hex}`);
      expect(caMatchesHash(pem, [`sha256:${hex!.toUpperCase()}`])).toBe(true);
      expect(caMatchesHash(pem, [`sha256:${'0'.repeat(64)}`])).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('parses pins strictly', () => {
    expect(parseCaCertHash('sha256:abc')).toBeUndefined();
    expect(parseCaCertHash(`md5:${'0'.repeat(64)}`)).toBeUndefined();
  });
});
