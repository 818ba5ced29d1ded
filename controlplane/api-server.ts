/**
 * The HTTP front of the control plane: routes Kubernetes REST paths to the registry, watch
 * streams to the watch cache, and turns every failure into a Status (a thrown error that is not
 * an ApiError becomes a 500 and a log line; the server never crashes on input).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../lib/log.js';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, serverVersion } from './discovery.js';
import { decodeBody, queryBool, queryInt, readBody, sendJson, sendStatus, successStatus } from './http-util.js';
import { applyPatch, PatchError, patchTypeOf } from './patch.js';
import { strategyFor } from './kinds.js';
import { parseSelectors, type DeleteOptions, type Registry } from './registry.js';
import { findResource, resources, type ResourceInfo } from './resources.js';
import { ApiError, badRequest, methodNotAllowed, notFound, toApiError, unsupportedMediaType } from './status.js';
import type { KObject } from './storage/types.js';
import { toTable, wantsTable, type IncludeObject } from './table.js';
import { isRecord, stringOf } from './util.js';
import type { WatchCache } from './watch-cache.js';
import { serveWatch, type WatchSettings } from './watch-http.js';
import { bindPod } from './binding.js';
import { serveOpenApi } from './openapi.js';
import { checkFields, parseFieldValidation } from './field-validation.js';
import { serveScale } from './scale.js';
import { metricsApiGroup, metricsApiResourceList, metricsGroup, metricsVersion, serveMetricsApi, withMetricsGroup } from './metrics-api.js';
import type { MetricsStore } from './metrics-store.js';
import { streamSubresources, writeStatusToSocket, type PodStreamProxy, type StreamSubresource } from './pod-exec.js';
import { accessControl, admitCreate, admitCsr, checkAccess, pathAttributes, resourceAttributes, type AccessControl } from './auth/request.js';
import { answerReview, isReviewKind } from './auth/reviews.js';
import { adminUser, type UserInfo } from './auth/authn.js';

interface Route {
  info: ResourceInfo;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/**
 * A request target split without normalising it: `new URL()` resolves `%2e%2e` and `..`, so
 * `DELETE .../namespaces/foo/configmaps/%2e%2e` would address namespace foo (issue 25 item 7).
 * Absolute-form targets (`http://host/path`) lose their origin first.
 */
export function splitRequestTarget(target: string): { path: string; query: URLSearchParams } {
  const local = target.startsWith('/') ? target : target.replace(/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/, '') || '/';
  const hash = local.indexOf('#');
  const withoutHash = hash < 0 ? local : local.slice(0, hash);
  const mark = withoutHash.indexOf('?');
  const rawPath = mark < 0 ? withoutHash : withoutHash.slice(0, mark);
  const query = new URLSearchParams(mark < 0 ? '' : withoutHash.slice(mark + 1));
  return { path: rawPath.replace(/\/+$/, '') || '/', query };
}

/** path.IsValidPathSegmentName of apimachinery: what a namespace or object name in a URL may not be. */
function checkPathSegmentName(segment: string): void {
  const problems: string[] = [];
  if (segment === '.' || segment === '..') problems.push(`may not be '${segment}'`);
  if (segment.includes('/')) problems.push("may not contain '/'");
  if (segment.includes('%')) problems.push("may not contain '%'");
  if (problems.length > 0) throw badRequest(`invalid resource name ${JSON.stringify(segment)}: [${problems.join(', ')}]`);
}

/** Parses /api/v1/... and /apis/<group>/<version>/... resource paths (raw, still percent-encoded). */
export function parseResourcePath(path: string): Route | 'discovery' | undefined {
  let parts: string[];
  try {
    parts = path.split('/').filter((p) => p !== '').map(decodeURIComponent);
  } catch {
    // decodeURIComponent's URIError becomes the client's 400
    throw badRequest(`malformed URL path "${path.slice(0, 200)}"`);
  }
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts[1] === 'v1') {
    group = '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    group = parts[1] ?? '';
    rest = parts.slice(3);
    if (!resources.some((r) => r.group === group && r.version === parts[2])) return undefined;
  } else return undefined;
  if (rest.length === 0) return 'discovery';
  const version = group === '' ? 'v1' : (parts[2] ?? '');
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const info = findResource(group, version, rest[2] ?? '');
    if (info?.namespaced) {
      if (rest.length > 5) return undefined;
      const [, namespace, , name, subresource] = rest;
      for (const segment of [namespace, name]) if (segment !== undefined) checkPathSegmentName(segment);
      return { info, namespace, name, subresource };
    }
  }
  const info = findResource(group, version, rest[0] ?? '');
  if (!info || rest.length > 3) return undefined;
  if (rest[1] !== undefined) checkPathSegmentName(rest[1]);
  return { info, name: rest[1], subresource: rest[2] };
}

export interface ApiServerOptions {
  registry: Registry;
  cache: WatchCache;
  log: Logger;
  watch: WatchSettings;
  /** Authentication and authorization (controlplane/auth); absent: every request is the admin (tests of the REST layer alone). */
  access?: AccessControl;
  serverAddress: string;
  /** Pod log streaming through the node's kubelet; absent means 404-style errors. */
  podLogs?: (pod: KObject, query: URLSearchParams, res: ServerResponse) => Promise<void>;
  /** pods/exec, pods/attach and pods/portforward upgrades proxied to the node's kubelet. */
  podStreams?: PodStreamProxy;
  isReady: () => boolean;
  /** metrics.k8s.io/v1beta1 (metrics-api.ts), served when set. */
  metrics?: MetricsStore;
}

export function createRequestHandler(options: ApiServerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(req, res, options).catch((error: unknown) => {
      const apiError = toApiError(error);
      if (apiError.code >= 500) options.log.error({ err: error, method: req.method, url: req.url }, 'request failed');
      try {
        sendStatus(res, apiError);
      } catch (sendError) {
        options.log.error({ err: sendError }, 'cannot send error response');
        res.destroy();
      }
    });
  };
}

const isStream = (subresource: string | undefined): subresource is StreamSubresource => (streamSubresources as readonly string[]).includes(subresource ?? '');

/** The server's 'upgrade' event: pods/exec, pods/attach and pods/portforward; anything else is refused with a Status. */
export function createUpgradeHandler(options: ApiServerOptions): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    serveUpgrade(req, socket, head, options).catch((error: unknown) => {
      const apiError = toApiError(error);
      if (apiError.code >= 500) options.log.warn({ err: error, method: req.method, url: req.url }, 'stream request failed');
      writeStatusToSocket(socket, apiError);
    });
  };
}

async function serveUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, options: ApiServerOptions): Promise<void> {
  const { path, query } = splitRequestTarget(req.url ?? '/');
  const route = parseResourcePath(path);
  if (route === undefined || route === 'discovery') {
    if (options.access) await checkAccess(req, pathAttributes(req.method ?? 'GET', path), options.access);
    throw new ApiError(400, 'BadRequest', `upgrade requests are served for pods/exec, pods/attach and pods/portforward only, not ${path.slice(0, 200)}`);
  }
  // Connect requests (exec/attach/portforward) are authorized as `create` of the subresource
  // (KEP-4006: websocket GETs need the create permission too).
  if (options.access) await checkAccess(req, resourceAttributes(req.method ?? 'GET', route, query, 'create'), options.access);
  if (route.info.kind !== 'Pod' || route.name === undefined || route.namespace === undefined || !isStream(route.subresource)) {
    throw new ApiError(400, 'BadRequest', `upgrade requests are served for pods/exec, pods/attach and pods/portforward only, not ${path.slice(0, 200)}`);
  }
  if (req.method !== 'GET' && req.method !== 'POST') throw methodNotAllowed();
  const pod = await options.registry.get(route.info, route.namespace, route.name);
  if (!options.podStreams) throw new ApiError(400, 'BadRequest', `pod ${route.name} does not have a host assigned`);
  await options.podStreams(pod, route.subresource, query, req, socket, head);
}

async function handle(req: IncomingMessage, res: ServerResponse, options: ApiServerOptions): Promise<void> {
  const { path, query } = splitRequestTarget(req.url ?? '/');
  const method = req.method ?? 'GET';
  if (['/healthz', '/livez', '/readyz'].includes(path)) {
    const ok = path !== '/readyz' || options.isReady();
    res.writeHead(ok ? 200 : 500, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(ok ? 'ok' : 'not ready');
    return;
  }
  if (options.metrics && (path === `/apis/${metricsGroup}` || path.startsWith(`/apis/${metricsGroup}/`))) {
    // metrics.k8s.io is served here, not by an aggregated server: the same authentication and authorization
    if (options.access) await checkAccess(req, pathAttributes(method, path), options.access);
    return serveMetrics(method, path, query, res, options.metrics, options);
  }
  const route = parseResourcePath(path);
  if (route === undefined || route === 'discovery') {
    if (options.access) await checkAccess(req, pathAttributes(method, path), options.access);
    if (method === 'GET' && serveDiscovery(path, res, options)) return;
    throw new ApiError(404, 'NotFound', 'the server could not find the requested resource', { causes: [] });
  }
  const user = options.access ? await checkAccess(req, resourceAttributes(method, route, query), options.access) : adminUser;
  await serveResource(req, res, route, query, options, user);
}

function serveDiscovery(path: string, res: ServerResponse, options: ApiServerOptions): boolean {
  let body: object | undefined;
  if (path === '/version') body = serverVersion;
  else if (path.startsWith('/openapi/v3')) {
    body = serveOpenApi(path);
    if (!body) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  }
  else if (path === '/api') body = apiVersions(options.serverAddress);
  else if (path === '/apis') body = options.metrics ? withMetricsGroup(apiGroupList()) : apiGroupList();
  else {
    const parts = path.split('/').filter((p) => p !== '');
    const [root, first = '', second = ''] = parts;
    if (root === 'api' && parts.length === 2) body = apiResourceList('', first);
    else if (root === 'apis' && parts.length === 2) body = apiGroup(first);
    else if (root === 'apis' && parts.length === 3) body = apiResourceList(first, second);
    else return false;
    if (!body) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  }
  sendJson(res, 200, body);
  return true;
}

async function serveMetrics(method: string, path: string, query: URLSearchParams, res: ServerResponse, store: MetricsStore, options: ApiServerOptions): Promise<void> {
  let parts: string[];
  try {
    parts = path.split('/').filter((p) => p !== '').map(decodeURIComponent);
  } catch {
    // decodeURIComponent's URIError becomes the client's 400
    throw badRequest(`malformed URL path "${path.slice(0, 200)}"`);
  }
  let body: object | undefined;
  if (parts.length === 2 && method === 'GET') body = metricsApiGroup();
  else if (parts.length === 3 && parts[2] === metricsVersion && method === 'GET') body = metricsApiResourceList();
  else if (parts[2] === metricsVersion) body = await serveMetricsApi(method, parts, query, options.registry, store);
  if (!body) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  sendJson(res, 200, body);
}

function tableMode(req: IncomingMessage, query: URLSearchParams): IncludeObject | undefined {
  if (!wantsTable(req.headers.accept)) return undefined;
  const include = query.get('includeObject');
  return include === 'None' || include === 'Object' ? include : 'Metadata';
}

interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  route: Route;
  query: URLSearchParams;
  options: ApiServerOptions;
  method: string;
  dryRun: boolean;
  table: IncludeObject | undefined;
  user: UserInfo;
}

const notServed = () => new ApiError(404, 'NotFound', 'the server could not find the requested resource');

async function serveResource(req: IncomingMessage, res: ServerResponse, route: Route, query: URLSearchParams, options: ApiServerOptions, user: UserInfo): Promise<void> {
  const { info, namespace, name, subresource } = route;
  const call: Call = { req, res, route, query, options, method: req.method ?? 'GET', dryRun: query.getAll('dryRun').includes('All'), table: tableMode(req, query), user };
  if (subresource !== undefined && !(subresource === 'status' && info.statusSubresource) && !info.extraSubresources.includes(subresource)) throw notServed();
  if (info.namespaced && namespace === undefined && name !== undefined) throw notServed();
  if (info.createOnly && isReviewKind(info.kind)) return serveReview(call, info.kind);
  if (info.createOnly || subresource === 'binding') return serveBinding(call);
  if (name === undefined) return serveCollection(call);
  if (subresource === 'log') {
    if (call.method !== 'GET') throw methodNotAllowed();
    const pod = await options.registry.get(info, namespace, name);
    if (!options.podLogs) throw new ApiError(400, 'BadRequest', `pod ${name} does not have a host assigned`);
    return options.podLogs(pod, query, res);
  }
  if (isStream(subresource)) throw badRequest('Upgrade request required');
  if (subresource === 'scale') return serveScale({ req, res, registry: options.registry, info, namespace, name, method: call.method, dryRun: call.dryRun });
  return serveObject(call, name);
}

/** POST of a TokenReview / SubjectAccessReview / SelfSubjectAccessReview: answered, not stored (auth/reviews.ts). */
async function serveReview({ req, res, route, options, method, user }: Call, kind: Parameters<typeof answerReview>[0]): Promise<void> {
  if (method !== 'POST' || route.name !== undefined || route.subresource !== undefined) throw methodNotAllowed();
  const body = decodeBody(await readBody(req), req.headers['content-type']);
  // Without access control (the REST layer alone) reviews still use the real authenticator and authorizer.
  const access = options.access ?? accessControl(options.registry, { loopbackAdmin: false });
  sendJson(res, 201, await answerReview(kind, body, user, access));
}

/** POST .../bindings (the pod named in the body) or .../pods/<name>/binding. */
async function serveBinding({ req, res, route, method, options }: Call): Promise<void> {
  const { namespace, name } = route;
  if (method !== 'POST' || namespace === undefined || (route.info.createOnly && name !== undefined)) throw methodNotAllowed();
  const body = decodeBody(await readBody(req), req.headers['content-type']);
  const target = name ?? (isRecord(body) && isRecord(body.metadata) && typeof body.metadata.name === 'string' ? body.metadata.name : '');
  if (!target) throw badRequest('a Binding needs metadata.name (the pod)');
  await bindPod(options.registry, namespace, target, body);
  sendJson(res, 201, successStatus({ name: target, kind: 'pods' }, 201));
}

async function serveCollection({ req, res, route, query, options, method, dryRun, table, user }: Call): Promise<void> {
  const { registry } = options;
  const { info, namespace } = route;
  if (method === 'GET' && queryBool(query, 'watch')) {
    const selector = parseSelectors(query.get('labelSelector') ?? undefined, query.get('fieldSelector') ?? undefined);
    const request = { info, namespace, selector, resourceVersion: query.get('resourceVersion') ?? undefined, allowBookmarks: queryBool(query, 'allowWatchBookmarks'), timeoutSeconds: queryInt(query, 'timeoutSeconds'), table };
    return serveWatch(req, res, request, registry, options.cache, options.watch);
  }
  if (method === 'GET') {
    const list = await registry.list(info, namespace, listOptions(query));
    if (table) return sendJson(res, 200, toTable(info.kind, list.items, list.metadata.resourceVersion, table, new Date(), { continue: list.metadata.continue }));
    return sendJson(res, 200, list);
  }
  if (method === 'POST') {
    if (info.namespaced && namespace === undefined) throw methodNotAllowed();
    let body = decodeBody(await readBody(req), req.headers['content-type']);
    admitCreate(user, resourceAttributes(method, route, query), body);
    if (info.kind === 'CertificateSigningRequest') body = await admitCsr(body, user, resourceAttributes(method, route, query));
    const warnings = checkFields(info.kind, info.version, body, parseFieldValidation(query.get('fieldValidation')));
    return sendJson(res, 201, await registry.create(info, namespace, body, dryRun), warnings);
  }
  if (method === 'DELETE') {
    const deleteOptions = await readDeleteOptions(req, query);
    return sendJson(res, 200, await registry.deleteCollection(info, namespace, listOptions(query), deleteOptions));
  }
  throw methodNotAllowed();
}

async function serveObject(call: Call, name: string): Promise<void> {
  const { req, res, route, query, options, method, dryRun, table } = call;
  const { registry } = options;
  const { info, namespace, subresource } = route;
  if (method === 'GET' && queryBool(query, 'watch')) throw badRequest('watch of a single object: use fieldSelector=metadata.name=<name> on the collection');
  // status, resize: get, update and patch only (a DELETE there must not delete the object)
  if (subresource !== undefined && method === 'DELETE') throw methodNotAllowed();
  switch (method) {
    case 'GET': {
      const object = await registry.get(info, namespace, name);
      if (table) return sendJson(res, 200, toTable(info.kind, [object], object.metadata.resourceVersion ?? '', table));
      return sendJson(res, 200, object);
    }
    case 'PUT': {
      const body = decodeBody(await readBody(req), req.headers['content-type']);
      const warnings = checkFields(info.kind, info.version, body, parseFieldValidation(query.get('fieldValidation')));
      return sendJson(res, 200, await registry.update(info, namespace, name, body, subresource, dryRun), warnings);
    }
    case 'PATCH': {
      const warnings: string[] = [];
      return sendJson(res, 200, await servePatch(req, { ...route, name }, registry, dryRun, query, warnings), warnings);
    }
    case 'DELETE': {
      // kube-apiserver: 202 while the object stays (graceful deletion, finalizers), else 200; pods
      // and services answer with the object, other kinds with a Success Status.
      const { object, deleted } = await registry.deleteWithOutcome(info, namespace, name, await readDeleteOptions(req, query));
      if (!deleted) return sendJson(res, 202, object);
      if (strategyFor(info.kind).returnsDeletedObject) return sendJson(res, 200, object);
      return sendJson(res, 200, successStatus({ name, group: info.group, kind: info.name, uid: object.metadata.uid }));
    }
    default:
      throw methodNotAllowed();
  }
}

function listOptions(query: URLSearchParams) {
  return {
    labelSelector: query.get('labelSelector') ?? undefined,
    fieldSelector: query.get('fieldSelector') ?? undefined,
    limit: queryInt(query, 'limit'),
    continue: query.get('continue') ?? undefined,
  };
}

async function readDeleteOptions(req: IncomingMessage, query: URLSearchParams): Promise<DeleteOptions> {
  const raw = await readBody(req);
  const options: DeleteOptions = {};
  if (raw.length > 0 && raw.toString('utf8').trim() !== '') {
    const body = decodeBody(raw, req.headers['content-type']);
    if (!isRecord(body)) throw badRequest('DeleteOptions must be an object');
    if (body.gracePeriodSeconds !== undefined && body.gracePeriodSeconds !== null) {
      if (typeof body.gracePeriodSeconds !== 'number' || !Number.isInteger(body.gracePeriodSeconds)) throw badRequest('gracePeriodSeconds must be an integer');
      options.gracePeriodSeconds = body.gracePeriodSeconds;
    }
    if (isRecord(body.preconditions)) {
      const { uid, resourceVersion } = body.preconditions;
      options.preconditions = { uid: stringOf(uid), resourceVersion: stringOf(resourceVersion) };
    }
    if (typeof body.propagationPolicy === 'string') options.propagationPolicy = body.propagationPolicy;
    if (typeof body.orphanDependents === 'boolean') options.orphanDependents = body.orphanDependents;
    if (Array.isArray(body.dryRun)) options.dryRun = body.dryRun.filter((d): d is string => typeof d === 'string');
  }
  const grace = query.get('gracePeriodSeconds');
  if (grace !== null && grace !== '') {
    const value = Number(grace);
    if (!Number.isInteger(value)) throw badRequest(`invalid gracePeriodSeconds "${grace}"`);
    options.gracePeriodSeconds = value;
  }
  const propagation = query.get('propagationPolicy');
  if (propagation) options.propagationPolicy = propagation;
  if (query.getAll('dryRun').includes('All')) options.dryRun = ['All'];
  return options;
}

async function servePatch(req: IncomingMessage, route: Route & { name: string }, registry: Registry, dryRun: boolean, query: URLSearchParams, warnings: string[]): Promise<KObject> {
  const { info, namespace, name, subresource } = route;
  const type = patchTypeOf(req.headers['content-type'] ?? '');
  if (!type) throw unsupportedMediaType(req.headers['content-type'] ?? '');
  const raw = await readBody(req);
  const patch = decodeBody(raw, type === 'apply' ? 'application/yaml' : 'application/json');
  if (type !== 'json') warnings.push(...checkFields(info.kind, info.version, patch, parseFieldValidation(query.get('fieldValidation'))));
  const doPatch = (current: KObject): unknown => {
    try {
      return applyPatch(type === 'apply' ? 'merge' : type, current, patch);
    } catch (error) {
      if (error instanceof PatchError) {
        if (type === 'json') throw new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${error.message}`);
        throw badRequest(error.message);
      }
      throw error;
    }
  };
  // Server-side apply is approximated as "create if absent, else merge" (no field ownership).
  if (type === 'apply') {
    try {
      await registry.get(info, namespace, name);
    } catch (error) {
      if (error instanceof ApiError && error.code === 404) {
        if (!isRecord(patch)) throw badRequest('an apply patch must be an object');
        const meta = isRecord(patch.metadata) ? patch.metadata : {};
        if (meta.name !== undefined && meta.name !== name) throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${String(name)})`);
        return registry.create(info, namespace, { ...patch, metadata: { ...meta, name } }, dryRun);
      }
      throw error;
    }
  }
  const explicitRv = isRecord(patch) && isRecord(patch.metadata) && typeof patch.metadata.resourceVersion === 'string';
  for (let attempt = 0; ; attempt++) {
    try {
      return await registry.mutate(info, namespace, name, doPatch, subresource, dryRun);
    } catch (error) {
      // A patch without a resourceVersion applies to whatever is current: retry on a race.
      if (!explicitRv && error instanceof ApiError && error.reason === 'Conflict' && error.message.includes('has been modified') && attempt < 5) continue;
      if (error instanceof ApiError && error.code === 404 && error.reason === 'NotFound') throw notFound(info, name);
      throw error;
    }
  }
}
