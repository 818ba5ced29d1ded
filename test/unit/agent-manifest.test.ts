import { describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { ManifestError, isManifestFileName, parseManifest } from '../../agent/sources/manifest.js';
import { buildMirrorPod, mirrorMatches, stableJson, staticPodUid, toStaticPod } from '../../agent/sources/static-pod.js';
import { configHashAnnotation, configMirrorAnnotation, configSourceAnnotation, isMirrorPod, isStaticPod } from '../../lib/k8s/pod-source.js';

const kubeadmApiServer = `
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 10.0.0.10:6443
  creationTimestamp: null
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=10.0.0.10
    - --etcd-servers=https://127.0.0.1:2379
    image: registry.k8s.io/kube-apiserver:v1.32.0
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 10.0.0.10
        path: /livez
        port: 6443
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: kube-apiserver
    resources:
      requests:
        cpu: 250m
    volumeMounts:
    - mountPath: /etc/kubernetes/pki
      name: k8s-certs
      readOnly: true
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki
      type: DirectoryOrCreate
    name: k8s-certs
status: {}
`;

const simple = (name: string, image = 'knode.local/busybox:1') => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  containers:
  - name: main
    image: ${image}
    command: ["sleep", "3600"]
`;

describe('static pod manifests', () => {
  it('loads a kubeadm control-plane manifest with its fields', () => {
    const [pod] = parseManifest(kubeadmApiServer, '/etc/kubernetes/manifests/kube-apiserver.yaml');
    expect(pod!.metadata!.name).toBe('kube-apiserver');
    expect(pod!.spec!.hostNetwork).toBe(true);
    expect(pod!.spec!.priorityClassName).toBe('system-node-critical');
    expect(pod!.spec!.volumes![0]!.hostPath!.path).toBe('/etc/kubernetes/pki');
    const c = pod!.spec!.containers[0]!;
    expect(c.livenessProbe!.failureThreshold).toBe(8);
    expect(c.livenessProbe!.successThreshold).toBe(1); // defaulted
    expect(c.terminationMessagePath).toBe('/dev/termination-log');
    expect(pod!.spec!.restartPolicy).toBe('Always');
    expect(pod!.spec!.terminationGracePeriodSeconds).toBe(30);
  });

  it('reads several documents from one file, YAML or JSON', () => {
    const pods = parseManifest(`${simple('a')}---\n${simple('b')}`, 'two.yaml');
    expect(pods.map((p) => p.metadata!.name)).toEqual(['a', 'b']);
    const json = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'j' }, spec: { containers: [{ name: 'c', image: 'x:1', ports: [{ containerPort: 80 }] }], hostNetwork: true } });
    const [pod] = parseManifest(json, 'one.json');
    expect(pod!.spec!.containers[0]!.ports![0]).toEqual({ containerPort: 80, protocol: 'TCP', hostPort: 80 });
    expect(pod!.spec!.containers[0]!.imagePullPolicy).toBe('IfNotPresent');
  });

  it('knows which file names are manifests', () => {
    expect(['a.yaml', 'b.yml', 'c.json', 'D.YAML'].map(isManifestFileName)).toEqual([true, true, true, true]);
    expect(['a.txt', '.hidden.yaml', 'a.yaml.swp', 'yaml'].map(isManifestFileName)).toEqual([false, false, false, false]);
  });

  // 20 malformed manifests → 20 clear errors naming the file and what is wrong.
  const bad: [string, string, RegExp][] = [
    ['bad-yaml', 'apiVersion: v1\nkind: Pod\nmetadata: {name: x\n', /invalid YAML/],
    ['tabs', 'apiVersion: v1\n\tkind: Pod\n', /invalid YAML/],
    ['wrong-kind', simple('x').replace('kind: Pod', 'kind: Deployment'), /field "kind": expected "Pod", got "Deployment"/],
    ['wrong-api', simple('x').replace('apiVersion: v1', 'apiVersion: apps/v1'), /field "apiVersion"/],
    ['no-api', simple('x').replace('apiVersion: v1\n', ''), /field "apiVersion"/],
    ['missing-image', 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: c\n', /spec\.containers\[0\]\.image": is required/],
    ['empty-image', simple('x', '""'), /image": is required/],
    ['no-containers', 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n', /at least one container/],
    ['no-spec', 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n', /field "spec": is required/],
    ['no-metadata', 'apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: i}]}\n', /field "metadata": is required/],
    ['no-name', 'apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: c, image: i}]}\n', /metadata\.name": is required/],
    ['bad-name', simple('Bad_Name'), /metadata\.name": invalid name/],
    ['dup-container', 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i}, {name: c, image: j}]}\n', /duplicate container name "c"/],
    ['dup-pods', `${simple('same')}---\n${simple('same')}`, /duplicate pod "default\/same"/],
    ['bad-policy', simple('x').replace('spec:\n', 'spec:\n  restartPolicy: Sometimes\n'), /restartPolicy": unsupported value "Sometimes"/],
    ['bad-pull', simple('x').replace('    command', '    imagePullPolicy: Maybe\n    command'), /imagePullPolicy": unsupported value/],
    ['bad-port', simple('x').replace('    command', '    ports: [{containerPort: 70000}]\n    command'), /containerPort": must be a port number/],
    ['command-not-list', simple('x').replace('command: ["sleep", "3600"]', 'command: sleep 3600'), /command": must be a list of strings/],
    ['scalar', '42\n', /expected a Pod object/],
    ['empty', '', /holds no pod/],
  ];
  it.each(bad)('rejects %s with a clear error', (name, text, pattern) => {
    const file = `/manifests/${name}.yaml`;
    let caught: unknown;
    try {
      parseManifest(text, file);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ManifestError);
    const message = (caught as Error).message;
    expect(message).toContain(`"${file}"`);
    expect(message).toMatch(pattern);
    expect(message).not.toContain('\n');
  });
  it('has 20 distinct malformed cases', () => expect(new Set(bad.map(([n]) => n)).size).toBe(20));
});

describe('static pod identity', () => {
  const parsed = parseManifest(simple('web'), '/m/web.yaml')[0]!;

  it('names, namespaces and annotates as the kubelet', () => {
    const pod = toStaticPod(parsed, 'node-1', 'file', '/m/web.yaml');
    expect(pod.metadata!.name).toBe('web-node-1');
    expect(pod.metadata!.namespace).toBe('default');
    expect(pod.spec!.nodeName).toBe('node-1');
    expect(pod.metadata!.uid).toMatch(/^[0-9a-f]{32}$/);
    expect(pod.metadata!.annotations![configHashAnnotation]).toBe(pod.metadata!.uid);
    expect(pod.metadata!.annotations![configSourceAnnotation]).toBe('file');
    expect(isStaticPod(pod)).toBe(true);
    expect(parsed.metadata!.name).toBe('web'); // input untouched
  });

  it('derives the UID from content, node and source', () => {
    const uid = staticPodUid(parsed, 'node-1', 'file', '/m/web.yaml');
    expect(staticPodUid(structuredClone(parsed), 'node-1', 'file', '/m/web.yaml')).toBe(uid);
    expect(staticPodUid(parsed, 'node-2', 'file', '/m/web.yaml')).not.toBe(uid);
    expect(staticPodUid(parsed, 'node-1', 'file', '/m/other.yaml')).not.toBe(uid);
    expect(staticPodUid(parsed, 'node-1', 'http', 'http://x/m')).not.toBe(uid);
    const changed = structuredClone(parsed);
    changed.spec!.containers[0]!.command = ['sleep', '1'];
    expect(staticPodUid(changed, 'node-1', 'file', '/m/web.yaml')).not.toBe(uid);
    // Key order in the file does not matter.
    const reordered = parseManifest('kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - command: ["sleep", "3600"]\n    image: knode.local/busybox:1\n    name: main\nmetadata:\n  name: web\n', '/m/web.yaml')[0]!;
    expect(staticPodUid(reordered, 'node-1', 'file', '/m/web.yaml')).toBe(uid);
  });

  it('keeps a UID set in the manifest', () => {
    const withUid = structuredClone(parsed);
    withUid.metadata!.uid = 'fixed-uid';
    expect(toStaticPod(withUid, 'n', 'file', 'f').metadata!.uid).toBe('fixed-uid');
  });

  it('encodes stably', () => {
    expect(stableJson({ b: 1, a: [{ d: 1, c: undefined }] })).toBe('{"a":[{"d":1}],"b":1}');
  });

  it('builds a mirror pod owned by the node that matches until the manifest changes', () => {
    const pod = toStaticPod(parsed, 'node-1', 'file', '/m/web.yaml');
    const mirror = buildMirrorPod(pod, { name: 'node-1', uid: 'node-uid' });
    expect(mirror.metadata!.annotations![configMirrorAnnotation]).toBe(pod.metadata!.uid);
    expect(mirror.metadata!.ownerReferences).toEqual([{ apiVersion: 'v1', kind: 'Node', name: 'node-1', uid: 'node-uid', controller: true }]);
    expect(mirror.metadata!.uid).toBeUndefined();
    expect(mirror.metadata!.name).toBe('web-node-1');
    expect(isMirrorPod(mirror)).toBe(true);
    expect(mirrorMatches(mirror, pod)).toBe(true);
    const changed = structuredClone(parsed);
    changed.spec!.containers[0]!.image = 'knode.local/busybox:2';
    expect(mirrorMatches(mirror, toStaticPod(changed, 'node-1', 'file', '/m/web.yaml'))).toBe(false);
    const deleting: V1Pod = { ...mirror, metadata: { ...mirror.metadata, deletionTimestamp: new Date() } };
    expect(mirrorMatches(deleting, pod)).toBe(false);
    expect(() => buildMirrorPod(parsed, { name: 'n', uid: 'u' })).toThrow(/not a static pod/);
  });
});
