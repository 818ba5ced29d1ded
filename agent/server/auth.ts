/**
 * Authentication and authorization of the kubelet API, as the kubelet configures them
 * (docs "Kubelet authentication/authorization"):
 * - x509 client certificates (when served over TLS with authentication.x509.clientCAFile),
 *   bearer tokens checked with a TokenReview (authentication.webhook.enabled, cached cacheTTL),
 *   and anonymous requests as system:anonymous only when authentication.anonymous.enabled;
 *   otherwise 401;
 * - authorization mode AlwaysAllow, or Webhook: a SubjectAccessReview for the resource "nodes",
 *   subresource from the path (stats, metrics, log, proxy), verb from the HTTP method; 403 when
 *   denied (cached cacheAuthorizedTTL / cacheUnauthorizedTTL).
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { KubeConfig } from '@kubernetes/client-node';
import { AuthenticationV1Api, AuthorizationV1Api } from '../../lib/kube-client.js';
import type { Logger } from '../../lib/log.js';

export interface User {
  name: string;
  groups: string[];
  uid?: string;
}

interface RequestAttributes {
  verb: string;
  resource: 'nodes';
  subresource: string;
  name: string;
}

/** The kubelet's attribute mapping (pkg/kubelet/server/auth.go GetRequestAttributes). */
export function requestAttributes(method: string, path: string, nodeName: string): RequestAttributes {
  const verbs: Record<string, string> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
  let subresource = 'proxy';
  if (path === '/stats' || path.startsWith('/stats/')) subresource = 'stats';
  else if (path === '/metrics' || path.startsWith('/metrics/')) subresource = 'metrics';
  else if (path === '/logs' || path.startsWith('/logs/')) subresource = 'log';
  else if (path === '/checkpoint' || path.startsWith('/checkpoint/')) subresource = 'checkpoint';
  return { verb: verbs[method.toUpperCase()] ?? 'get', resource: 'nodes', subresource, name: nodeName };
}

interface TokenReviewer {
  review(token: string): Promise<User | undefined>;
}

interface AccessReviewer {
  review(user: User, attributes: RequestAttributes): Promise<boolean>;
}

export interface AuthSettings {
  anonymous: boolean;
  tokens?: TokenReviewer;
  tokenCacheTtlMs: number;
  mode: 'AlwaysAllow' | 'Webhook';
  access?: AccessReviewer;
  allowedTtlMs: number;
  deniedTtlMs: number;
  /** TLS with a client CA: verified client certificates authenticate. */
  clientCerts: boolean;
  /** Where failed reviews are logged. */
  log?: Logger;
}

type AuthResult = { ok: true; user: User } | { ok: false; status: 401 | 403; message: string };

export class RequestAuth {
  private readonly tokenCache = new Map<string, { user?: User; until: number }>();
  private readonly accessCache = new Map<string, { allowed: boolean; until: number }>();

  constructor(
    private readonly settings: AuthSettings,
    private readonly nodeName: string,
    private readonly now: () => number = Date.now,
  ) {}

  private async authenticate(req: IncomingMessage): Promise<User | undefined> {
    if (this.settings.clientCerts) {
      const socket = req.socket as TLSSocket;
      if (socket.authorized && typeof socket.getPeerCertificate === 'function') {
        const cert = socket.getPeerCertificate();
        const cn = cert?.subject?.CN;
        if (cn) {
          const org = cert.subject.O;
          return { name: String(cn), groups: [...(Array.isArray(org) ? org : org ? [org] : []), 'system:authenticated'] };
        }
      }
    }
    const header = req.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (match && this.settings.tokens) {
      const token = match[1]!;
      const cached = this.tokenCache.get(token);
      if (cached && cached.until > this.now()) return cached.user;
      let user: User | undefined;
      try {
        user = await this.settings.tokens.review(token);
      } catch (error) {
        // Fail closed: a token review that cannot be done (API down) authenticates no one (401).
        this.settings.log?.warn({ err: error }, 'token review failed: the request is not authenticated');
        user = undefined;
      }
      this.tokenCache.set(token, { ...(user ? { user } : {}), until: this.now() + this.settings.tokenCacheTtlMs });
      return user;
    }
    if (match) return undefined; // a token nobody can check is not anonymous
    return this.settings.anonymous ? { name: 'system:anonymous', groups: ['system:unauthenticated'] } : undefined;
  }

  private async authorize(user: User, attributes: RequestAttributes): Promise<boolean> {
    if (this.settings.mode === 'AlwaysAllow') return true;
    if (!this.settings.access) return false;
    const key = JSON.stringify([user.name, user.groups, attributes]);
    const cached = this.accessCache.get(key);
    if (cached && cached.until > this.now()) return cached.allowed;
    let allowed = false;
    try {
      allowed = await this.settings.access.review(user, attributes);
    } catch (error) {
      // Fail closed: an access review that cannot be done denies (403), as the kubelet's webhook authorizer.
      this.settings.log?.warn({ err: error, user: user.name }, 'access review failed: the request is denied');
      allowed = false;
    }
    this.accessCache.set(key, { allowed, until: this.now() + (allowed ? this.settings.allowedTtlMs : this.settings.deniedTtlMs) });
    return allowed;
  }

  async check(req: IncomingMessage, path: string): Promise<AuthResult> {
    const user = await this.authenticate(req);
    if (!user) return { ok: false, status: 401, message: 'Unauthorized' };
    const attributes = requestAttributes(req.method ?? 'GET', path, this.nodeName);
    if (!(await this.authorize(user, attributes))) {
      return { ok: false, status: 403, message: `Forbidden (user=${user.name}, verb=${attributes.verb}, resource=nodes, subresource(s)=[${attributes.subresource}])` };
    }
    return { ok: true, user };
  }
}

/** TokenReview / SubjectAccessReview against the API server. */
export function apiReviewers(kubeConfig: KubeConfig): { tokens: TokenReviewer; access: AccessReviewer } {
  const authn = kubeConfig.makeApiClient(AuthenticationV1Api);
  const authz = kubeConfig.makeApiClient(AuthorizationV1Api);
  return {
    tokens: {
      async review(token) {
        const result = await authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });
        const status = result.status;
        if (!status?.authenticated || !status.user?.username) return undefined;
        return { name: status.user.username, groups: status.user.groups ?? [], ...(status.user.uid ? { uid: status.user.uid } : {}) };
      },
    },
    access: {
      async review(user, attributes) {
        const result = await authz.createSubjectAccessReview({
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: { user: user.name, groups: user.groups, ...(user.uid ? { uid: user.uid } : {}), resourceAttributes: { verb: attributes.verb, resource: 'nodes', subresource: attributes.subresource, name: attributes.name } },
          },
        });
        return result.status?.allowed === true;
      },
    },
  };
}
