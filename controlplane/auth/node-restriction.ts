/**
 * The NodeRestriction admission plugin (plugin/pkg/admission/noderestriction;
 * https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#noderestriction):
 * what a `system:node:<name>` user may change among what the Node authorizer lets it touch.
 * - pods: create only mirror pods bound to itself that reference no secrets, configmaps,
 *   persistentvolumeclaims or service account; delete and update status only of its own pods;
 * - nodes: create/update/patch only its own Node;
 * - leases: only its own;
 * - CSRs of the kubelet signers: only for `system:node:<itself>` (checked where the CSR is parsed).
 * Pure: `nodeRestriction` needs only the attributes and the graph; `admitNodeCreate` the body.
 */
import { isRecord } from '../util.js';
import type { NodeGraph, RequestAttributes } from './authz.js';
import { podReferences } from './graph.js';
import type { KObject } from '../storage/types.js';

const mirrorAnnotation = 'kubernetes.io/config.mirror';

/** Why the request is refused, or undefined. For requests whose target is named in the URL. */
export async function nodeRestriction(node: string, attrs: RequestAttributes, graph: NodeGraph): Promise<string | undefined> {
  if (!attrs.resourceRequest || attrs.apiGroup !== '') return undefined;
  const mutating = ['update', 'patch', 'delete'].includes(attrs.verb);
  if (attrs.resource === 'nodes' && mutating && attrs.name !== node) return `node "${node}" is not allowed to modify node "${attrs.name}"`;
  if (attrs.resource === 'pods' && attrs.name && mutating) {
    const boundTo = await graph.podNode(attrs.namespace, attrs.name);
    if (attrs.subresource === 'status' && boundTo !== node) return `node "${node}" can only update pod status for pods with spec.nodeName set to itself`;
    if (!attrs.subresource && attrs.verb === 'delete' && boundTo !== node) return `node "${node}" can only delete pods with spec.nodeName set to itself`;
  }
  return undefined;
}

/** Why a create by this node is refused (the body as sent), or undefined. */
export function admitNodeCreate(node: string, attrs: RequestAttributes, body: unknown): string | undefined {
  if (attrs.apiGroup === 'coordination.k8s.io' && attrs.resource === 'leases') {
    const name = isRecord(body) && isRecord(body.metadata) ? body.metadata.name : undefined;
    return name === node ? undefined : 'can only access node lease with the same name as the requesting node';
  }
  if (attrs.apiGroup !== '' || attrs.subresource) return undefined;
  if (attrs.resource === 'nodes') {
    const name = isRecord(body) && isRecord(body.metadata) ? body.metadata.name : undefined;
    return name === node ? undefined : `node "${node}" is not allowed to modify node "${String(name)}"`;
  }
  if (attrs.resource !== 'pods') return undefined;
  const metadata = isRecord(body) && isRecord(body.metadata) ? body.metadata : {};
  const annotations = isRecord(metadata.annotations) ? metadata.annotations : {};
  if (annotations[mirrorAnnotation] === undefined) return `pod does not have "${mirrorAnnotation}" annotation, node "${node}" can only create mirror pods`;
  const spec = isRecord(body) && isRecord(body.spec) ? body.spec : {};
  if (spec.nodeName !== node) return `node "${node}" can only create pods with spec.nodeName set to itself`;
  const owners = Array.isArray(metadata.ownerReferences) ? metadata.ownerReferences : [];
  if (owners.some((o) => !isRecord(o) || o.kind !== 'Node' || o.name !== node)) return `node "${node}" can only create pods with an owner reference set to itself`;
  if (typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== '') return `node "${node}" can not create pods that reference serviceaccounts`;
  const refs = podReferences({ ...(body as KObject), metadata: { ...metadata } });
  const uses = (['secrets', 'configmaps', 'persistentvolumeclaims'] as const).find((kind) => refs[kind].size > 0);
  if (uses) return `node "${node}" can not create pods that reference ${uses}`;
  return undefined;
}
