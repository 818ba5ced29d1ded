/** The resources this API serves, as kube-apiserver lists them in discovery. */

export interface ResourceInfo {
  /** Plural, as in the URL. */
  name: string;
  singularName: string;
  kind: string;
  group: string;
  version: string;
  namespaced: boolean;
  shortNames: string[];
  /** Has a `/status` subresource: the main endpoint ignores status changes and vice versa. */
  statusSubresource: boolean;
  /** Subresources besides status. */
  extraSubresources: string[];
  /** Changes to `spec` bump `metadata.generation`. */
  generation: boolean;
  /** Not stored: only `create` (core/v1 `bindings`, which binds a pod; the review APIs of ./auth/reviews.ts). */
  createOnly?: boolean;
}

const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function core(name: string, kind: string, namespaced: boolean, shortNames: string[], statusSubresource: boolean, extra: string[] = []): ResourceInfo {
  return {
    name,
    singularName: kind.toLowerCase(),
    kind,
    group: '',
    version: 'v1',
    namespaced,
    shortNames,
    statusSubresource,
    extraSubresources: extra,
    generation: statusSubresource,
  };
}

/** A resource of a named group (apps/v1, batch/v1) with a status subresource and generation. */
function grouped(group: string, name: string, kind: string, shortNames: string[], statusSubresource: boolean, extra: string[] = []): ResourceInfo {
  return { ...core(name, kind, true, shortNames, statusSubresource, extra), group };
}

export const resources: ResourceInfo[] = [
  core('namespaces', 'Namespace', false, ['ns'], true),
  core('nodes', 'Node', false, ['no'], true),
  core('pods', 'Pod', true, ['po'], true, ['binding', 'log', 'exec', 'attach', 'portforward', 'resize']),
  core('services', 'Service', true, ['svc'], true),
  core('endpoints', 'Endpoints', true, ['ep'], false),
  core('events', 'Event', true, ['ev'], false),
  core('configmaps', 'ConfigMap', true, ['cm'], false),
  core('secrets', 'Secret', true, [], false),
  core('serviceaccounts', 'ServiceAccount', true, ['sa'], false),
  { ...core('bindings', 'Binding', true, [], false), createOnly: true },
  {
    name: 'leases',
    singularName: 'lease',
    kind: 'Lease',
    group: 'coordination.k8s.io',
    version: 'v1',
    namespaced: true,
    shortNames: [],
    statusSubresource: false,
    extraSubresources: [],
    generation: false,
  },
  {
    name: 'endpointslices',
    singularName: 'endpointslice',
    kind: 'EndpointSlice',
    group: 'discovery.k8s.io',
    version: 'v1',
    namespaced: true,
    shortNames: [],
    statusSubresource: false,
    extraSubresources: [],
    generation: false,
  },
  {
    name: 'certificatesigningrequests',
    singularName: 'certificatesigningrequest',
    kind: 'CertificateSigningRequest',
    group: 'certificates.k8s.io',
    version: 'v1',
    namespaced: false,
    shortNames: ['csr'],
    statusSubresource: true,
    extraSubresources: ['approval'],
    generation: false,
  },
  // Create-only reviews (k8s.io/api authentication/v1, authorization/v1): answered, never stored.
  { ...core('tokenreviews', 'TokenReview', false, [], false), group: 'authentication.k8s.io', createOnly: true },
  { ...core('subjectaccessreviews', 'SubjectAccessReview', false, [], false), group: 'authorization.k8s.io', createOnly: true },
  { ...core('selfsubjectaccessreviews', 'SelfSubjectAccessReview', false, [], false), group: 'authorization.k8s.io', createOnly: true },
  grouped('apps', 'deployments', 'Deployment', ['deploy'], true, ['scale']),
  grouped('apps', 'replicasets', 'ReplicaSet', ['rs'], true, ['scale']),
  grouped('apps', 'daemonsets', 'DaemonSet', ['ds'], true),
  grouped('apps', 'controllerrevisions', 'ControllerRevision', [], false),
  grouped('batch', 'jobs', 'Job', [], true),
  grouped('batch', 'cronjobs', 'CronJob', ['cj'], true),
];

export const resourceVerbs = verbs;

/** The resources that are stored (everything but create-only ones). */
export const storedResources = resources.filter((r) => !r.createOnly);

export function groupVersion(info: ResourceInfo): string {
  return info.group ? `${info.group}/${info.version}` : info.version;
}

/** A resource of the table by its plural name; a missing one is a programming error. */
export function resourceNamed(name: string): ResourceInfo {
  const found = resources.find((r) => r.name === name);
  if (!found) throw new Error(`the resource table has no "${name}"`);
  return found;
}

export function findResource(group: string, version: string, name: string): ResourceInfo | undefined {
  return resources.find((info) => info.group === group && info.version === version && info.name === name);
}

export function resourceByKind(kind: string): ResourceInfo | undefined {
  return resources.find((info) => info.kind === kind);
}

/** Storage key: /registry/<group|core>/<resource>/[<namespace>/]<name>. */
export function storageKey(info: ResourceInfo, namespace: string | undefined, name: string): string {
  return `${storagePrefix(info, namespace)}${name}`;
}

export function storagePrefix(info: ResourceInfo, namespace?: string): string {
  const base = `/registry/${info.group || 'core'}/${info.name}/`;
  return info.namespaced && namespace ? `${base}${namespace}/` : base;
}
