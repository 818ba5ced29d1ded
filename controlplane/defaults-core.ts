/**
 * core/v1 defaulting as kube-apiserver applies it, so that what is stored looks like what a
 * real cluster stores: k8s.io/kubernetes/pkg/apis/core/v1/defaults.go (the SetDefaults_*
 * functions) plus the declarative `+default` tags of k8s.io/api/core/v1 (zz_generated.defaults.go:
 * ports' protocol TCP, grpc probes' service ""), applied to every PodSpec — a Pod's and every
 * pod template's (Deployment, ReplicaSet, DaemonSet, Job, CronJob).
 *
 * Kept apart: what only a Pod gets (SetDefaults_Pod: requests from limits, enableServiceLinks,
 * host-network ports; and the default admission plugins ServiceAccount, Priority and, on
 * create, DefaultTolerationSeconds), which upstream deliberately does not stamp into templates
 * (https://github.com/kubernetes/kubernetes/issues/69445).
 */
import { isRecord, recordOf, recordsOf, stringOf } from './util.js';
import type { KObject } from './storage/types.js';

type Obj = Record<string, unknown>;
const asObj = (value: unknown): Obj | undefined => (isRecord(value) ? value : undefined);

/** SetDefaults_Container's imagePullPolicy (parsers.ParseImageName: no tag means `latest`; a digest has no tag). */
export function defaultPullPolicy(image: string): 'Always' | 'IfNotPresent' {
  if (image.includes('@')) return 'IfNotPresent';
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const colon = lastSegment.lastIndexOf(':');
  if (colon < 0) return 'Always';
  return lastSegment.slice(colon + 1) === 'latest' ? 'Always' : 'IfNotPresent';
}

/** SetDefaults_HTTPGetAction (path "/", scheme HTTP) and GRPCAction's `+default=""` service. */
function defaultHandler(handler: Obj | undefined): void {
  if (!handler) return;
  const httpGet = asObj(handler.httpGet);
  if (httpGet) {
    if (httpGet.path === undefined || httpGet.path === '') httpGet.path = '/';
    if (httpGet.scheme === undefined || httpGet.scheme === '') httpGet.scheme = 'HTTP';
  }
  const grpc = asObj(handler.grpc);
  if (grpc && (grpc.service === undefined || grpc.service === null)) grpc.service = '';
}

/** SetDefaults_Probe: timeoutSeconds 1, periodSeconds 10, successThreshold 1, failureThreshold 3. */
function defaultProbe(probe: Obj | undefined): void {
  if (!probe) return;
  const zero = (v: unknown) => v === undefined || v === null || v === 0;
  if (zero(probe.timeoutSeconds)) probe.timeoutSeconds = 1;
  if (zero(probe.periodSeconds)) probe.periodSeconds = 10;
  if (zero(probe.successThreshold)) probe.successThreshold = 1;
  if (zero(probe.failureThreshold)) probe.failureThreshold = 3;
  defaultHandler(probe);
}

/** SetDefaults_ObjectFieldSelector: a fieldRef's apiVersion is v1. */
function defaultFieldRef(holder: Obj | undefined): void {
  const fieldRef = asObj(holder?.fieldRef);
  if (fieldRef && (fieldRef.apiVersion === undefined || fieldRef.apiVersion === '')) fieldRef.apiVersion = 'v1';
}

function defaultContainer(container: Obj): void {
  if (typeof container.image === 'string' && (container.imagePullPolicy === undefined || container.imagePullPolicy === '')) container.imagePullPolicy = defaultPullPolicy(container.image);
  if (container.terminationMessagePath === undefined || container.terminationMessagePath === '') container.terminationMessagePath = '/dev/termination-log';
  if (container.terminationMessagePolicy === undefined || container.terminationMessagePolicy === '') container.terminationMessagePolicy = 'File';
  // ResourceRequirements is a struct, not a pointer: it is always serialized, as {} when empty.
  container.resources ??= {};
  for (const port of recordsOf(container.ports)) if (port.protocol === undefined || port.protocol === '') port.protocol = 'TCP';
  for (const name of ['livenessProbe', 'readinessProbe', 'startupProbe']) defaultProbe(asObj(container[name]));
  const lifecycle = asObj(container.lifecycle);
  defaultHandler(asObj(lifecycle?.postStart));
  defaultHandler(asObj(lifecycle?.preStop));
  for (const env of recordsOf(container.env)) defaultFieldRef(asObj(env.valueFrom));
}

const volumeSources = ['hostPath', 'emptyDir', 'gcePersistentDisk', 'awsElasticBlockStore', 'gitRepo', 'secret', 'nfs', 'iscsi', 'glusterfs', 'persistentVolumeClaim', 'rbd', 'flexVolume', 'cinder', 'cephfs', 'flocker', 'downwardAPI', 'fc', 'azureFile', 'configMap', 'vsphereVolume', 'quobyte', 'azureDisk', 'photonPersistentDisk', 'projected', 'portworxVolume', 'scaleIO', 'storageos', 'csi', 'ephemeral', 'image'];

/** 0644, the default mode of secret, configMap, downwardAPI and projected volumes. */
const defaultMode = 0o644;

function defaultVolume(volume: Obj): void {
  // SetDefaults_Volume: a volume without a source is an emptyDir.
  if (!volumeSources.some((source) => volume[source] !== undefined && volume[source] !== null)) volume.emptyDir = {};
  for (const source of ['secret', 'configMap', 'downwardAPI', 'projected']) {
    const s = asObj(volume[source]);
    if (s && (s.defaultMode === undefined || s.defaultMode === null)) s.defaultMode = defaultMode;
  }
  const hostPath = asObj(volume.hostPath);
  if (hostPath && (hostPath.type === undefined || hostPath.type === null)) hostPath.type = '';
  for (const item of recordsOf(asObj(volume.downwardAPI)?.items)) defaultFieldRef(item);
  for (const projection of recordsOf(asObj(volume.projected)?.sources)) {
    for (const item of recordsOf(asObj(projection.downwardAPI)?.items)) defaultFieldRef(item);
    // SetDefaults_ServiceAccountTokenProjection: one hour.
    const token = asObj(projection.serviceAccountToken);
    if (token && (token.expirationSeconds === undefined || token.expirationSeconds === null)) token.expirationSeconds = 3600;
  }
}

/** SetDefaults_PodSpec and everything below it: what every pod template gets too. */
export function defaultPodSpec(spec: Obj): void {
  if (spec.dnsPolicy === undefined || spec.dnsPolicy === '') spec.dnsPolicy = 'ClusterFirst';
  if (spec.restartPolicy === undefined || spec.restartPolicy === '') spec.restartPolicy = 'Always';
  if (spec.securityContext === undefined || spec.securityContext === null) spec.securityContext = {};
  if (spec.terminationGracePeriodSeconds === undefined || spec.terminationGracePeriodSeconds === null) spec.terminationGracePeriodSeconds = 30;
  if (spec.schedulerName === undefined || spec.schedulerName === '') spec.schedulerName = 'default-scheduler';
  for (const list of ['containers', 'initContainers', 'ephemeralContainers']) for (const container of recordsOf(spec[list])) defaultContainer(container);
  for (const volume of recordsOf(spec.volumes)) defaultVolume(volume);
}

/** DefaultTolerationSeconds admission, on create only (--default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds, 300). */
export function defaultTolerationSeconds(pod: KObject): void {
  const spec = recordOf(pod.spec);
  pod.spec = spec;
  const tolerations = recordsOf(spec.tolerations);
  let changed = false;
  for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
    const tolerated = tolerations.some((t) => (t.effect === undefined || t.effect === '' || t.effect === 'NoExecute') && (t.key === key || ((t.key === undefined || t.key === '') && t.operator === 'Exists')));
    if (tolerated) continue;
    tolerations.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 });
    changed = true;
  }
  if (changed) spec.tolerations = tolerations;
}

/** SetDefaults_Pod (per container: each limit without a request becomes the request) and the pod admission defaults. */
function defaultPodOnly(pod: KObject): void {
  const spec = recordOf(pod.spec);
  pod.spec = spec;
  for (const list of ['containers', 'initContainers']) {
    for (const container of recordsOf(spec[list])) {
      const resources = asObj(container.resources);
      const limits = asObj(resources?.limits);
      if (!resources || !limits) continue;
      const requests = asObj(resources.requests) ?? {};
      for (const [name, value] of Object.entries(limits)) if (!Object.hasOwn(requests, name)) requests[name] = value;
      resources.requests = requests;
    }
  }
  spec.enableServiceLinks ??= true;
  // defaultHostNetworkPorts: with the host's network, a container port is a host port.
  if (spec.hostNetwork === true)
    for (const list of ['containers', 'initContainers'])
      for (const container of recordsOf(spec[list])) for (const port of recordsOf(container.ports)) if (port.hostPort === undefined || port.hostPort === 0) port.hostPort = port.containerPort;
  // ServiceAccount admission: serviceAccountName "default" (and the deprecated alias).
  spec.serviceAccountName ??= stringOf(spec.serviceAccount) ?? 'default';
  spec.serviceAccount ??= spec.serviceAccountName;
  // Priority admission without a PriorityClass: priority 0, PreemptLowerPriority.
  spec.priority ??= 0;
  spec.preemptionPolicy ??= 'PreemptLowerPriority';
}

/** A Pod: the PodSpec defaults, then what only a Pod gets. */
export function defaultPod(pod: KObject): void {
  const spec = recordOf(pod.spec);
  pod.spec = spec;
  defaultPodSpec(spec);
  defaultPodOnly(pod);
}
