/**
 * Defaulting parity seen through the real kubectl: `kubectl describe pod` of a pod with a
 * readiness probe shows kube-apiserver's probe defaults, a Deployment's template carries the
 * PodSpec defaults (and not the Pod-only ones), and status sent on create is dropped for the
 * kinds with a status subresource (PrepareForCreate), as upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';

const env = await prerequisites('command:kubectl');
const ns = 'defaults';

type Obj = Record<string, unknown>;
const o = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});

describe.skipIf(env.skip)('core/v1 defaulting with kubectl', () => {
  let cp: TestControlPlane;
  const kubectl = async (args: string[], input?: string) => run(['kubectl', '--kubeconfig', cp.kubeconfigPath, '-n', ns, ...args], { allowFailure: true, timeoutMs: 60_000, input });

  beforeAll(async () => {
    cp = await startTestControlPlane({ resyncMs: 500 });
    expect((await kubectl(['create', 'namespace', ns])).code).toBe(0);
  });
  afterAll(async () => {
    await cp?.stop();
  });

  it('shows the probe defaults in kubectl describe pod', async () => {
    const pod = `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: knode.local/busybox:1
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {port: http}}
    livenessProbe: {tcpSocket: {port: 8080}, initialDelaySeconds: 2}
`;
    expect((await kubectl(['apply', '-f', '-'], pod)).stdout.trim()).toBe('pod/web created');
    const out = (await kubectl(['describe', 'pod', 'web'])).stdout;
    expect(out).toMatch(/Readiness:\s+http-get http:\/\/:http\/ delay=0s timeout=1s period=10s #success=1 #failure=3/);
    expect(out).toMatch(/Liveness:\s+tcp-socket :8080 delay=2s timeout=1s period=10s #success=1 #failure=3/);
    expect(out).toMatch(/Port:\s+8080\/TCP/);
    expect(out).toMatch(/node.kubernetes.io\/not-ready:NoExecute op=Exists for 300s/);
    const stored = JSON.parse((await kubectl(['get', 'pod', 'web', '-o', 'json'])).stdout) as Obj;
    const container = (o(stored.spec).containers as Obj[])[0] as Obj;
    expect(container).toMatchObject({ imagePullPolicy: 'IfNotPresent', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', resources: {} });
    expect(o(stored.spec)).toMatchObject({ dnsPolicy: 'ClusterFirst', restartPolicy: 'Always', schedulerName: 'default-scheduler', securityContext: {}, enableServiceLinks: true, terminationGracePeriodSeconds: 30 });
  });

  it('defaults a Deployment template like a PodSpec, and drops status sent on create', async () => {
    const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec:
      containers: [{name: c, image: i, readinessProbe: {exec: {command: ["true"]}}}]
      volumes: [{name: cfg, configMap: {name: cfg}}]
status: {replicas: 99, readyReplicas: 99}
`;
    const dry = JSON.parse((await kubectl(['apply', '--dry-run=server', '-o', 'json', '-f', '-'], deployment)).stdout) as Obj;
    expect(dry.status).toEqual({});
    const spec = o(o(o(dry.spec).template).spec);
    expect(((spec.containers as Obj[])[0] as Obj).readinessProbe).toEqual({ exec: { command: ['true'] }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 });
    expect(spec.volumes).toEqual([{ name: 'cfg', configMap: { name: 'cfg', defaultMode: 420 } }]);
    expect(spec).toMatchObject({ dnsPolicy: 'ClusterFirst', restartPolicy: 'Always', schedulerName: 'default-scheduler', securityContext: {} });
    for (const podOnly of ['enableServiceLinks', 'serviceAccountName', 'priority', 'tolerations']) expect(spec[podOnly]).toBeUndefined();
    const job = 'apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: i}]\nstatus: {succeeded: 5}\n';
    expect(o((JSON.parse((await kubectl(['apply', '--dry-run=server', '-o', 'json', '-f', '-'], job)).stdout) as Obj).status)).toEqual({});
  });
});
