/**
 * Bootstrap tokens and cluster-info discovery, shared by the control plane (authentication,
 * the bootstrap signer, `knode token`) and `knode join` (discovery). One implementation of:
 * - the token format `[a-z0-9]{6}.[a-z0-9]{16}` and its Secret
 *   (https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/);
 * - the detached JWS of the `cluster-info` ConfigMap (`jws-kubeconfig-<token-id>`), as
 *   k8s.io/cluster-bootstrap/token/jws ComputeDetachedSignature makes it: compact JWS, HS256,
 *   key = the token secret, protected header `{"alg":"HS256","kid":"<token-id>"}` (go-jose
 *   writes header keys sorted), payload left out (`header..signature`);
 * - the CA pin `sha256:<hex>` of the CA's DER SubjectPublicKeyInfo, as kubeadm's
 *   `--discovery-token-ca-cert-hash` (k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin).
 */
import { createHash, createHmac, randomInt, timingSafeEqual, X509Certificate } from 'node:crypto';

export const bootstrapTokenSecretType = 'bootstrap.kubernetes.io/token';
const bootstrapTokenSecretPrefix = 'bootstrap-token-';
export const bootstrappersGroup = 'system:bootstrappers';
/** kubeadm's default extra group of node join tokens. */
export const defaultNodeTokenGroup = 'system:bootstrappers:kubeadm:default-node-token';
export const clusterInfoNamespace = 'kube-public';
export const clusterInfoName = 'cluster-info';
export const jwsKeyPrefix = 'jws-kubeconfig-';

const tokenPattern = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
/** bootstrapapi.BootstrapGroupPattern: what auth-extra-groups may name. */
const extraGroupPattern = /^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$/;

export interface BootstrapToken {
  id: string;
  secret: string;
}

/** Parses `abcdef.0123456789abcdef`; undefined for anything else (never throws on input). */
export function parseToken(text: string): BootstrapToken | undefined {
  if (typeof text !== 'string' || text.length !== 23) return undefined;
  const match = tokenPattern.exec(text);
  return match ? { id: match[1] as string, secret: match[2] as string } : undefined;
}

export function formatToken(token: BootstrapToken): string {
  return `${token.id}.${token.secret}`;
}

const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
function randomString(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** A new random token (bootstraputil.GenerateBootstrapToken). */
export function generateToken(): BootstrapToken {
  return { id: randomString(6), secret: randomString(16) };
}

export function tokenSecretName(id: string): string {
  return `${bootstrapTokenSecretPrefix}${id}`;
}

export interface TokenSecretFields {
  id: string;
  secret: string;
  description?: string;
  /** RFC 3339; absent: never expires. */
  expiration?: string;
  usages: string[];
  extraGroups: string[];
}

/** The Secret kubeadm writes for a token (data base64-encoded, as the API stores it). */
export function tokenSecretObject(fields: TokenSecretFields): Record<string, unknown> {
  const data: Record<string, string> = { 'token-id': fields.id, 'token-secret': fields.secret };
  if (fields.description) data.description = fields.description;
  if (fields.expiration) data.expiration = fields.expiration;
  for (const usage of fields.usages) data[`usage-bootstrap-${usage}`] = 'true';
  if (fields.extraGroups.length > 0) data['auth-extra-groups'] = fields.extraGroups.join(',');
  const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name: tokenSecretName(fields.id), namespace: 'kube-system' }, type: bootstrapTokenSecretType, data: encoded };
}

function decoded(data: unknown, key: string): string | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const value = (data as Record<string, unknown>)[key];
  if (typeof value !== 'string' || value.length > 4096) return undefined;
  return Buffer.from(value, 'base64').toString('utf8');
}

/**
 * Reads a bootstrap-token Secret (type, name and fields checked as the bootstrap authenticator
 * does); undefined when it is not a well-formed token Secret.
 */
export function readTokenSecret(secret: { metadata?: { name?: string }; type?: unknown; data?: unknown }): TokenSecretFields | undefined {
  if (secret.type !== bootstrapTokenSecretType) return undefined;
  const id = decoded(secret.data, 'token-id');
  const tokenSecret = decoded(secret.data, 'token-secret');
  if (!id || !tokenSecret || parseToken(`${id}.${tokenSecret}`) === undefined) return undefined;
  if (secret.metadata?.name !== tokenSecretName(id)) return undefined;
  const usages = ['authentication', 'signing'].filter((usage) => decoded(secret.data, `usage-bootstrap-${usage}`) === 'true');
  const groups = (decoded(secret.data, 'auth-extra-groups') ?? '').split(',').map((g) => g.trim()).filter((g) => g !== '');
  return { id, secret: tokenSecret, description: decoded(secret.data, 'description'), expiration: decoded(secret.data, 'expiration'), usages, extraGroups: groups };
}

/** Extra groups outside `system:bootstrappers:*` make the token invalid (bootstrapsecretutil.GetGroups). */
export function validExtraGroups(groups: string[]): boolean {
  return groups.every((group) => extraGroupPattern.test(group));
}

/** Expired when `expiration` is unparsable or not after now (bootstrapsecretutil.HasExpired). */
export function tokenExpired(fields: Pick<TokenSecretFields, 'expiration'>, now: Date): boolean {
  if (fields.expiration === undefined) return false;
  const at = Date.parse(fields.expiration);
  return Number.isNaN(at) || at <= now.getTime();
}

const b64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

/** `header..signature` over `content`, keyed by the token secret. */
export function signDetached(content: string, token: BootstrapToken): string {
  const header = b64url(JSON.stringify({ alg: 'HS256', kid: token.id }));
  const signature = createHmac('sha256', token.secret).update(`${header}.${b64url(content)}`).digest('base64url');
  return `${header}..${signature}`;
}

/** True when `detached` is a valid HS256 signature of `content` by this token (constant-time compare). */
export function verifyDetached(detached: string, content: string, token: BootstrapToken): boolean {
  if (typeof detached !== 'string' || detached.length > 4096) return false;
  const parts = detached.split('.');
  if (parts.length !== 3 || parts[1] !== '') return false;
  const [header = '', , signature = ''] = parts;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
  } catch {
    // a header that is not JSON: not a valid signature
    return false;
  }
  if (typeof parsed !== 'object' || parsed === null) return false;
  const { alg, kid } = parsed as Record<string, unknown>;
  if (alg !== 'HS256' || kid !== token.id) return false;
  const expected = createHmac('sha256', token.secret).update(`${header}.${b64url(content)}`).digest();
  const given = Buffer.from(signature, 'base64url');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** `sha256:<hex>` of the certificate's DER SubjectPublicKeyInfo (the first certificate of a PEM). */
export function caCertHash(pem: string): string {
  const cert = new X509Certificate(pem);
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** Parses `sha256:<64 hex>` (case-insensitive hex); undefined when malformed. */
export function parseCaCertHash(text: string): string | undefined {
  const match = /^sha256:([0-9a-fA-F]{64})$/.exec(typeof text === 'string' ? text.trim() : '');
  return match ? `sha256:${(match[1] as string).toLowerCase()}` : undefined;
}

/** True when the PEM's public key matches one of the pins. */
export function caMatchesHash(pem: string, pins: string[]): boolean {
  const actual = caCertHash(pem);
  return pins.some((pin) => parseCaCertHash(pin) === actual);
}
