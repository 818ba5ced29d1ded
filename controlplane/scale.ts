/**
 * The `scale` subresource of deployments and replicasets (autoscaling/v1 Scale,
 * https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/deployment-v1/#get-read-scale-of-the-specified-deployment):
 * GET answers a Scale built from the object (spec.replicas, status.replicas and the selector as
 * a string); PUT and PATCH change only `spec.replicas` of the object, with the Scale's
 * resourceVersion as a precondition when given.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeBody, readBody, sendJson } from './http-util.js';
import { applyPatch, PatchError, patchTypeOf, type Json } from './patch.js';
import type { Registry } from './registry.js';
import type { ResourceInfo } from './resources.js';
import { ApiError, badRequest, invalid, methodNotAllowed, unsupportedMediaType } from './status.js';
import type { KObject } from './storage/types.js';
import { isRecord } from './util.js';
import { obj, selectorString } from './kinds-workload.js';

function toScale(object: KObject): KObject {
  const spec = obj(object.spec);
  const status = obj(object.status);
  const m = object.metadata;
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, creationTimestamp: m.creationTimestamp },
    spec: { replicas: typeof spec.replicas === 'number' ? spec.replicas : 0 },
    status: { replicas: typeof status.replicas === 'number' ? status.replicas : 0, selector: selectorString(spec.selector) },
  };
}

function replicasOf(info: ResourceInfo, scale: unknown): number {
  const replicas = obj(obj(scale).spec).replicas;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0)
    throw invalid('Scale', 'autoscaling', String(obj(obj(scale).metadata).name ?? ''), [{ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`, field: 'spec.replicas' }]);
  if (info.kind === 'ReplicaSet' || info.kind === 'Deployment') return replicas;
  throw badRequest(`${info.name} has no scale subresource`);
}

interface ScaleCall {
  req: IncomingMessage;
  res: ServerResponse;
  registry: Registry;
  info: ResourceInfo;
  namespace: string | undefined;
  name: string;
  method: string;
  dryRun: boolean;
}

export async function serveScale({ req, res, registry, info, namespace, name, method, dryRun }: ScaleCall): Promise<void> {
  if (method === 'GET') return sendJson(res, 200, toScale(await registry.get(info, namespace, name)));
  if (method !== 'PUT' && method !== 'PATCH') throw methodNotAllowed();
  const raw = await readBody(req);
  let change: (scale: KObject) => unknown;
  if (method === 'PUT') {
    const body = decodeBody(raw, req.headers['content-type']);
    if (!isRecord(body)) throw badRequest('the request body must be a Scale object');
    change = () => body;
  } else {
    const type = patchTypeOf(req.headers['content-type'] ?? '');
    if (!type) throw unsupportedMediaType(req.headers['content-type'] ?? '');
    const patch = decodeBody(raw, type === 'apply' ? 'application/yaml' : 'application/json') as Json;
    change = (scale) => {
      try {
        return applyPatch(type === 'apply' ? 'merge' : type, scale as unknown as Json, patch);
      } catch (error) {
        if (error instanceof PatchError) throw badRequest(error.message);
        throw error;
      }
    };
  }
  const updated = await registry.mutate(
    info,
    namespace,
    name,
    (current) => {
      const scale = change(toScale(current));
      const replicas = replicasOf(info, scale);
      const rv = obj(obj(scale).metadata).resourceVersion;
      if (typeof rv === 'string' && rv !== '' && rv !== current.metadata.resourceVersion)
        throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${info.name}.${info.group} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
      current.spec = { ...obj(current.spec), replicas };
      return current;
    },
    undefined,
    dryRun,
  );
  sendJson(res, 200, toScale(updated));
}
