/**
 * core/v1 defaulting, one row per rule of k8s.io/kubernetes/pkg/apis/core/v1/defaults.go (and the
 * `+default` tags of k8s.io/api/core/v1), checked on a Pod and on a Deployment's pod template:
 * templates get the PodSpec defaults but not SetDefaults_Pod's nor the pod admission defaults.
 */
import { describe, expect, it } from 'vitest';
import { defaultPod, defaultPodSpec } from '../../controlplane/defaults-core.js';
import { defaultService } from '../../controlplane/kinds-service.js';
import { strategyFor } from '../../controlplane/kinds.js';
import type { KObject } from '../../controlplane/storage/types.js';

type Obj = Record<string, unknown>;
const container = (extra: Obj = {}): Obj => ({ name: 'c', image: 'busybox:1', ...extra });
const probe = (handler: Obj): Obj => ({ ...handler });

/** [rule, pod spec given, path into the defaulted spec, expected value] */
const podSpecRows: [string, Obj, (s: Obj) => unknown, unknown][] = [
  ['SetDefaults_PodSpec dnsPolicy', {}, (s) => s.dnsPolicy, 'ClusterFirst'],
  ['SetDefaults_PodSpec restartPolicy', {}, (s) => s.restartPolicy, 'Always'],
  ['SetDefaults_PodSpec securityContext', {}, (s) => s.securityContext, {}],
  ['SetDefaults_PodSpec terminationGracePeriodSeconds', {}, (s) => s.terminationGracePeriodSeconds, 30],
  ['SetDefaults_PodSpec schedulerName', {}, (s) => s.schedulerName, 'default-scheduler'],
  ['given values stay', { dnsPolicy: 'Default', restartPolicy: 'Never', terminationGracePeriodSeconds: 0 }, (s) => [s.dnsPolicy, s.restartPolicy, s.terminationGracePeriodSeconds], ['Default', 'Never', 0]],
  ['SetDefaults_Container imagePullPolicy (tag)', {}, (s) => c0(s).imagePullPolicy, 'IfNotPresent'],
  ['SetDefaults_Container imagePullPolicy (latest)', { containers: [container({ image: 'busybox:latest' })] }, (s) => c0(s).imagePullPolicy, 'Always'],
  ['SetDefaults_Container imagePullPolicy (no tag)', { containers: [container({ image: 'registry:5000/busybox' })] }, (s) => c0(s).imagePullPolicy, 'Always'],
  ['SetDefaults_Container imagePullPolicy (digest)', { containers: [container({ image: `busybox@sha256:${'a'.repeat(64)}` })] }, (s) => c0(s).imagePullPolicy, 'IfNotPresent'],
  ['SetDefaults_Container terminationMessagePath', {}, (s) => c0(s).terminationMessagePath, '/dev/termination-log'],
  ['SetDefaults_Container terminationMessagePolicy', {}, (s) => c0(s).terminationMessagePolicy, 'File'],
  ['resources serialized as {}', {}, (s) => c0(s).resources, {}],
  ['ContainerPort protocol +default=TCP', { containers: [container({ ports: [{ containerPort: 80 }] })] }, (s) => (c0(s).ports as Obj[])[0], { containerPort: 80, protocol: 'TCP' }],
  [
    'SetDefaults_Probe and SetDefaults_HTTPGetAction (readiness)',
    { containers: [container({ readinessProbe: probe({ httpGet: { port: 'http' } }) })] },
    (s) => c0(s).readinessProbe,
    { httpGet: { port: 'http', path: '/', scheme: 'HTTP' }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 },
  ],
  ['SetDefaults_Probe keeps given values', { containers: [container({ livenessProbe: { exec: { command: ['true'] }, periodSeconds: 2, failureThreshold: 1 } })] }, (s) => c0(s).livenessProbe, { exec: { command: ['true'] }, timeoutSeconds: 1, periodSeconds: 2, successThreshold: 1, failureThreshold: 1 }],
  ['GRPCAction service +default=""', { containers: [container({ startupProbe: { grpc: { port: 9000 } } })] }, (s) => (c0(s).startupProbe as Obj).grpc, { port: 9000, service: '' }],
  ['lifecycle handlers httpGet', { containers: [container({ lifecycle: { preStop: { httpGet: { port: 80, path: '' } } } })] }, (s) => ((c0(s).lifecycle as Obj).preStop as Obj).httpGet, { port: 80, path: '/', scheme: 'HTTP' }],
  ['SetDefaults_ObjectFieldSelector (env)', { containers: [container({ env: [{ name: 'N', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }] })] }, (s) => ((c0(s).env as Obj[])[0]?.valueFrom as Obj).fieldRef, { fieldPath: 'metadata.name', apiVersion: 'v1' }],
  ['init containers too', { initContainers: [container({ name: 'i', image: 'x' })] }, (s) => ((s.initContainers as Obj[])[0] as Obj).imagePullPolicy, 'Always'],
  ['SetDefaults_Volume: no source is emptyDir', { volumes: [{ name: 'v' }] }, (s) => (s.volumes as Obj[])[0], { name: 'v', emptyDir: {} }],
  ['SetDefaults_SecretVolumeSource defaultMode 0644', { volumes: [{ name: 'v', secret: { secretName: 's' } }] }, (s) => ((s.volumes as Obj[])[0] as Obj).secret, { secretName: 's', defaultMode: 420 }],
  ['SetDefaults_ConfigMapVolumeSource defaultMode 0644', { volumes: [{ name: 'v', configMap: { name: 'c' } }] }, (s) => ((s.volumes as Obj[])[0] as Obj).configMap, { name: 'c', defaultMode: 420 }],
  ['defaultMode given stays', { volumes: [{ name: 'v', configMap: { name: 'c', defaultMode: 256 } }] }, (s) => (((s.volumes as Obj[])[0] as Obj).configMap as Obj).defaultMode, 256],
  ['SetDefaults_DownwardAPIVolumeSource and its fieldRefs', { volumes: [{ name: 'v', downwardAPI: { items: [{ path: 'n', fieldRef: { fieldPath: 'metadata.name' } }] } }] }, (s) => ((s.volumes as Obj[])[0] as Obj).downwardAPI, { defaultMode: 420, items: [{ path: 'n', fieldRef: { fieldPath: 'metadata.name', apiVersion: 'v1' } }] }],
  ['SetDefaults_ProjectedVolumeSource and ServiceAccountTokenProjection', { volumes: [{ name: 'v', projected: { sources: [{ serviceAccountToken: { path: 't' } }] } }] }, (s) => ((s.volumes as Obj[])[0] as Obj).projected, { defaultMode: 420, sources: [{ serviceAccountToken: { path: 't', expirationSeconds: 3600 } }] }],
  ['SetDefaults_HostPathVolumeSource type ""', { volumes: [{ name: 'v', hostPath: { path: '/x' } }] }, (s) => ((s.volumes as Obj[])[0] as Obj).hostPath, { path: '/x', type: '' }],
];

function c0(spec: Obj): Obj {
  return (spec.containers as Obj[])[0] as Obj;
}

describe('core/v1 defaulting (defaults.go)', () => {
  it.each(podSpecRows)('%s: on a pod and on a pod template', (_rule, given, path, expected) => {
    const pod: KObject = { metadata: { name: 'p', namespace: 'd' }, spec: { containers: [container()], ...structuredClone(given) } };
    defaultPod(pod);
    expect(path(pod.spec as Obj)).toEqual(expected);
    const deployment: KObject = { metadata: { name: 'd', namespace: 'd' }, spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [container()], ...structuredClone(given) } } } };
    strategyFor('Deployment').defaults?.(deployment);
    expect(path(((deployment.spec as Obj).template as Obj).spec as Obj)).toEqual(expected);
  });

  it('SetDefaults_Pod and pod admission: only on a pod, never in a template', () => {
    const spec = (): Obj => ({ containers: [container({ resources: { limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '500m' } } })], hostNetwork: true, initContainers: [container({ name: 'i', ports: [{ containerPort: 53, protocol: 'UDP' }] })] });
    const pod: KObject = { metadata: { name: 'p', namespace: 'd' }, spec: spec() };
    defaultPod(pod);
    const s = pod.spec as Obj;
    expect(c0(s).resources).toEqual({ limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '500m', memory: '1Gi' } });
    expect(((s.initContainers as Obj[])[0]?.ports as Obj[])[0]).toEqual({ containerPort: 53, protocol: 'UDP', hostPort: 53 });
    expect(s).toMatchObject({ enableServiceLinks: true, serviceAccountName: 'default', serviceAccount: 'default', priority: 0, preemptionPolicy: 'PreemptLowerPriority' });
    const template = spec();
    defaultPodSpec(template);
    expect(c0(template).resources).toEqual({ limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '500m' } });
    for (const field of ['enableServiceLinks', 'serviceAccountName', 'priority', 'preemptionPolicy', 'tolerations']) expect(template[field]).toBeUndefined();
  });

  it('DefaultTolerationSeconds admission adds the 300 s NoExecute tolerations on create, unless tolerated already', () => {
    const create = (tolerations?: Obj[]) => {
      const pod: KObject = { metadata: { name: 'p', namespace: 'd' }, spec: { containers: [container()], ...(tolerations ? { tolerations } : {}) } };
      strategyFor('Pod').prepareForCreate?.(pod);
      return (pod.spec as Obj).tolerations;
    };
    expect(create()).toEqual([
      { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    ]);
    expect(create([{ operator: 'Exists' }])).toEqual([{ operator: 'Exists' }]);
    expect(create([{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 5 }])).toHaveLength(2);
  });

  it.each<[string, Obj, Obj]>([
    ['sessionAffinity None, type ClusterIP, internalTrafficPolicy Cluster, port defaults', { ports: [{ port: 80 }] }, { type: 'ClusterIP', sessionAffinity: 'None', internalTrafficPolicy: 'Cluster', ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] }],
    ['targetPort "" is the port', { ports: [{ port: 80, targetPort: '' }] }, { ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] }],
    ['ClientIP affinity gets 10800 s', { sessionAffinity: 'ClientIP', ports: [{ port: 80 }] }, { sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } } }],
    ['NodePort: externalTrafficPolicy Cluster', { type: 'NodePort', ports: [{ port: 80 }] }, { externalTrafficPolicy: 'Cluster' }],
    ['ClusterIP with externalIPs is externally accessible', { externalIPs: ['192.0.2.1'], ports: [{ port: 80 }] }, { externalTrafficPolicy: 'Cluster' }],
    ['LoadBalancer: allocateLoadBalancerNodePorts', { type: 'LoadBalancer', ports: [{ port: 80 }] }, { allocateLoadBalancerNodePorts: true, externalTrafficPolicy: 'Cluster' }],
  ])('SetDefaults_Service: %s', (_rule, spec, expected) => {
    const service: KObject = { metadata: { name: 's', namespace: 'd' }, spec: structuredClone(spec) };
    defaultService(service);
    expect(service.spec).toMatchObject(expected);
  });

  it('SetDefaults_Service drops sessionAffinityConfig with affinity None', () => {
    const service: KObject = { metadata: { name: 's', namespace: 'd' }, spec: { sessionAffinityConfig: { clientIP: { timeoutSeconds: 5 } }, ports: [{ port: 80 }] } };
    defaultService(service);
    expect((service.spec as Obj).sessionAffinityConfig).toBeUndefined();
    expect((service.spec as Obj).externalTrafficPolicy).toBeUndefined();
  });
});
