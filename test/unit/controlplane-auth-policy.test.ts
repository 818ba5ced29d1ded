/**
 * The pure policy of controlplane/auth and the CSR controllers: authorizer decisions (Node
 * authorizer, kubeadm's roles, anonymous), NodeRestriction, the approver and the signer plan.
 */
import { describe, expect, it } from 'vitest';
import { adminUser, anonymousUser, bearerToken, parseTokenAuthFile, type UserInfo } from '../../controlplane/auth/authn.js';
import { authorize, forbiddenMessage, kubeProxyUser, overlayUser, requestVerb, singleObjectName, type NodeGraph, type RequestAttributes } from '../../controlplane/auth/authz.js';
import { admitNodeCreate, nodeRestriction } from '../../controlplane/auth/node-restriction.js';
import { approvalDecision, signingPlan, type CsrFacts } from '../../controlplane/controllers/csr-policy.js';
import { signedClusterInfoData } from '../../controlplane/controllers/bootstrap-tokens.js';
import { verifyDetached } from '../../lib/bootstrap-token.js';

const node = (name: string): UserInfo => ({ name: `system:node:${name}`, groups: ['system:nodes', 'system:authenticated'] });
const bootstrapper: UserInfo = { name: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:bootstrappers:kubeadm:default-node-token', 'system:authenticated'] };
const proxy: UserInfo = { name: kubeProxyUser, groups: ['system:authenticated'] };
const overlay: UserInfo = { name: overlayUser, groups: ['system:authenticated'] };

/** Pods: ns/name → node and what they reference. */
const pods: Record<string, { node: string; secrets?: string[]; configmaps?: string[] }> = {
  'default/a1': { node: 'a', secrets: ['a-secret'], configmaps: ['a-config'] },
  'default/b1': { node: 'b', secrets: ['b-secret'] },
};
const graph: NodeGraph = {
  podNode: async (ns, name) => pods[`${ns}/${name}`]?.node,
  nodeUses: async (n, kind, ns, name) =>
    Object.entries(pods).some(([key, pod]) => key.startsWith(`${ns}/`) && pod.node === n && (kind === 'secrets' ? pod.secrets : kind === 'configmaps' ? pod.configmaps : [])?.includes(name)),
};

function attrs(verb: string, resource: string, more: Partial<RequestAttributes> = {}): RequestAttributes {
  const [res, sub = ''] = resource.split('/');
  return { resourceRequest: true, verb, path: '', apiGroup: '', resource: res!, subresource: sub, namespace: '', name: '', ...more };
}
const path = (p: string, verb = 'get'): RequestAttributes => ({ resourceRequest: false, verb, path: p, apiGroup: '', resource: '', subresource: '', namespace: '', name: '' });

describe('authorizer', () => {
  it.each([
    ['admin: anything', adminUser, attrs('delete', 'nodes', { name: 'x' }), true],
    ['anonymous: cluster-info', anonymousUser, attrs('get', 'configmaps', { namespace: 'kube-public', name: 'cluster-info' }), true],
    ['anonymous: other configmap', anonymousUser, attrs('get', 'configmaps', { namespace: 'kube-public', name: 'other' }), false],
    ['anonymous: list configmaps', anonymousUser, attrs('list', 'configmaps', { namespace: 'kube-public' }), false],
    ['anonymous: /version', anonymousUser, path('/version'), true],
    ['anonymous: /api discovery', anonymousUser, path('/api'), false],
    ['bootstrapper: /apis discovery', bootstrapper, path('/apis'), true],
    ['bootstrapper: create CSR', bootstrapper, attrs('create', 'certificatesigningrequests', { apiGroup: 'certificates.k8s.io' }), true],
    ['bootstrapper: watch CSRs', bootstrapper, attrs('watch', 'certificatesigningrequests', { apiGroup: 'certificates.k8s.io' }), true],
    ['bootstrapper: approve CSR', bootstrapper, attrs('update', 'certificatesigningrequests/approval', { apiGroup: 'certificates.k8s.io', name: 'x' }), false],
    ['bootstrapper: get nodes', bootstrapper, attrs('get', 'nodes', { name: 'a' }), false],
    ['bootstrapper: cluster-info', bootstrapper, attrs('get', 'configmaps', { namespace: 'kube-public', name: 'cluster-info' }), false],
    ['node: list pods', node('a'), attrs('list', 'pods'), true],
    ['node: watch services', node('a'), attrs('watch', 'services'), true],
    ['node: list nodes', node('a'), attrs('list', 'nodes'), true],
    ['node: patch nodes/status', node('a'), attrs('patch', 'nodes/status', { name: 'a' }), true],
    ['node: delete its Node', node('a'), attrs('delete', 'nodes', { name: 'a' }), false],
    // KEP-1287: the system:node role has no pods/resize; only users resize, the kubelet actuates
    ['node: resize its own pod', node('a'), attrs('patch', 'pods/resize', { namespace: 'default', name: 'a1' }), false],
    ['node: update pods/resize', node('a'), attrs('update', 'pods/resize', { namespace: 'default', name: 'a1' }), false],
    ['node: create events', node('a'), attrs('create', 'events', { namespace: 'default' }), true],
    ['node: get referenced secret', node('a'), attrs('get', 'secrets', { namespace: 'default', name: 'a-secret' }), true],
    ['node: watch referenced secret by name', node('a'), attrs('watch', 'secrets', { namespace: 'default', name: 'a-secret' }), true],
    ['node: get secret of node b', node('a'), attrs('get', 'secrets', { namespace: 'default', name: 'b-secret' }), false],
    ['node: list secrets', node('a'), attrs('list', 'secrets', { namespace: 'default' }), false],
    ['node: update a referenced secret', node('a'), attrs('update', 'secrets', { namespace: 'default', name: 'a-secret' }), false],
    ['node: get referenced configmap', node('a'), attrs('get', 'configmaps', { namespace: 'default', name: 'a-config' }), true],
    ['node: own lease', node('a'), attrs('update', 'leases', { apiGroup: 'coordination.k8s.io', namespace: 'kube-node-lease', name: 'a' }), true],
    ['node: lease of node b', node('a'), attrs('update', 'leases', { apiGroup: 'coordination.k8s.io', namespace: 'kube-node-lease', name: 'b' }), false],
    ['node: exec into pods', node('a'), attrs('create', 'pods/exec', { namespace: 'default', name: 'a1' }), false],
    ['node: create a deployment', node('a'), attrs('create', 'deployments', { apiGroup: 'apps', namespace: 'default' }), false],
    ['node: create own CSR', node('a'), attrs('create', 'certificatesigningrequests', { apiGroup: 'certificates.k8s.io' }), true],
    ['user named system:node:x without the group', { name: 'system:node:a', groups: ['system:authenticated'] }, attrs('list', 'pods'), false],
    ['kube-proxy: watch endpointslices', proxy, attrs('watch', 'endpointslices', { apiGroup: 'discovery.k8s.io' }), true],
    ['kube-proxy: list nodes', proxy, attrs('list', 'nodes'), true],
    ['kube-proxy: get secrets', proxy, attrs('get', 'secrets', { namespace: 'default', name: 'a-secret' }), false],
    ['overlay: patch nodes/status', overlay, attrs('patch', 'nodes/status', { name: 'b' }), true],
    ['overlay: patch nodes', overlay, attrs('patch', 'nodes', { name: 'b' }), false],
    ['overlay: watch nodes', overlay, attrs('watch', 'nodes'), true],
    ['node overlay: patch own nodes/status', { name: 'system:knode:overlay:a', groups: ['system:authenticated'] }, attrs('patch', 'nodes/status', { name: 'a' }), true],
    ['node overlay: patch node b status', { name: 'system:knode:overlay:a', groups: ['system:authenticated'] }, attrs('patch', 'nodes/status', { name: 'b' }), false],
    ['node overlay: list nodes', { name: 'system:knode:overlay:a', groups: ['system:authenticated'] }, attrs('list', 'nodes'), true],
    ['node overlay: get secrets', { name: 'system:knode:overlay:a', groups: ['system:authenticated'] }, attrs('get', 'secrets', { namespace: 'default', name: 'a-secret' }), false],
  ])('%s', async (_name, user, request, allowed) => {
    expect((await authorize(user, request, graph)).allowed).toBe(allowed);
  });

  it('words a denial as kube-apiserver does', async () => {
    const request = attrs('get', 'secrets', { namespace: 'default', name: 'b-secret' });
    const decision = await authorize(node('a'), request, graph);
    expect(decision.allowed).toBe(false);
    expect(forbiddenMessage(node('a'), request, decision.allowed ? '' : decision.reason)).toBe(
      'secrets "b-secret" is forbidden: User "system:node:a" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node \'a\' and this object',
    );
    expect(forbiddenMessage(anonymousUser, attrs('list', 'pods'), '')).toBe('pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" at the cluster scope');
    expect(forbiddenMessage(anonymousUser, path('/api'), '')).toBe('forbidden: User "system:anonymous" cannot get path "/api"');
  });

  it('verbs and single-object list/watch', () => {
    expect(requestVerb('GET', false, true)).toBe('watch');
    expect(requestVerb('GET', true, false)).toBe('get');
    expect(requestVerb('DELETE', false, false)).toBe('deletecollection');
    expect(singleObjectName('metadata.name=a-secret')).toBe('a-secret');
    expect(singleObjectName('metadata.name=a,type=x')).toBe('');
  });
});

describe('NodeRestriction', () => {
  it.each([
    ['patch own Node', attrs('patch', 'nodes', { name: 'a' }), undefined],
    ['patch node b', attrs('patch', 'nodes', { name: 'b' }), 'node "a" is not allowed to modify node "b"'],
    ['update status of node b', attrs('update', 'nodes/status', { name: 'b' }), 'node "a" is not allowed to modify node "b"'],
    ['status of own pod', attrs('patch', 'pods/status', { namespace: 'default', name: 'a1' }), undefined],
    ['status of node b\'s pod', attrs('patch', 'pods/status', { namespace: 'default', name: 'b1' }), 'node "a" can only update pod status for pods with spec.nodeName set to itself'],
    ['delete node b\'s pod', attrs('delete', 'pods', { namespace: 'default', name: 'b1' }), 'node "a" can only delete pods with spec.nodeName set to itself'],
    ['delete own pod', attrs('delete', 'pods', { namespace: 'default', name: 'a1' }), undefined],
  ])('%s', async (_name, request, why) => {
    expect(await nodeRestriction('a', request, graph)).toBe(why);
  });

  const mirror = (extra: Record<string, unknown> = {}, nodeName = 'a') => ({
    metadata: { name: 'static-a', annotations: { 'kubernetes.io/config.mirror': 'x' } },
    spec: { nodeName, containers: [{ name: 'c', image: 'i' }], ...extra },
  });
  it.each([
    ['a mirror pod for itself', mirror(), undefined],
    ['a pod without the mirror annotation', { metadata: { name: 'p' }, spec: { nodeName: 'a' } }, 'pod does not have "kubernetes.io/config.mirror" annotation, node "a" can only create mirror pods'],
    ['a mirror pod for node b', mirror({}, 'b'), 'node "a" can only create pods with spec.nodeName set to itself'],
    ['a mirror pod using a secret', mirror({ volumes: [{ name: 'v', secret: { secretName: 's' } }] }), 'node "a" can not create pods that reference secrets'],
    ['a mirror pod using a service account', mirror({ serviceAccountName: 'sa' }), 'node "a" can not create pods that reference serviceaccounts'],
  ])('create %s', (_name, body, why) => {
    expect(admitNodeCreate('a', attrs('create', 'pods', { namespace: 'default' }), body)).toBe(why);
  });

  it('Node and Lease creates only in its own name', () => {
    expect(admitNodeCreate('a', attrs('create', 'nodes'), { metadata: { name: 'a' } })).toBeUndefined();
    expect(admitNodeCreate('a', attrs('create', 'nodes'), { metadata: { name: 'b' } })).toMatch(/not allowed to modify node "b"/);
    const lease = attrs('create', 'leases', { apiGroup: 'coordination.k8s.io', namespace: 'kube-node-lease' });
    expect(admitNodeCreate('a', lease, { metadata: { name: 'a' } })).toBeUndefined();
    expect(admitNodeCreate('a', lease, { metadata: { name: 'b' } })).toMatch(/same name as the requesting node/);
  });
});

const clientCsr = (more: Partial<CsrFacts> = {}): CsrFacts => ({
  signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
  username: bootstrapper.name,
  groups: bootstrapper.groups,
  usages: ['digital signature', 'client auth'],
  commonName: 'system:node:a',
  organizations: ['system:nodes'],
  dnsNames: [],
  ipAddresses: [],
  emailAddresses: [],
  uris: [],
  ...more,
});
const servingCsr = (more: Partial<CsrFacts> = {}): CsrFacts =>
  clientCsr({ signerName: 'kubernetes.io/kubelet-serving', username: 'system:node:a', groups: node('a').groups, usages: ['digital signature', 'server auth'], dnsNames: ['a'], ipAddresses: ['10.0.0.1'], ...more });

const component = (cn: string, more: Partial<CsrFacts> = {}): CsrFacts =>
  clientCsr({ signerName: 'kubernetes.io/kube-apiserver-client', username: 'system:node:a', groups: node('a').groups, commonName: cn, organizations: [], ...more });

describe('CSR approver', () => {
  it.each([
    ['client CSR from a bootstrap token', clientCsr(), true],
    ['client renewal by the node itself', clientCsr({ username: 'system:node:a', groups: node('a').groups }), true],
    ['client CSR of node A for node B', clientCsr({ username: 'system:node:a', groups: node('a').groups, commonName: 'system:node:b' }), false],
    ['client CSR from an ordinary user', clientCsr({ username: 'alice', groups: ['system:authenticated'] }), false],
    ['client CSR with a SAN', clientCsr({ dnsNames: ['a'] }), false],
    ['client CSR with another organization', clientCsr({ organizations: ['system:masters'] }), false],
    ['client CSR with server auth', clientCsr({ usages: ['client auth', 'server auth'] }), false],
    ['serving CSR naming the node\'s addresses', servingCsr(), true],
    ['serving CSR with a foreign IP', servingCsr({ ipAddresses: ['10.9.9.9'] }), false],
    ['serving CSR of node A for node B', servingCsr({ commonName: 'system:node:b' }), false],
    ['serving CSR from a bootstrap token', servingCsr({ username: bootstrapper.name, groups: bootstrapper.groups }), false],
    ['another signer', clientCsr({ signerName: 'example.com/other' }), false],
    ['node A asks for the kube-proxy identity', component('system:kube-proxy'), true],
    ['node A asks for its overlay identity', component('system:knode:overlay:a'), true],
    ['node A asks for node B\'s overlay identity', component('system:knode:overlay:b'), false],
    ['node A asks for kube-proxy with O=system:masters', component('system:kube-proxy', { organizations: ['system:masters'] }), false],
    ['node A asks for an admin identity', component('kubernetes-admin'), false],
    ['a bootstrap token asks for the kube-proxy identity', component('system:kube-proxy', { username: bootstrapper.name, groups: bootstrapper.groups }), false],
  ])('%s', (_name, csr, approve) => {
    expect(approvalDecision(csr, ['10.0.0.1', 'a']).approve).toBe(approve);
  });

  it('leaves a serving CSR whose Node does not exist', () => {
    expect(approvalDecision(servingCsr(), undefined).approve).toBe(false);
  });
});

describe('CSR signer plan', () => {
  const now = new Date('2026-01-01T00:00:00.400Z');
  it('honours expirationSeconds within [min, max]', () => {
    const plan = signingPlan(clientCsr(), 30, { maxSeconds: 86_400, minSeconds: 10 }, now);
    expect(plan).toMatchObject({ notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2026-01-01T00:00:30Z'), extendedUsages: ['client auth'], keyUsages: ['digital signature'] });
    expect(signingPlan(clientCsr(), 5, { maxSeconds: 86_400, minSeconds: 10 }, now)).toMatchObject({ notAfter: new Date('2026-01-01T00:00:10Z') });
    expect(signingPlan(clientCsr(), undefined, { maxSeconds: 86_400, minSeconds: 10 }, now)).toMatchObject({ notBefore: new Date('2025-12-31T23:55:00Z'), notAfter: new Date('2026-01-02T00:00:00Z') });
  });
  it('fails a malformed kubelet CSR', () => {
    expect(signingPlan(clientCsr({ organizations: [] }), undefined, { maxSeconds: 86_400, minSeconds: 600 }, now)).toBe('subject organization is not system:nodes');
    expect(signingPlan(servingCsr({ dnsNames: [], ipAddresses: [] }), undefined, { maxSeconds: 86_400, minSeconds: 600 }, now)).toMatch(/at least one DNS or IP/);
  });
});

describe('bootstrap signer and token parsing', () => {
  it('signs cluster-info for each token and drops stale signatures', () => {
    const token = { id: 'abcdef', secret: '0123456789abcdef' };
    const data = signedClusterInfoData({ kubeconfig: 'k', 'jws-kubeconfig-zzzzzz': 'old' }, [token]);
    expect(Object.keys(data).sort()).toEqual(['jws-kubeconfig-abcdef', 'kubeconfig']);
    expect(verifyDetached(data['jws-kubeconfig-abcdef'] as string, 'k', token)).toBe(true);
  });
  it('reads bearer headers as the bearertoken authenticator', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer abc')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
  it('parses --token-auth-file', () => {
    const tokens = parseTokenAuthFile('# comment\nt1,system:kube-proxy,uid1\nt2,alice,uid2,"dev,ops"\n');
    expect(tokens.get('t1')).toEqual({ name: 'system:kube-proxy', groups: [] });
    expect(tokens.get('t2')).toEqual({ name: 'alice', groups: ['dev', 'ops'] });
    expect(() => parseTokenAuthFile('only-one-field')).toThrow(/line 1/);
  });
});
