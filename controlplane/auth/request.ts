/**
 * The authentication → authorization → (node) admission chain of one request, in the order of
 * kube-apiserver's handler chain (WithAuthentication, WithAuthorization, then admission). Denials
 * are Status errors shaped as kube-apiserver's: 401 `Unauthorized`, 403 `Forbidden` with
 * `<resource> "<name>" is forbidden: User "<u>" cannot <verb> resource …`.
 */
import type { IncomingMessage } from 'node:http';
import { ApiError } from '../status.js';
import type { Registry } from '../registry.js';
import { resourceNamed } from '../resources.js';
import { authenticate, type AuthenticatorOptions, type UserInfo } from './authn.js';
import { authorize, forbiddenMessage, nodeNameOf, requestVerb, singleObjectName, type NodeGraph, type RequestAttributes } from './authz.js';
import { admitNodeCreate, nodeRestriction } from './node-restriction.js';
import { registryGraph } from './graph.js';
import { prepareCsrCreate } from '../kinds-csr.js';

export interface AccessControl {
  authn: AuthenticatorOptions;
  graph: NodeGraph;
}

export interface AccessSettings {
  adminToken?: string;
  loopbackAdmin: boolean;
  staticTokens?: AuthenticatorOptions['staticTokens'];
}

export function accessControl(registry: Registry, settings: AccessSettings): AccessControl {
  const secrets = resourceNamed('secrets');
  return {
    graph: registryGraph(registry),
    authn: {
      ...settings,
      now: () => new Date(),
      async getSecret(namespace, name) {
        try {
          return await registry.get(secrets, namespace, name);
        } catch (error) {
          if (error instanceof ApiError && error.code === 404) return undefined;
          throw error;
        }
      },
    },
  };
}

/** The parts of a parsed resource path (api-server.ts Route) the attributes need. */
interface RouteLike {
  info: { group: string; name: string };
  namespace?: string;
  name?: string;
  subresource?: string;
}

export function resourceAttributes(method: string, route: RouteLike, query: URLSearchParams, verbOverride?: string): RequestAttributes {
  const watch = query.get('watch') === 'true' || query.get('watch') === '1';
  const verb = verbOverride ?? requestVerb(method, route.name !== undefined, watch);
  const name = route.name ?? (verb === 'list' || verb === 'watch' ? singleObjectName(query.get('fieldSelector')) : '');
  return { resourceRequest: true, verb, path: '', apiGroup: route.info.group, resource: route.info.name, subresource: route.subresource ?? '', namespace: route.namespace ?? '', name };
}

export function pathAttributes(method: string, path: string): RequestAttributes {
  return { resourceRequest: false, verb: method === 'HEAD' ? 'get' : method.toLowerCase(), path, apiGroup: '', resource: '', subresource: '', namespace: '', name: '' };
}

function forbidden(user: UserInfo, attrs: RequestAttributes, reason: string): ApiError {
  const details = attrs.resourceRequest ? { name: attrs.name || undefined, group: attrs.apiGroup, kind: attrs.resource } : undefined;
  return new ApiError(403, 'Forbidden', forbiddenMessage(user, attrs, reason), details);
}

/** Admission refusals read `<resource> "<name>" is forbidden: <why>` (admission.NewForbidden). */
function admissionDenied(attrs: RequestAttributes, name: string, why: string): ApiError {
  const qualified = attrs.apiGroup ? `${attrs.resource}.${attrs.apiGroup}` : attrs.resource;
  return new ApiError(403, 'Forbidden', `${qualified}${name ? ` ${JSON.stringify(name)}` : ''} is forbidden: ${why}`, { name: name || undefined, group: attrs.apiGroup, kind: attrs.resource });
}

/** Authenticates and authorizes; returns the user, or throws the 401/403 Status. */
export async function checkAccess(req: IncomingMessage, attrs: RequestAttributes, access: AccessControl): Promise<UserInfo> {
  const user = await authenticate(req, access.authn);
  const decision = await authorize(user, attrs, access.graph);
  if (!decision.allowed) throw forbidden(user, attrs, decision.reason);
  const node = nodeNameOf(user);
  if (node !== undefined) {
    const why = await nodeRestriction(node, attrs, access.graph);
    if (why) throw admissionDenied(attrs, attrs.name, why);
  }
  return user;
}

/** NodeRestriction on a create, once the body is decoded. */
export function admitCreate(user: UserInfo, attrs: RequestAttributes, body: unknown): void {
  const node = nodeNameOf(user);
  if (node === undefined) return;
  const why = admitNodeCreate(node, attrs, body);
  if (why) {
    const name = typeof body === 'object' && body !== null && typeof (body as { metadata?: { name?: unknown } }).metadata?.name === 'string' ? ((body as { metadata: { name: string } }).metadata.name) : '';
    throw admissionDenied(attrs, name, why);
  }
}

/** The CSR create hook (kinds-csr.ts prepareCsrCreate): verified request, requestor stamped, NodeRestriction. */
export async function admitCsr(body: unknown, user: UserInfo, attrs: RequestAttributes): Promise<unknown> {
  const prepared = await prepareCsrCreate(body, user);
  if (prepared.forbidden) {
    const name = typeof body === 'object' && body !== null && typeof (body as { metadata?: { name?: unknown } }).metadata?.name === 'string' ? (body as { metadata: { name: string } }).metadata.name : '';
    throw admissionDenied(attrs, name, prepared.forbidden);
  }
  return prepared.body;
}
