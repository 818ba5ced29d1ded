/**
 * Authorization, as the union kubeadm configures (`--authorization-mode=Node,RBAC`) with the
 * bindings kubeadm and the default RBAC policy create. Pure policy: decisions take the user, the
 * request's attributes and a NodeGraph (which objects a node's pods use), nothing else.
 * - system:masters: everything (cluster-admin).
 * - The Node authorizer (https://kubernetes.io/docs/reference/access-authn-authz/node/) for
 *   `system:node:<name>` in `system:nodes`: its static rules (bootstrappolicy.NodeRules, the
 *   system:node role) and, for secrets / configmaps / persistentvolumeclaims, only `get` (or
 *   list/watch of one object by metadata.name) of objects a pod bound to the node references;
 *   leases only its own in kube-node-lease. What a node may *change* is narrowed further by
 *   NodeRestriction (./node-restriction.ts).
 * - system:bootstrappers: the system:node-bootstrapper role, create/get/list/watch of CSRs
 *   (https://kubernetes.io/docs/reference/access-authn-authz/kubelet-tls-bootstrapping/).
 * - system:kube-proxy: system:node-proxier (the default binding names this user).
 * - The overlay: flannel's ClusterRole (get pods; get/list/watch nodes; patch nodes/status),
 *   for the user flannel's service account would be; and knode's per-node overlay identity
 *   `system:knode:overlay:<node>` (what a joined node gets through a CSR): the same reads, and
 *   nodes/status of its own node only.
 * - Anyone: /healthz, /livez, /readyz, /version (system:public-info-viewer); authenticated
 *   users: discovery (system:discovery, system:basic-user); anonymous: `get` of the cluster-info
 *   ConfigMap in kube-public (kubeadm's bootstrap-signer-clusterinfo Role).
 */
import { authenticatedGroup, mastersGroup, type UserInfo } from './authn.js';

export interface RequestAttributes {
  resourceRequest: boolean;
  verb: string;
  /** Non-resource requests. */
  path: string;
  apiGroup: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
}

/** What the Node authorizer's graph answers: which node a pod is bound to, and what its pods use. */
export interface NodeGraph {
  podNode(namespace: string, name: string): Promise<string | undefined>;
  /** A pod bound to `node` references this secret / configmap / persistentvolumeclaim. */
  nodeUses(node: string, resource: 'secrets' | 'configmaps' | 'persistentvolumeclaims', namespace: string, name: string): Promise<boolean>;
}

type Decision = { allowed: true } | { allowed: false; reason: string };

const nodesGroup = 'system:nodes';
export const kubeProxyUser = 'system:kube-proxy';
export const overlayUser = 'system:serviceaccount:kube-flannel:flannel';
/** knode's overlay identity of one node (narrower than flannel's: its own Node's status only). */
export const nodeOverlayPrefix = 'system:knode:overlay:';

const allow: Decision = { allowed: true };
const deny = (reason = ''): Decision => ({ allowed: false, reason });

/** `system:node:<name>` in group `system:nodes` (NodeIdentifier); undefined for anyone else. */
export function nodeNameOf(user: UserInfo): string | undefined {
  if (!user.groups.includes(nodesGroup) || !user.name.startsWith('system:node:')) return undefined;
  const name = user.name.slice('system:node:'.length);
  return name === '' ? undefined : name;
}

type Rule = [verbs: string[], group: string, resources: string[]];
const read = ['get', 'list', 'watch'];

function matches(rules: Rule[], attrs: RequestAttributes): boolean {
  const resource = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
  return rules.some(([verbs, group, resources]) => verbs.includes(attrs.verb) && group === attrs.apiGroup && resources.includes(resource));
}

/** bootstrappolicy.NodeRules (the system:node role) minus what the graph decides. */
const nodeRules: Rule[] = [
  [read, '', ['services']],
  [['get'], '', ['endpoints']],
  // Not in the system:node role: knode's per-node DNS reads slices with the node's credential.
  [read, 'discovery.k8s.io', ['endpointslices']],
  [['create', 'get', 'list', 'watch', 'update', 'patch'], '', ['nodes']],
  [['update', 'patch'], '', ['nodes/status']],
  [['create', 'update', 'patch'], '', ['events']],
  [['create', 'update', 'patch'], 'events.k8s.io', ['events']],
  [read, '', ['pods']],
  [['create', 'delete'], '', ['pods']],
  [['update', 'patch'], '', ['pods/status']],
  [['create'], '', ['pods/eviction']],
  [['create', 'get', 'list', 'watch'], 'certificates.k8s.io', ['certificatesigningrequests']],
];

const graphResources = new Set(['secrets', 'configmaps', 'persistentvolumeclaims']);

async function authorizeNode(node: string, attrs: RequestAttributes, graph: NodeGraph): Promise<Decision> {
  if (!attrs.resourceRequest) return deny();
  if (attrs.apiGroup === '' && graphResources.has(attrs.resource)) {
    if (!read.includes(attrs.verb)) return deny('can only read resources of this type');
    if (attrs.subresource) return deny('cannot read subresource');
    if (!attrs.namespace) return deny('can only read namespaced object of this type');
    if (!attrs.name) return deny('No Object name found');
    const used = await graph.nodeUses(node, attrs.resource as 'secrets', attrs.namespace, attrs.name);
    return used ? allow : deny(`no relationship found between node '${node}' and this object`);
  }
  if (attrs.apiGroup === 'coordination.k8s.io' && attrs.resource === 'leases') {
    if (!['get', 'create', 'update', 'patch', 'delete'].includes(attrs.verb)) return deny('can only get, create, update, patch, or delete a node lease');
    if (attrs.namespace !== 'kube-node-lease') return deny('can only access leases in the kube-node-lease namespace');
    if (attrs.verb !== 'create' && attrs.name !== node) return deny('can only access node lease with the same name as the requesting node');
    return allow;
  }
  return matches(nodeRules, attrs) ? allow : deny();
}

const proxierRules: Rule[] = [
  [['list', 'watch'], '', ['endpoints', 'services']],
  [read, '', ['nodes']],
  [['create', 'patch', 'update'], '', ['events']],
  [['create', 'patch', 'update'], 'events.k8s.io', ['events']],
  [['list', 'watch'], 'discovery.k8s.io', ['endpointslices']],
];

const flannelRules: Rule[] = [
  [['get'], '', ['pods']],
  [read, '', ['nodes']],
  [['patch'], '', ['nodes/status']],
];

const bootstrapperRules: Rule[] = [[['create', 'get', 'list', 'watch'], 'certificates.k8s.io', ['certificatesigningrequests']]];

const publicPaths = new Set(['/healthz', '/livez', '/readyz', '/version']);

function discoveryPath(path: string): boolean {
  return path === '/api' || path === '/apis' || /^\/apis?\/[^/]+(\/[^/]+)?$/.test(path) || path.startsWith('/openapi/');
}

export async function authorize(user: UserInfo, attrs: RequestAttributes, graph: NodeGraph): Promise<Decision> {
  if (user.groups.includes(mastersGroup)) return allow;
  if (!attrs.resourceRequest) {
    if (attrs.verb === 'get' && publicPaths.has(attrs.path)) return allow;
    if (attrs.verb === 'get' && user.groups.includes(authenticatedGroup) && discoveryPath(attrs.path)) return allow;
    return deny();
  }
  if (user.groups.includes('system:unauthenticated')) {
    const clusterInfo = attrs.verb === 'get' && attrs.apiGroup === '' && attrs.resource === 'configmaps' && !attrs.subresource && attrs.namespace === 'kube-public' && attrs.name === 'cluster-info';
    return clusterInfo ? allow : deny();
  }
  const node = nodeNameOf(user);
  if (node !== undefined) return authorizeNode(node, attrs, graph);
  if (user.groups.includes('system:bootstrappers') && matches(bootstrapperRules, attrs)) return allow;
  if (user.name === kubeProxyUser && matches(proxierRules, attrs)) return allow;
  if (user.name === overlayUser && matches(flannelRules, attrs)) return allow;
  if (user.name.startsWith(nodeOverlayPrefix) && matches(flannelRules, attrs)) {
    const own = user.name.slice(nodeOverlayPrefix.length);
    return attrs.subresource === 'status' && attrs.name !== own ? deny(`can only patch the status of node "${own}"`) : allow;
  }
  return deny();
}

/** responsewriters.forbiddenMessage + the authorizer's reason. */
export function forbiddenMessage(user: UserInfo, attrs: RequestAttributes, reason: string): string {
  const tail = reason ? `: ${reason}` : '';
  if (!attrs.resourceRequest) return `forbidden: User ${JSON.stringify(user.name)} cannot ${attrs.verb} path ${JSON.stringify(attrs.path)}${tail}`;
  const resource = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
  const scope = attrs.namespace ? `in the namespace ${JSON.stringify(attrs.namespace)}` : 'at the cluster scope';
  const why = `User ${JSON.stringify(user.name)} cannot ${attrs.verb} resource ${JSON.stringify(resource)} in API group ${JSON.stringify(attrs.apiGroup)} ${scope}${tail}`;
  const qualified = attrs.apiGroup ? `${attrs.resource}.${attrs.apiGroup}` : attrs.resource;
  return attrs.name ? `${qualified} ${JSON.stringify(attrs.name)} is forbidden: ${why}` : `${qualified} is forbidden: ${why}`;
}

/** The verb of a resource request (k8s.io/apiserver RequestInfoFactory). */
export function requestVerb(method: string, named: boolean, watch: boolean): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
      return watch ? 'watch' : named ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

/** list/watch restricted to one object by `metadata.name=<n>` is authorized as that name (RequestInfo). */
export function singleObjectName(fieldSelector: string | null): string {
  if (!fieldSelector) return '';
  const match = /^metadata\.name==?([^,]+)$/.exec(fieldSelector.trim());
  return match?.[1] ?? '';
}
