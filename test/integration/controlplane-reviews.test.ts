/**
 * The review APIs a Webhook-mode kubelet uses (TokenReview, SubjectAccessReview) and
 * SelfSubjectAccessReview, against a TLS control plane, driven by clients no one here wrote:
 * kubectl (create -f, auth can-i, api-resources), openssl (client certificates signed by the
 * cluster CA) and curl. Node B asking for node A's kubelet API (nodes/proxy) is refused; the API
 * server's kubelet client (O system:masters) is allowed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { run } from '../../lib/exec.js';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';

const env = await prerequisites('command:kubectl', 'command:openssl', 'command:curl');

let cp: TestControlPlane;
let dir: string;
const users: Record<string, string> = {};

async function kubectl(kubeconfig: string, ...args: string[]) {
  return run(['kubectl', '--kubeconfig', kubeconfig, ...args], { allowFailure: true, timeoutMs: 60_000 });
}

/** A key and a client certificate for `subject`, signed with openssl by the cluster CA; returns a kubeconfig. */
async function certUser(name: string, subject: string): Promise<string> {
  const pki = join(dir, 'data', 'pki');
  const [key, csr, crt] = ['key', 'csr', 'crt'].map((ext) => join(dir, `${name}.${ext}`)) as [string, string, string];
  await run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', subject], { timeoutMs: 30_000 });
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  await run(['openssl', 'x509', '-req', '-in', csr, '-CA', join(pki, 'ca.crt'), '-CAkey', join(pki, 'ca.key'), '-CAcreateserial', '-days', '1', '-out', crt, '-extfile', join(dir, 'client.ext')], { timeoutMs: 30_000 });
  const file = join(dir, `${name}.kubeconfig`);
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: cp.url, 'certificate-authority': join(pki, 'ca.crt') } }],
      users: [{ name: 'u', user: { 'client-certificate': crt, 'client-key': key } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    }),
  );
  return file;
}

function manifest(name: string, object: object): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(object));
  return file;
}

const nodeGroups = ['system:nodes', 'system:authenticated'];
const kubeletSar = (user: string, groups: string[], subresource: string) => ({
  apiVersion: 'authorization.k8s.io/v1',
  kind: 'SubjectAccessReview',
  spec: { user, groups, resourceAttributes: { verb: 'create', resource: 'nodes', subresource, name: 'node-a' } },
});

async function sarStatus(kubeconfig: string, name: string, body: object): Promise<Record<string, unknown>> {
  // --validate=false: kubectl validates create-only kinds on the client with OpenAPI v2, which knode does not serve.
  const out = await kubectl(kubeconfig, 'create', '--validate=false', '-f', manifest(name, body), '-o', 'json');
  expect(out.stderr).toBe('');
  return (JSON.parse(out.stdout) as { status: Record<string, unknown> }).status;
}

describe.skipIf(env.skip)('TokenReview / SubjectAccessReview / SelfSubjectAccessReview (issue 20)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'knode-reviews-'));
    cp = await startTestControlPlane({ secure: true, controllers: false, dataDir: join(dir, 'data') });
    users.nodeA = await certUser('node-a', '/O=system:nodes/CN=system:node:node-a');
    users.nodeB = await certUser('node-b', '/O=system:nodes/CN=system:node:node-b');
    users.kubeletClient = await certUser('kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client');
    users.jane = await certUser('jane', '/CN=jane');
  });
  afterAll(async () => {
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('discovery lists the review resources with only create', async () => {
    const out = await kubectl(cp.kubeconfigPath, 'api-resources', '--no-headers', '-o', 'wide');
    expect(out.stdout).toMatch(/tokenreviews\s+authentication\.k8s\.io\/v1\s+false\s+TokenReview\s+create/);
    expect(out.stdout).toMatch(/subjectaccessreviews\s+authorization\.k8s\.io\/v1\s+false\s+SubjectAccessReview\s+create/);
    expect(out.stdout).toMatch(/selfsubjectaccessreviews\s+authorization\.k8s\.io\/v1\s+false\s+SelfSubjectAccessReview\s+create/);
  });

  it("a node asks (as its kubelet would): node B on node A's kubelet API is denied, the API server's kubelet client allowed", async () => {
    for (const subresource of ['proxy', 'log', 'stats', 'metrics']) {
      expect((await sarStatus(users.nodeA!, `b-${subresource}`, kubeletSar('system:node:node-b', nodeGroups, subresource))).allowed).toBe(false);
      expect(await sarStatus(users.nodeA!, `client-${subresource}`, kubeletSar('kube-apiserver-kubelet-client', ['system:masters', 'system:authenticated'], subresource))).toEqual({ allowed: true });
    }
  });

  it('only admins and nodes may create SubjectAccessReviews and TokenReviews', async () => {
    const out = await kubectl(users.jane!, 'create', '--validate=false', '-f', manifest('jane-sar', kubeletSar('jane', [], 'proxy')), '-o', 'json');
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('subjectaccessreviews.authorization.k8s.io is forbidden: User "jane" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope');
    const tr = await kubectl(users.jane!, 'create', '--validate=false', '-f', manifest('jane-tr', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'x' } }), '-o', 'json');
    expect(tr.stderr).toContain('tokenreviews.authentication.k8s.io is forbidden');
  });

  it('TokenReview: the admin token authenticates, garbage does not, an empty token is a 400', async () => {
    const review = (token: string) => ({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } });
    expect(await sarStatus(users.nodeA!, 'tr-admin', review(cp.adminToken!))).toEqual({ authenticated: true, user: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] } });
    expect(await sarStatus(users.nodeA!, 'tr-bad', review('abcdef.0000000000000000'))).toEqual({ authenticated: false, user: {}, error: 'invalid bearer token' });
    const empty = await run(['curl', '-s', '--cacert', join(dir, 'data', 'pki', 'ca.crt'), '--cert', join(dir, 'node-a.crt'), '--key', join(dir, 'node-a.key'), '-H', 'Content-Type: application/json', '-d', JSON.stringify(review('')), `${cp.url}/apis/authentication.k8s.io/v1/tokenreviews`], { timeoutMs: 30_000 });
    expect(JSON.parse(empty.stdout)).toMatchObject({ kind: 'Status', code: 400, reason: 'BadRequest', message: 'token is required for TokenReview in authentication' });
  });

  it('kubectl auth can-i (SelfSubjectAccessReview) answers for the credential in use', async () => {
    // kubectl prints yes/no on stdout; anything else (an error) is shown instead for the diagnosis.
    const canI = async (kubeconfig: string, ...args: string[]) => {
      const out = await kubectl(kubeconfig, 'auth', 'can-i', ...args);
      return out.stdout.trim() || out.stderr;
    };
    expect(await canI(users.nodeB!, 'get', 'nodes/node-a', '--subresource=proxy')).toBe('no');
    expect(await canI(users.nodeB!, 'get', 'pods')).toBe('yes');
    expect(await canI(users.nodeB!, 'delete', 'namespaces')).toBe('no');
    expect(await canI(users.kubeletClient!, 'get', 'nodes/node-a', '--subresource=proxy')).toBe('yes');
    expect(await canI(users.jane!, 'list', 'pods')).toBe('no');
    expect(await canI(cp.kubeconfigPath, 'create', 'pods')).toBe('yes');
  });

  it('bad reviews are refused with a Status: both kinds of attributes, no subject, wrong methods', async () => {
    const bad = await kubectl(users.nodeA!, 'create', '--validate=false', '-f', manifest('bad', { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { resourceAttributes: { verb: 'get' }, nonResourceAttributes: { path: '/', verb: 'get' } } }));
    expect(bad.stderr).toContain('The SubjectAccessReview "" is invalid');
    expect(bad.stderr).toContain('spec.nonResourceAttributes: Invalid value: cannot be specified in combination with resourceAttributes');
    expect(bad.stderr).toContain('at least one of user or group must be specified');
    const get = await kubectl(cp.kubeconfigPath, 'get', '--raw', '/apis/authorization.k8s.io/v1/subjectaccessreviews');
    expect(get.code).not.toBe(0);
    expect(get.stderr).toContain('MethodNotAllowed');
  });
});
