/**
 * The real kubectl (v1.32 on the PATH) against the control plane: create namespace, apply a Pod
 * and a Service from YAML, get -o json, get -w, label, patch, delete, describe, and the error
 * messages kubectl prints for invalid objects, conflicts and missing objects — the wording of
 * kube-apiserver.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ensureCredentials } from '../../controlplane/security.js';

const env = await prerequisites('command:kubectl', 'command:openssl');

const manifest = `
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: kt
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx:1.25
    ports: [{name: http, containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: kt
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
`;

const invalidPod = `
apiVersion: v1
kind: Pod
metadata: {name: Bad_Name, namespace: kt}
spec:
  containers:
  - name: c
`;

describe.skipIf(env.skip)('kubectl against the control plane', () => {
  let cp: TestControlPlane;
  let dir: string;
  const kubectl = (args: string[], input?: string) => run(['kubectl', '--kubeconfig', cp.kubeconfigPath, ...args], { allowFailure: true, timeoutMs: 30_000, input });

  beforeAll(async () => {
    cp = await startTestControlPlane();
    dir = dirname(cp.kubeconfigPath);
    writeFileSync(join(dir, 'app.yaml'), manifest);
    writeFileSync(join(dir, 'bad.yaml'), invalidPod);
  });
  afterAll(async () => {
    await cp?.stop();
  });

  it('creates a namespace and applies a Pod and a Service from YAML (twice: create, then unchanged/configured)', async () => {
    const ns = await kubectl(['create', 'namespace', 'kt']);
    expect(ns.stderr).toBe('');
    expect(ns.stdout.trim()).toBe('namespace/kt created');
    const applied = await kubectl(['apply', '-f', join(dir, 'app.yaml')]);
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toContain('pod/web created');
    expect(applied.stdout).toContain('service/web created');
    const again = await kubectl(['apply', '-f', join(dir, 'app.yaml')]);
    expect(again.stdout).toContain('pod/web unchanged');
    writeFileSync(join(dir, 'app2.yaml'), manifest.replace('nginx:1.25', 'nginx:1.26'));
    const changed = await kubectl(['apply', '-f', join(dir, 'app2.yaml')]);
    expect(changed.stdout).toContain('pod/web configured');
    const pod = JSON.parse((await kubectl(['-n', 'kt', 'get', 'pod', 'web', '-o', 'json'])).stdout) as {
      spec: { containers: { image: string; imagePullPolicy: string }[]; restartPolicy: string };
      metadata: { uid: string; resourceVersion: string; creationTimestamp: string };
    };
    expect(pod.spec.containers[0]?.image).toBe('nginx:1.26');
    expect(pod.spec.containers[0]?.imagePullPolicy).toBe('IfNotPresent');
    expect(pod.spec.restartPolicy).toBe('Always');
    expect(pod.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    const svc = JSON.parse((await kubectl(['-n', 'kt', 'get', 'svc', 'web', '-o', 'json'])).stdout) as { spec: { clusterIP: string; ports: { targetPort: string; protocol: string }[] } };
    expect(svc.spec.clusterIP).toMatch(/^10\.(9[6-9]|10[0-9]|11[01])\./);
    expect(svc.spec.ports[0]).toMatchObject({ targetPort: 'http', protocol: 'TCP' });
  });

  it('prints tables for get', async () => {
    const pods = await kubectl(['-n', 'kt', 'get', 'pods']);
    expect(pods.stdout).toMatch(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\n/);
    expect(pods.stdout).toMatch(/\nweb\s+0\/1\s+Pending\s+0\s+\d+s\n/);
    const svcs = await kubectl(['get', 'svc', '-A']);
    expect(svcs.stdout).toMatch(/default\s+kubernetes\s+ClusterIP\s+10\.96\.0\.1\s+<none>\s+443\/TCP/);
  });

  it('get -w sees a label change, then label, patch, describe', async () => {
    const watcher = spawn('kubectl', ['--kubeconfig', cp.kubeconfigPath, '-n', 'kt', 'get', 'pods', '-w', '-o', 'custom-columns=NAME:.metadata.name,TIER:.metadata.labels.tier'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watcher.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    try {
      const deadline = Date.now() + 20_000;
      while (!out.includes('web') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(out).toMatch(/web\s+<none>/);
      const labeled = await kubectl(['-n', 'kt', 'label', 'pod', 'web', 'tier=front']);
      expect(labeled.stdout.trim()).toBe('pod/web labeled');
      while (!/web\s+front/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(out).toMatch(/web\s+front/);
    } finally {
      watcher.kill('SIGTERM');
    }
    const patched = await kubectl(['-n', 'kt', 'patch', 'pod', 'web', '-p', '{"metadata":{"annotations":{"note":"hi"}}}']);
    expect(patched.stdout.trim()).toBe('pod/web patched');
    const jsonPatched = await kubectl(['-n', 'kt', 'patch', 'pod', 'web', '--type=json', '-p', '[{"op":"replace","path":"/spec/containers/0/image","value":"nginx:1.27"}]']);
    expect(jsonPatched.stdout.trim()).toBe('pod/web patched');
    const described = await kubectl(['-n', 'kt', 'describe', 'pod', 'web']);
    expect(described.stderr).toBe('');
    expect(described.stdout).toMatch(/Name:\s+web/);
    expect(described.stdout).toMatch(/tier=front/);
    expect(described.stdout).toMatch(/Image:\s+nginx:1.27/);
  });

  it('prints kube-apiserver wording for invalid, conflict and not found', async () => {
    const invalid = await kubectl(['apply', '-f', join(dir, 'bad.yaml')]);
    expect(invalid.code).not.toBe(0);
    expect(invalid.stderr).toContain('The Pod "Bad_Name" is invalid:');
    expect(invalid.stderr).toContain('* metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of');
    expect(invalid.stderr).toContain('* spec.containers[0].image: Required value');

    // kubectl sends fieldValidation=Strict: a typo is refused like kube-apiserver does.
    writeFileSync(join(dir, 'typo.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: typo, namespace: kt}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    imagePullPolcy: Always\n');
    const typo = await kubectl(['create', '-f', join(dir, 'typo.yaml')]);
    expect(typo.stderr.trim()).toBe(
      `Error from server (BadRequest): error when creating "${join(dir, 'typo.yaml')}": Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].imagePullPolcy"`,
    );
    const warned = await kubectl(['create', '--validate=warn', '-f', join(dir, 'typo.yaml')]);
    expect(warned.stderr).toContain('Warning: unknown field "spec.containers[0].imagePullPolcy"');
    expect(warned.stdout.trim()).toBe('pod/typo created');

    const stale = (await kubectl(['-n', 'kt', 'get', 'pod', 'web', '-o', 'yaml'])).stdout;
    await kubectl(['-n', 'kt', 'label', 'pod', 'web', 'bump=1']);
    writeFileSync(join(dir, 'stale.yaml'), stale);
    const conflict = await kubectl(['replace', '-f', join(dir, 'stale.yaml')]);
    expect(conflict.code).not.toBe(0);
    expect(conflict.stderr).toContain(
      'Error from server (Conflict): error when replacing "' + join(dir, 'stale.yaml') + '": Operation cannot be fulfilled on pods "web": the object has been modified; please apply your changes to the latest version and try again',
    );

    const missing = await kubectl(['-n', 'kt', 'get', 'pod', 'nope']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim()).toBe('Error from server (NotFound): pods "nope" not found');
    const missingNs = await kubectl(['get', 'pods', '-n', 'no-such-ns', 'x']);
    // kubectl 1.32 itself looks the namespace up after a NotFound and reports that instead.
    expect(missingNs.stderr.trim()).toBe('Error from server (NotFound): namespaces "no-such-ns" not found');
  });

  it('deletes (a pod never bound to a node goes at once) and cleans a namespace', async () => {
    const deleted = await kubectl(['-n', 'kt', 'delete', 'pod', 'web']);
    expect(deleted.stdout.trim()).toBe('pod "web" deleted');
    const gone = await kubectl(['-n', 'kt', 'get', 'pod', 'web']);
    expect(gone.stderr.trim()).toBe('Error from server (NotFound): pods "web" not found');
    const ns = await kubectl(['delete', 'namespace', 'kt']);
    expect(ns.stdout.trim()).toBe('namespace "kt" deleted');
    const deadline = Date.now() + 20_000;
    let left = '';
    do {
      left = (await kubectl(['get', 'svc', '-n', 'kt', '-o', 'name'])).stdout.trim();
    } while (left !== '' && Date.now() < deadline);
    expect(left).toBe('');
  });

  it('proxies kubectl logs to the kubelet of the pod\'s node', async () => {
    const creds = await ensureCredentials(join(dir, 'kubelet'), ['127.0.0.1']);
    const requests: string[] = [];
    const kubelet = createServer({ cert: creds.cert, key: creds.key }, (req, res) => {
      requests.push(req.url ?? '');
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('line one\nline two\n');
    });
    await new Promise<void>((resolve) => kubelet.listen(0, '127.0.0.1', resolve));
    try {
      const port = (kubelet.address() as AddressInfo).port;
      const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'log-node' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], daemonEndpoints: { kubeletEndpoint: { Port: port } } } };
      expect((await kubectl(['create', '-f', '-'], JSON.stringify(node))).stderr).toBe('');
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'logger', namespace: 'default' }, spec: { nodeName: 'log-node', containers: [{ name: 'main', image: 'busybox:1.36' }] } };
      expect((await kubectl(['create', '-f', '-'], JSON.stringify(pod))).stderr).toBe('');
      const logs = await kubectl(['logs', 'logger', '--tail=5']);
      expect(logs.stdout).toBe('line one\nline two\n');
      expect(requests[0]).toBe('/containerLogs/default/logger/main?tailLines=5');
      const unbound = await kubectl(['run', 'nohost', '--image=busybox:1.36', '--overrides={"spec":{"schedulerName":"none"}}']);
      expect(unbound.stderr).toBe('');
      expect((await kubectl(['logs', 'nohost'])).stderr.trim()).toBe('Error from server (BadRequest): pod nohost does not have a host assigned');
    } finally {
      kubelet.closeAllConnections();
      await new Promise((resolve) => kubelet.close(resolve));
    }
  });

  it('passes discovery checks (api-resources, version)', async () => {
    const resources = await kubectl(['api-resources']);
    expect(resources.stderr).toBe('');
    expect(resources.stdout).toMatch(/endpointslices\s+discovery.k8s.io\/v1\s+true\s+EndpointSlice/);
    expect(resources.stdout).toMatch(/leases\s+coordination.k8s.io\/v1\s+true\s+Lease/);
    const version = await kubectl(['version', '-o', 'json']);
    expect(JSON.parse(version.stdout).serverVersion.minor).toBe('32');
  });
});
