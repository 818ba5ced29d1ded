/**
 * Authentication as kube-apiserver does it
 * (https://kubernetes.io/docs/reference/access-authn-authz/authentication/): a union of
 * - x509 client certificates verified by the TLS server against the cluster CA (CN = user,
 *   O = groups; the socket asks for a certificate but does not refuse one it cannot verify, so
 *   a bad certificate is a 401 here, not a handshake failure, and a token may still succeed);
 * - bearer tokens: the admin token, `--token-auth-file` entries, and bootstrap tokens
 *   (https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/: a
 *   `bootstrap.kubernetes.io/token` Secret `bootstrap-token-<id>` in kube-system, not expired,
 *   `usage-bootstrap-authentication: "true"`; user `system:bootstrap:<id>`, groups
 *   `system:bootstrappers` + `auth-extra-groups`);
 * then anonymous (`system:anonymous`, group `system:unauthenticated`) for a request that
 * carries no credential at all. A credential that was given but does not authenticate is a 401
 * (the bearer-token authenticator's "invalid bearer token"), never a fall-back to anonymous.
 * Plain HTTP on loopback without a configured token stays what it always was: the admin (a
 * known token there still authenticates as its own user, so bootstrap tokens work locally).
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { bootstrappersGroup, parseToken, readTokenSecret, tokenExpired, tokenSecretName, validExtraGroups } from '../../lib/bootstrap-token.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';

export interface UserInfo {
  name: string;
  groups: string[];
}

export const mastersGroup = 'system:masters';
export const authenticatedGroup = 'system:authenticated';
export const anonymousUser: UserInfo = { name: 'system:anonymous', groups: ['system:unauthenticated'] };
/** kubeadm's admin.conf user is `kubernetes-admin` in `system:masters` (kubeadm:cluster-admins since 1.29). */
export const adminUser: UserInfo = { name: 'kubernetes-admin', groups: [mastersGroup, authenticatedGroup] };

export interface AuthenticatorOptions {
  /** The admin bearer token (DATA_DIR/token); absent on plain loopback HTTP. */
  adminToken?: string;
  /** Plain HTTP on loopback without a token: every request is the admin (knode's local mode). */
  loopbackAdmin: boolean;
  /** --token-auth-file entries: token → user. */
  staticTokens?: ReadonlyMap<string, UserInfo>;
  /** Reads a Secret (undefined when absent); used for bootstrap tokens. */
  getSecret(namespace: string, name: string): Promise<KObject | undefined>;
  now(): Date;
}

const unauthorized = () => new ApiError(401, 'Unauthorized', 'Unauthorized');

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

const withAuthenticated = (user: UserInfo): UserInfo => (user.groups.includes(authenticatedGroup) ? user : { ...user, groups: [...user.groups, authenticatedGroup] });

/** CN and O of a verified client certificate; 'invalid' when one was presented but does not verify. */
function certificateUser(socket: unknown): UserInfo | 'invalid' | undefined {
  const tls = socket as Partial<TLSSocket> | undefined;
  if (!tls || typeof tls.getPeerCertificate !== 'function') return undefined;
  const cert = tls.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  if (!tls.authorized) return 'invalid';
  // x509.Verify with ExtKeyUsageClientAuth: a certificate that names its usages must include client auth.
  const usages = (cert as { ext_key_usage?: string[] }).ext_key_usage;
  if (usages && !usages.includes('1.3.6.1.5.5.7.3.2') && !usages.includes('2.5.29.37.0')) return 'invalid';
  const cn = cert.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (!name) return 'invalid'; // CommonNameUserConversion: "common name of the client certificate must not be empty"
  const o = cert.subject?.O;
  const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
  return withAuthenticated({ name, groups: groups.filter((g) => g !== '') });
}

/**
 * The token of an `Authorization: Bearer` header, as k8s.io/apiserver's bearertoken
 * authenticator reads it: another scheme or an empty token is no credential at all (the
 * request goes on as anonymous); the scheme is case-insensitive (RFC 7235 section 2.1).
 */
export function bearerToken(header: string | undefined): string | undefined {
  const parts = (header ?? '').trim().split(' ', 3);
  if (parts.length < 2 || (parts[0] ?? '').toLowerCase() !== 'bearer') return undefined;
  const token = parts[1] ?? '';
  return token === '' ? undefined : token;
}

async function bootstrapUser(token: string, options: AuthenticatorOptions): Promise<UserInfo | undefined> {
  const parsed = parseToken(token);
  if (!parsed) return undefined;
  const secret = await options.getSecret('kube-system', tokenSecretName(parsed.id));
  if (!secret || secret.metadata.deletionTimestamp) return undefined;
  const fields = readTokenSecret(secret);
  if (!fields || !sameSecret(parsed.secret, fields.secret)) return undefined;
  if (tokenExpired(fields, options.now())) return undefined;
  if (!fields.usages.includes('authentication')) return undefined;
  if (!validExtraGroups(fields.extraGroups)) return undefined;
  return withAuthenticated({ name: `system:bootstrap:${parsed.id}`, groups: [bootstrappersGroup, ...fields.extraGroups.filter((g) => g !== bootstrappersGroup)] });
}

async function tokenUser(token: string, options: AuthenticatorOptions): Promise<UserInfo | undefined> {
  if (token.length > 4096) return undefined;
  if (options.adminToken && sameSecret(token, options.adminToken)) return adminUser;
  for (const [known, user] of options.staticTokens ?? []) if (sameSecret(token, known)) return withAuthenticated(user);
  return bootstrapUser(token, options);
}

/** The request's user, or a 401 ApiError. */
export async function authenticate(req: IncomingMessage, options: AuthenticatorOptions): Promise<UserInfo> {
  const fromCert = certificateUser(req.socket);
  if (fromCert !== undefined && fromCert !== 'invalid') return fromCert;
  const token = bearerToken(req.headers.authorization);
  if (token !== undefined) {
    const user = await tokenUser(token, options);
    if (user) return user;
    // Open loopback HTTP ignores credentials it does not know, as it always did.
    if (options.loopbackAdmin) return adminUser;
    throw unauthorized();
  }
  if (fromCert === 'invalid') throw unauthorized();
  if (options.loopbackAdmin) return adminUser;
  return anonymousUser;
}

/**
 * kube-apiserver's --token-auth-file: CSV lines `token,user,uid,"group1,group2"` (uid is
 * ignored here; # starts a comment). Bounded: at most 10 000 lines.
 */
export function parseTokenAuthFile(text: string): Map<string, UserInfo> {
  const tokens = new Map<string, UserInfo>();
  const lines = text.split('\n');
  if (lines.length > 10_000) throw new Error('token auth file: more than 10000 lines');
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const match = /^([^,]+),([^,]+),([^,]*)(?:,"?([^"]*)"?)?$/.exec(line);
    if (!match) throw new Error(`token auth file line ${index + 1}: expected token,user,uid[,"group1,group2"]`);
    const groups = (match[4] ?? '').split(',').map((g) => g.trim()).filter((g) => g !== '');
    tokens.set(match[1] as string, { name: match[2] as string, groups });
  });
  return tokens;
}
