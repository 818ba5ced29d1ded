/**
 * A minimal OpenAPI v3 description (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#openapi-v3):
 * the root index `/openapi/v3` and one document per group version listing the resource paths
 * with their `x-kubernetes-group-version-kind` and the `fieldValidation` query parameter on PATCH.
 * That is what kubectl 1.32 reads to decide that the server validates fields itself
 * (cli-runtime queryParamVerifierV3), so `kubectl apply/create` work without --validate=false.
 * The workload groups (apps/v1, batch/v1) carry component schemas (openapi-schemas.ts) for
 * `kubectl explain`; other groups are not described (kubectl falls back to its compiled-in types).
 */
import { kubernetesVersion } from '../lib/version.js';
import { createHash } from 'node:crypto';
import { resources, type ResourceInfo } from './resources.js';
import { componentSchemas } from './openapi-schemas.js';

/** Groups whose kinds are described (openapi-schemas.ts); the others keep kubectl's compiled-in types. */
const schemaGroups: ReadonlySet<string> = new Set(['apps', 'batch']);

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

const groupVersions = (): { group: string; version: string }[] => {
  const seen = new Map<string, { group: string; version: string }>();
  for (const r of resources) seen.set(`${r.group}/${r.version}`, { group: r.group, version: r.version });
  return [...seen.values()];
};

const queryParams = ['dryRun', 'fieldManager', 'fieldValidation', 'pretty'].map((name) => ({ name, in: 'query', schema: { type: 'string' }, uniqueItems: true }));

function operations(info: ResourceInfo): Record<string, object> {
  const gvk = { group: info.group, version: info.version, kind: info.kind };
  const op = (action: string, withParams: boolean) => ({
    operationId: `${action}${info.kind}`,
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk,
    ...(withParams ? { parameters: queryParams } : {}),
    responses: { '200': { description: 'OK' } },
  });
  const base = `/${gvPath(info.group, info.version)}/${info.namespaced ? 'namespaces/{namespace}/' : ''}${info.name}`;
  const paths: Record<string, object> = {
    [base]: { get: op('list', false), post: op('post', true), delete: op('deletecollection', false) },
    [`${base}/{name}`]: { get: op('get', false), put: op('put', true), patch: op('patch', true), delete: op('delete', false) },
  };
  if (info.statusSubresource) paths[`${base}/{name}/status`] = { get: op('get', false), put: op('put', true), patch: op('patch', true) };
  return paths;
}

function openApiDocument(group: string, version: string): object | undefined {
  const list = resources.filter((r) => r.group === group && r.version === version && !r.createOnly);
  if (list.length === 0) return undefined;
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes (knode control plane)', version: kubernetesVersion },
    paths: Object.assign({}, ...list.map(operations)),
    components: { schemas: schemaGroups.has(group) ? componentSchemas(list.map((r) => ({ group: r.group, version: r.version, kind: r.kind }))) : {} },
  };
}

function hashOf(doc: object): string {
  return createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase().slice(0, 128);
}

function openApiRoot(): object {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const { group, version } of groupVersions()) {
    const path = gvPath(group, version);
    paths[path] = { serverRelativeURL: `/openapi/v3/${path}?hash=${hashOf(openApiDocument(group, version) as object)}` };
  }
  return { paths };
}

/** Serves /openapi/v3 and /openapi/v3/<gv path>; undefined for anything else. */
export function serveOpenApi(path: string): object | undefined {
  if (path === '/openapi/v3') return openApiRoot();
  const rest = path.replace(/^\/openapi\/v3\//, '');
  if (rest === path) return undefined;
  const parts = rest.split('/');
  if (parts[0] === 'api' && parts.length === 2) return openApiDocument('', parts[1] as string);
  if (parts[0] === 'apis' && parts.length === 3) return openApiDocument(parts[1] as string, parts[2] as string);
  return undefined;
}
