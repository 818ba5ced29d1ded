/**
 * Discovery documents (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api):
 * the legacy unaggregated form (APIVersions, APIGroupList, APIResourceList), which kubectl
 * falls back to when the aggregated `application/json;g=apidiscovery.k8s.io` form is not served.
 */
import { resources, resourceVerbs, type ResourceInfo } from './resources.js';
import { knodeGitVersion, kubernetesMajor, kubernetesMinor } from '../lib/version.js';

export const serverVersion = {
  major: kubernetesMajor,
  minor: kubernetesMinor,
  gitVersion: knodeGitVersion,
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.23',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export function apiVersions(serverAddress: string): object {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function groups(): string[] {
  return [...new Set(resources.filter((r) => r.group !== '').map((r) => r.group))];
}

export function apiGroupList(): object {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: groups().map((name) => ({
      name,
      versions: [{ groupVersion: `${name}/v1`, version: 'v1' }],
      preferredVersion: { groupVersion: `${name}/v1`, version: 'v1' },
    })),
  };
}

export function apiGroup(name: string): object | undefined {
  if (!groups().includes(name)) return undefined;
  return {
    kind: 'APIGroup',
    apiVersion: 'v1',
    name,
    versions: [{ groupVersion: `${name}/v1`, version: 'v1' }],
    preferredVersion: { groupVersion: `${name}/v1`, version: 'v1' },
  };
}

function entries(info: ResourceInfo): object[] {
  const main = {
    name: info.name,
    singularName: info.singularName,
    namespaced: info.namespaced,
    kind: info.kind,
    verbs: info.createOnly ? ['create'] : resourceVerbs,
    ...(info.shortNames.length > 0 ? { shortNames: info.shortNames } : {}),
    ...(['pods', 'services', 'deployments', 'replicasets', 'daemonsets', 'jobs', 'cronjobs'].includes(info.name) ? { categories: ['all'] } : {}),
    storageVersionHash: Buffer.from(info.kind).toString('base64').slice(0, 11),
  };
  const subs: object[] = [];
  if (info.statusSubresource) subs.push({ name: `${info.name}/status`, singularName: '', namespaced: info.namespaced, kind: info.kind, verbs: ['get', 'patch', 'update'] });
  if (info.extraSubresources.includes('binding')) subs.push({ name: `${info.name}/binding`, singularName: '', namespaced: true, kind: 'Binding', verbs: ['create'] });
  if (info.extraSubresources.includes('scale')) subs.push({ name: `${info.name}/scale`, singularName: '', namespaced: true, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
  if (info.extraSubresources.includes('resize')) subs.push({ name: `${info.name}/resize`, singularName: '', namespaced: true, kind: info.kind, verbs: ['get', 'patch', 'update'] });
  if (info.extraSubresources.includes('log')) subs.push({ name: `${info.name}/log`, singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] });
  return [main, ...subs];
}

/** APIResourceList for a group version, or undefined when it is not served. */
export function apiResourceList(group: string, version: string): object | undefined {
  const list = resources.filter((r) => r.group === group && r.version === version);
  if (list.length === 0) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group ? `${group}/${version}` : version,
    resources: list.flatMap(entries),
  };
}
