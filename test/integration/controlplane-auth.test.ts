/**
 * Authentication, authorization and node certificates against a control plane that serves TLS
 * on loopback exactly as it serves a node address (issue 20), driven by clients no one here
 * wrote: the real kubectl, openssl (CSRs, keys) and curl. Covers: 401 for expired, unknown and
 * malformed tokens; a bootstrap token's CSR auto-approved and signed; that certificate as node
 * A: 403 patching node B, reading a Secret no pod of A uses, creating a non-mirror pod; allowed
 * on its own objects; a CSR of node A for node B's name refused, and one by the admin left
 * pending until `kubectl certificate approve`; cluster-info's JWS; the token cleaner; CSR bounds.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { run } from '../../lib/exec.js';
import { caCertHash, parseToken, tokenSecretObject, verifyDetached } from '../../lib/bootstrap-token.js';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites('command:kubectl', 'command:openssl', 'command:curl');

let cp: TestControlPlane;
let dir: string;
const admin = () => cp.kubeconfigPath;

async function kubectl(kubeconfig: string, ...args: string[]) {
  return run(['kubectl', '--kubeconfig', kubeconfig, ...args], { allowFailure: true, timeoutMs: 60_000 });
}

/** A kubeconfig with a bearer token or a client certificate, trusting the cluster CA. */
function kubeconfigFor(name: string, user: Record<string, string>): string {
  const file = join(dir, `${name}.kubeconfig`);
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: cp.url, 'certificate-authority-data': Buffer.from(cp.caPem!).toString('base64') } }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    }),
  );
  return file;
}

async function curl(...args: string[]): Promise<{ code: number; body: Record<string, unknown> }> {
  const out = await run(['curl', '-s', '--cacert', join(dir, 'ca.crt'), '-w', '\n%{http_code}', ...args], { allowFailure: true, timeoutMs: 30_000 });
  const lines = out.stdout.trimEnd().split('\n');
  const code = Number(lines.pop());
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(lines.join('\n')) as Record<string, unknown>;
  } catch {
    body = { text: lines.join('\n') };
  }
  return { code, body };
}

/** An openssl-made key and CSR; returns the PEM CSR and the key file. */
async function opensslCsr(name: string, subject: string, san?: string): Promise<{ csr: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const out = join(dir, `${name}.csr`);
  await run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', out, '-subj', subject, ...(san ? ['-addext', `subjectAltName=${san}`] : [])], { timeoutMs: 30_000 });
  return { csr: readFileSync(out, 'utf8'), key };
}

function csrManifest(name: string, csr: string, signerName: string, usages: string[], expirationSeconds?: number): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name }, spec: { request: Buffer.from(csr).toString('base64'), signerName, usages, ...(expirationSeconds ? { expirationSeconds } : {}) } }));
  return file;
}

async function csrCondition(name: string): Promise<string> {
  const out = await kubectl(admin(), 'get', 'csr', name, '--no-headers');
  return out.stdout.trim().split(/\s+/).pop() ?? '';
}

async function issuedCertificate(name: string): Promise<string> {
  await waitFor(`CSR ${name} issued`, async () => (await csrCondition(name)) === 'Approved,Issued', 20_000);
  const out = await kubectl(admin(), 'get', 'csr', name, '-o', 'jsonpath={.status.certificate}');
  return Buffer.from(out.stdout, 'base64').toString('utf8');
}

let token = '';
let nodeA = '';

describe.skipIf(env.skip)('control plane authentication and authorization (issue 20)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'knode-auth-'));
    cp = await startTestControlPlane({ secure: true, controllers: true, csrMinDurationSeconds: 5 });
    writeFileSync(join(dir, 'ca.crt'), cp.caPem!);
    const created = await run(['node', 'dist/bin/knode.js', 'token', 'create', '--kubeconfig', admin(), '--ttl', '1h'], { timeoutMs: 30_000 });
    token = created.stdout.trim();
    expect(parseToken(token)).toBeDefined();
  });
  afterAll(async () => {
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('401 for unknown, malformed and expired tokens; 403 for anonymous outside cluster-info', async () => {
    const expired = tokenSecretObject({ id: 'expird', secret: '0123456789abcdef', expiration: '2020-01-01T00:00:00Z', usages: ['authentication'], extraGroups: [] });
    // Created through the API with a far-away expiration first would be cleaned; write it now and use it at once.
    await cp.registry.create((await import('../../controlplane/resources.js')).resourceNamed('secrets'), 'kube-system', expired);
    for (const bad of ['expird.0123456789abcdef', 'zzzzzz.0123456789abcdef', 'not-a-token', `${token.slice(0, 7)}wrongwrongwrong1`]) {
      const { code, body } = await curl('-H', `Authorization: Bearer ${bad}`, `${cp.url}/api/v1/namespaces`);
      expect(code).toBe(401);
      expect(body).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401, message: 'Unauthorized' });
    }
    const anonymous = await curl(`${cp.url}/api/v1/namespaces/kube-system/secrets`);
    expect(anonymous.code).toBe(403);
    expect(anonymous.body.message).toBe('secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in API group "" in the namespace "kube-system"');
    expect((await curl(`${cp.url}/version`)).code).toBe(200);
    // A bootstrap token may only ask for certificates.
    const asBootstrap = await kubectl(kubeconfigFor('bootstrap', { token }), 'get', 'nodes');
    expect(asBootstrap.code).not.toBe(0);
    expect(asBootstrap.stderr).toContain(`nodes is forbidden: User "system:bootstrap:${token.slice(0, 6)}" cannot list resource "nodes" in API group "" at the cluster scope`);
  });

  it('cluster-info is readable anonymously and its JWS verifies with the token', async () => {
    await waitFor('cluster-info', async () => (await curl(`${cp.url}/api/v1/namespaces/kube-public/configmaps/cluster-info`)).body.data !== undefined, 10_000);
    const { code, body } = await curl(`${cp.url}/api/v1/namespaces/kube-public/configmaps/cluster-info`);
    expect(code).toBe(200);
    const data = body.data as Record<string, string>;
    const parsed = parseToken(token)!;
    await waitFor('signature', async () => ((await curl(`${cp.url}/api/v1/namespaces/kube-public/configmaps/cluster-info`)).body.data as Record<string, string>)[`jws-kubeconfig-${parsed.id}`] !== undefined, 10_000);
    const signed = (await curl(`${cp.url}/api/v1/namespaces/kube-public/configmaps/cluster-info`)).body.data as Record<string, string>;
    expect(verifyDetached(signed[`jws-kubeconfig-${parsed.id}`]!, signed.kubeconfig!, parsed)).toBe(true);
    expect(verifyDetached(signed[`jws-kubeconfig-${parsed.id}`]!, signed.kubeconfig!, { ...parsed, secret: 'x'.repeat(16) })).toBe(false);
    expect(data.kubeconfig).toContain(Buffer.from(cp.caPem!).toString('base64'));
    const join = await run(['node', 'dist/bin/knode.js', 'token', 'create', '--kubeconfig', admin(), '--print-join-command'], { timeoutMs: 30_000 });
    expect(join.stdout.trim()).toMatch(new RegExp(`^knode join --server ${cp.url.replace(/\./g, '\\.')} --token [a-z0-9]{6}\\.[a-z0-9]{16} --discovery-token-ca-cert-hash ${caCertHash(cp.caPem!)}$`));
  });

  it('a bootstrap token gets a node client certificate (auto-approved, signed by the cluster CA)', async () => {
    const { csr, key } = await opensslCsr('node-a', '/O=system:nodes/CN=system:node:node-a');
    const created = await kubectl(kubeconfigFor('bootstrap', { token }), 'create', '-f', csrManifest('node-csr-a', csr, 'kubernetes.io/kube-apiserver-client-kubelet', ['digital signature', 'client auth'], 3600));
    expect(created.stderr).toBe('');
    const cert = await issuedCertificate('node-csr-a');
    writeFileSync(join(dir, 'node-a.crt'), cert);
    const verified = await run(['openssl', 'verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'node-a.crt')], { allowFailure: true });
    expect(verified.stdout).toContain('OK');
    const listed = await kubectl(admin(), 'get', 'csr', 'node-csr-a');
    expect(listed.stdout).toMatch(/node-csr-a\s+\S+\s+kubernetes\.io\/kube-apiserver-client-kubelet\s+system:bootstrap:[a-z0-9]{6}\s+1h\s+Approved,Issued/);
    nodeA = kubeconfigFor('node-a', { 'client-certificate-data': Buffer.from(cert).toString('base64'), 'client-key-data': readFileSync(key).toString('base64') });
  });

  it('node A: its own Node and pods yes; node B, unreferenced Secrets and non-mirror pods 403', async () => {
    const nodeFile = (name: string) => {
      const file = join(dir, `${name}-node.yaml`);
      writeFileSync(file, stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name } }));
      return file;
    };
    expect((await kubectl(nodeA, 'create', '-f', nodeFile('node-a'))).code).toBe(0);
    expect((await kubectl(admin(), 'create', '-f', nodeFile('node-b'))).code).toBe(0);
    expect((await kubectl(nodeA, 'label', 'node', 'node-a', 'mine=yes')).code).toBe(0);
    const other = await kubectl(nodeA, 'label', 'node', 'node-b', 'mine=no');
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain('nodes "node-b" is forbidden: node "node-a" is not allowed to modify node "node-b"');

    await kubectl(admin(), 'create', 'secret', 'generic', 'used', '--from-literal=a=b');
    await kubectl(admin(), 'create', 'secret', 'generic', 'unused', '--from-literal=a=b');
    const podFile = join(dir, 'pod.yaml');
    writeFileSync(podFile, stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'uses-secret', namespace: 'default' }, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'busybox' }], volumes: [{ name: 's', secret: { secretName: 'used' } }] } }));
    expect((await kubectl(admin(), 'create', '-f', podFile)).code).toBe(0);
    expect((await kubectl(nodeA, 'get', 'secret', 'used', '-o', 'name')).stdout.trim()).toBe('secret/used');
    const unused = await kubectl(nodeA, 'get', 'secret', 'unused');
    expect(unused.stderr).toContain('secrets "unused" is forbidden: User "system:node:node-a" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node \'node-a\' and this object');

    const plain = join(dir, 'plain-pod.yaml');
    writeFileSync(plain, stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'sneaky', namespace: 'default' }, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'busybox' }] } }));
    const sneaky = await kubectl(nodeA, 'create', '-f', plain);
    expect(sneaky.stderr).toContain('pods "sneaky" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "node-a" can only create mirror pods');
    const mirror = join(dir, 'mirror-pod.yaml');
    writeFileSync(mirror, stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'static-node-a', namespace: 'default', annotations: { 'kubernetes.io/config.mirror': 'abc' } }, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'busybox' }] } }));
    expect((await kubectl(nodeA, 'create', '-f', mirror)).code).toBe(0);
    expect((await kubectl(nodeA, 'get', 'pods', '-A', '-o', 'name')).stdout).toContain('pod/uses-secret');
    const deploy = await kubectl(nodeA, 'create', 'deployment', 'x', '--image=busybox');
    expect(deploy.stderr).toContain('User "system:node:node-a" cannot create resource "deployments" in API group "apps" in the namespace "default"');
  });

  it('a CSR of node A for node B is refused; one the admin files waits for kubectl certificate approve', async () => {
    const { csr } = await opensslCsr('node-b', '/O=system:nodes/CN=system:node:node-b');
    const refused = await kubectl(nodeA, 'create', '-f', csrManifest('a-for-b', csr, 'kubernetes.io/kube-apiserver-client-kubelet', ['digital signature', 'client auth']));
    expect(refused.stderr).toContain('certificatesigningrequests.certificates.k8s.io "a-for-b" is forbidden: can only create a node CSR with CN=system:node:node-a');
    expect((await kubectl(admin(), 'create', '-f', csrManifest('admin-for-b', csr, 'kubernetes.io/kube-apiserver-client-kubelet', ['digital signature', 'client auth']))).code).toBe(0);
    // The approver looks at it (and writes nothing): still pending after the CSR controller saw it.
    const { csr: other } = await opensslCsr('renew-a', '/O=system:nodes/CN=system:node:node-a');
    expect((await kubectl(nodeA, 'create', '-f', csrManifest('renew-a', other, 'kubernetes.io/kube-apiserver-client-kubelet', ['digital signature', 'client auth'], 600))).code).toBe(0);
    await issuedCertificate('renew-a');
    expect(await csrCondition('admin-for-b')).toBe('Pending');
    expect((await kubectl(admin(), 'certificate', 'approve', 'admin-for-b')).stdout).toContain('approved');
    await issuedCertificate('admin-for-b');
  });

  it('a node gets narrower identities for its proxy and overlay (kube-apiserver-client CSRs)', async () => {
    const proxy = await opensslCsr('proxy', '/CN=system:kube-proxy');
    expect((await kubectl(nodeA, 'create', '-f', csrManifest('proxy-a', proxy.csr, 'kubernetes.io/kube-apiserver-client', ['digital signature', 'client auth']))).code).toBe(0);
    const proxyCert = await issuedCertificate('proxy-a');
    const asProxy = kubeconfigFor('proxy-a', { 'client-certificate-data': Buffer.from(proxyCert).toString('base64'), 'client-key-data': readFileSync(proxy.key).toString('base64') });
    expect((await kubectl(asProxy, 'get', 'services', '-A', '-o', 'name')).stdout).toContain('service/kubernetes');
    expect((await kubectl(asProxy, 'get', 'secrets', '-A')).stderr).toContain('User "system:kube-proxy" cannot list resource "secrets"');
    const overlay = await opensslCsr('overlay', '/CN=system:knode:overlay:node-a');
    expect((await kubectl(nodeA, 'create', '-f', csrManifest('overlay-a', overlay.csr, 'kubernetes.io/kube-apiserver-client', ['digital signature', 'client auth']))).code).toBe(0);
    const overlayCert = await issuedCertificate('overlay-a');
    writeFileSync(join(dir, 'overlay-a.crt'), overlayCert);
    // As flannel does it: a merge PATCH of nodes/status (its ClusterRole has no get on nodes/status, so not through kubectl patch).
    const annotate = (node: string) =>
      curl('--cert', join(dir, 'overlay-a.crt'), '--key', overlay.key, '-X', 'PATCH', '-H', 'Content-Type: application/merge-patch+json', '--data', JSON.stringify({ metadata: { annotations: { 'flannel.alpha.coreos.com/public-ip': '10.1.2.3' } } }), `${cp.url}/api/v1/nodes/${node}/status`);
    expect((await annotate('node-a')).code).toBe(200);
    const other = await annotate('node-b');
    expect(other.code).toBe(403);
    expect(other.body.message).toBe('nodes "node-b" is forbidden: User "system:knode:overlay:node-a" cannot patch resource "nodes/status" in API group "" at the cluster scope: can only patch the status of node "node-a"');
    expect((await kubectl(admin(), 'get', 'node', 'node-a', '-o', 'jsonpath={.metadata.annotations}')).stdout).toContain('10.1.2.3');
  });

  it('a serving CSR is approved only for the node\'s own addresses', async () => {
    await kubectl(admin(), 'patch', 'node', 'node-a', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: '10.1.2.3' }, { type: 'Hostname', address: 'node-a' }] } }));
    const own = await opensslCsr('serving-own', '/O=system:nodes/CN=system:node:node-a', 'DNS:node-a,IP:10.1.2.3');
    expect((await kubectl(nodeA, 'create', '-f', csrManifest('serving-own', own.csr, 'kubernetes.io/kubelet-serving', ['digital signature', 'server auth']))).code).toBe(0);
    const cert = await issuedCertificate('serving-own');
    writeFileSync(join(dir, 'serving.crt'), cert);
    const text = (await run(['openssl', 'x509', '-in', join(dir, 'serving.crt'), '-noout', '-ext', 'subjectAltName,extendedKeyUsage'])).stdout;
    expect(text).toContain('DNS:node-a, IP Address:10.1.2.3');
    expect(text).toContain('TLS Web Server Authentication');
    const foreign = await opensslCsr('serving-foreign', '/O=system:nodes/CN=system:node:node-a', 'IP:10.9.9.9');
    expect((await kubectl(nodeA, 'create', '-f', csrManifest('serving-foreign', foreign.csr, 'kubernetes.io/kubelet-serving', ['digital signature', 'server auth']))).code).toBe(0);
    // One CSR controller works in order: once a later CSR is issued, the foreign one was decided on.
    const later = await opensslCsr('sentinel', '/O=system:nodes/CN=system:node:node-a');
    expect((await kubectl(nodeA, 'create', '-f', csrManifest('sentinel', later.csr, 'kubernetes.io/kube-apiserver-client-kubelet', ['digital signature', 'client auth']))).code).toBe(0);
    await issuedCertificate('sentinel');
    expect(await csrCondition('serving-foreign')).toBe('Pending');
  });

  it('bad CSRs: garbage, a wrong signature, over 64 KiB, missing signerName → 422', async () => {
    const { csr } = await opensslCsr('bad', '/O=system:nodes/CN=system:node:node-a');
    const lines = csr.split('\n');
    const middle = Math.floor(lines.length / 2);
    lines[middle] = lines[middle]!.replace(/[A-Za-z]/, (c) => (c === 'A' ? 'B' : 'A'));
    const tampered = lines.join('\n');
    const big = `${csr}\n${'x'.repeat(70_000)}`;
    for (const [name, request, signer] of [
      ['garbage', 'not a csr', 'kubernetes.io/kube-apiserver-client-kubelet'],
      ['tampered', tampered, 'kubernetes.io/kube-apiserver-client-kubelet'],
      ['big', big, 'kubernetes.io/kube-apiserver-client-kubelet'],
      ['nosigner', csr, ''],
    ] as const) {
      const out = await kubectl(admin(), 'create', '-f', csrManifest(`bad-${name}`, request, signer, ['client auth']));
      expect(out.code, name).not.toBe(0);
      expect(out.stderr, name).toMatch(/is invalid: spec\.(request|signerName)/);
    }
  });

  it('the token cleaner deletes an expired token Secret', async () => {
    const soon = new Date(Date.now() + 1500).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const secret = tokenSecretObject({ id: 'soonex', secret: '0123456789abcdef', expiration: soon, usages: ['authentication', 'signing'], extraGroups: [] });
    const file = join(dir, 'soon.yaml');
    writeFileSync(file, stringify(secret));
    expect((await kubectl(admin(), 'create', '-f', file)).code).toBe(0);
    await waitFor('expired token deleted', async () => (await kubectl(admin(), '-n', 'kube-system', 'get', 'secret', 'bootstrap-token-soonex')).code !== 0, 20_000);
    const listed = await run(['node', 'dist/bin/knode.js', 'token', 'list', '--kubeconfig', admin()], { timeoutMs: 30_000 });
    expect(listed.stdout).not.toContain('soonex');
    expect(listed.stdout).toContain(token);
    const deleted = await run(['node', 'dist/bin/knode.js', 'token', 'delete', '--kubeconfig', admin(), token.slice(0, 6)], { timeoutMs: 30_000 });
    expect(deleted.stdout.trim()).toBe(`bootstrap token "${token.slice(0, 6)}" deleted`);
    expect((await curl('-H', `Authorization: Bearer ${token}`, `${cp.url}/apis/certificates.k8s.io/v1/certificatesigningrequests`)).code).toBe(401);
  });
});
