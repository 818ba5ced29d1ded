/**
 * TokenReview / SubjectAccessReview / SelfSubjectAccessReview handlers (controlplane/auth/reviews.ts)
 * with the real authenticator and authorizer: the kubelet API's subresources (nodes/proxy, log,
 * stats, metrics) as a Webhook-mode kubelet asks for them, who may create reviews, and bad input.
 */
import { describe, expect, it } from 'vitest';
import { adminUser, anonymousUser, type AuthenticatorOptions, type UserInfo } from '../../controlplane/auth/authn.js';
import { authorize, type NodeGraph, type RequestAttributes } from '../../controlplane/auth/authz.js';
import type { AccessControl } from '../../controlplane/auth/request.js';
import { answerReview } from '../../controlplane/auth/reviews.js';
import { ApiError } from '../../controlplane/status.js';
import type { KObject } from '../../controlplane/storage/types.js';
import { tokenSecretObject } from '../../lib/bootstrap-token.js';

const node = (name: string): UserInfo => ({ name: `system:node:${name}`, groups: ['system:nodes', 'system:authenticated'] });
const kubeletClient: UserInfo = { name: 'kube-apiserver-kubelet-client', groups: ['system:masters', 'system:authenticated'] };
const jane: UserInfo = { name: 'jane', groups: ['system:authenticated'] };

const graph: NodeGraph = { podNode: async () => undefined, nodeUses: async () => false };
const bootstrapSecret = tokenSecretObject({ id: 'abcdef', secret: '0123456789abcdef', expiration: '2999-01-01T00:00:00Z', usages: ['authentication', 'signing'], extraGroups: [] }) as unknown as KObject;
const authn: AuthenticatorOptions = {
  adminToken: 'admin-token',
  loopbackAdmin: false,
  staticTokens: new Map([['proxy-token', { name: 'system:kube-proxy', groups: [] }]]),
  getSecret: async (namespace, name) => (namespace === 'kube-system' && name === bootstrapSecret.metadata.name ? bootstrapSecret : undefined),
  now: () => new Date('2026-01-01T00:00:00Z'),
};
const access: AccessControl = { authn, graph };

const sar = (user: UserInfo, resourceAttributes: Record<string, string>) => ({
  apiVersion: 'authorization.k8s.io/v1',
  kind: 'SubjectAccessReview',
  spec: { user: user.name, groups: user.groups, resourceAttributes },
});

async function statusOf(body: unknown, kind: 'TokenReview' | 'SubjectAccessReview' | 'SelfSubjectAccessReview' = 'SubjectAccessReview', requester: UserInfo = node('a')) {
  return (await answerReview(kind, body, requester, access)).status as Record<string, unknown>;
}

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

describe('SubjectAccessReview: the kubelet API', () => {
  // pkg/kubelet/server/auth.go: every kubelet path is resource nodes, name = the node, subresource by path.
  it.each(['proxy', 'log', 'stats', 'metrics'])('nodes/%s of node a: the API server kubelet client and admin yes, node b and node a itself no', async (subresource) => {
    for (const verb of ['get', 'create']) {
      const attrs = { verb, resource: 'nodes', subresource, name: 'a' };
      expect(await statusOf(sar(kubeletClient, attrs))).toEqual({ allowed: true });
      expect(await statusOf(sar(adminUser, attrs))).toEqual({ allowed: true });
      expect((await statusOf(sar(node('b'), attrs))).allowed).toBe(false);
      expect((await statusOf(sar(node('a'), attrs))).allowed).toBe(false);
      expect((await statusOf(sar(jane, attrs))).allowed).toBe(false);
    }
  });

  it('answers other attributes with the same authorizer (Node authorizer reasons included), never setting denied', async () => {
    const status = await statusOf(sar(node('b'), { verb: 'get', resource: 'secrets', namespace: 'default', name: 's' }));
    expect(status).toEqual({ allowed: false, reason: "no relationship found between node 'b' and this object" });
    expect(await statusOf(sar(node('b'), { verb: 'get', resource: 'pods', namespace: 'default' }))).toEqual({ allowed: true });
    const nonResource = { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user: 'x', groups: ['system:authenticated'], nonResourceAttributes: { path: '/apis', verb: 'get' } } };
    expect(await statusOf(nonResource)).toEqual({ allowed: true });
    expect(await statusOf({ ...nonResource, spec: { user: 'x', nonResourceAttributes: { path: '/apis', verb: 'get' } } })).toEqual({ allowed: false });
  });

  it('echoes the request as kube-apiserver does', async () => {
    const body = sar(node('b'), { verb: 'get', resource: 'nodes', subresource: 'proxy', name: 'a' });
    expect(await answerReview('SubjectAccessReview', body, kubeletClient, access)).toEqual({ ...body, metadata: { creationTimestamp: null }, status: { allowed: false } });
  });

  it('validation: exactly one kind of attributes, a user or a group, empty metadata, matching kind → 422/400', async () => {
    const both = await failure(answerReview('SubjectAccessReview', { spec: { user: 'x', resourceAttributes: {}, nonResourceAttributes: {} } }, adminUser, access));
    expect(both.code).toBe(422);
    expect(both.message).toContain('spec.nonResourceAttributes: Invalid value: cannot be specified in combination with resourceAttributes');
    const none = await failure(answerReview('SubjectAccessReview', { spec: {} }, adminUser, access));
    expect(none.code).toBe(422);
    expect(none.message).toContain('exactly one of nonResourceAttributes or resourceAttributes must be specified');
    expect(none.message).toContain('spec.user: Invalid value: "": at least one of user or group must be specified');
    expect((await failure(answerReview('SubjectAccessReview', { metadata: { name: 'x' }, spec: { user: 'x', resourceAttributes: {} } }, adminUser, access))).code).toBe(422);
    expect((await failure(answerReview('SubjectAccessReview', { kind: 'TokenReview', spec: { user: 'x', resourceAttributes: {} } }, adminUser, access))).code).toBe(400);
    expect((await failure(answerReview('SubjectAccessReview', 'garbage', adminUser, access))).code).toBe(400);
    expect((await failure(answerReview('SubjectAccessReview', { spec: [1] }, adminUser, access))).code).toBe(400);
  });
});

describe('SelfSubjectAccessReview', () => {
  it('asks about the requesting user, whatever spec names', async () => {
    const body = { spec: { user: 'kubernetes-admin', groups: ['system:masters'], resourceAttributes: { verb: 'get', resource: 'nodes', subresource: 'proxy', name: 'a' } } };
    expect(await statusOf(body, 'SelfSubjectAccessReview', node('b'))).toEqual({ allowed: false });
    expect(await statusOf(body, 'SelfSubjectAccessReview', kubeletClient)).toEqual({ allowed: true });
  });
});

describe('TokenReview', () => {
  const review = (token: unknown) => ({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } });

  it('authenticates with the same authenticator: admin, static and bootstrap tokens', async () => {
    expect(await statusOf(review('admin-token'), 'TokenReview')).toEqual({ authenticated: true, user: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] } });
    expect(await statusOf(review('proxy-token'), 'TokenReview')).toEqual({ authenticated: true, user: { username: 'system:kube-proxy', groups: ['system:authenticated'] } });
    expect(await statusOf(review('abcdef.0123456789abcdef'), 'TokenReview')).toEqual({ authenticated: true, user: { username: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:authenticated'] } });
  });

  it('unknown, wrong-secret and oversized tokens authenticate no one; an empty token is a 400', async () => {
    for (const token of ['nope', 'abcdef.0123456789abcdee', 'x'.repeat(10_000)]) expect(await statusOf(review(token), 'TokenReview')).toEqual({ authenticated: false, user: {}, error: 'invalid bearer token' });
    for (const token of ['', undefined, 42]) expect((await failure(answerReview('TokenReview', review(token), adminUser, access))).message).toBe('token is required for TokenReview in authentication');
  });
});

describe('who may create reviews', () => {
  const create = (group: string, resource: string): RequestAttributes => ({ resourceRequest: true, verb: 'create', path: '', apiGroup: group, resource, subresource: '', namespace: '', name: '' });
  it.each([
    ['node: tokenreviews', node('a'), create('authentication.k8s.io', 'tokenreviews'), true],
    ['node: subjectaccessreviews', node('a'), create('authorization.k8s.io', 'subjectaccessreviews'), true],
    ['admin: subjectaccessreviews', adminUser, create('authorization.k8s.io', 'subjectaccessreviews'), true],
    ['user: subjectaccessreviews', jane, create('authorization.k8s.io', 'subjectaccessreviews'), false],
    ['user: tokenreviews', jane, create('authentication.k8s.io', 'tokenreviews'), false],
    ['user: selfsubjectaccessreviews', jane, create('authorization.k8s.io', 'selfsubjectaccessreviews'), true],
    ['anonymous: selfsubjectaccessreviews', anonymousUser, create('authorization.k8s.io', 'selfsubjectaccessreviews'), false],
    ['node: get subjectaccessreviews', node('a'), { ...create('authorization.k8s.io', 'subjectaccessreviews'), verb: 'get' }, false],
  ])('%s', async (_label, user, attrs, allowed) => {
    expect((await authorize(user, attrs, graph)).allowed).toBe(allowed);
  });
});
