/**
 * Server-side field validation (https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation):
 * with `fieldValidation=Strict` (what kubectl 1.32 sends) an unknown field is a 400
 * "strict decoding error: unknown field ..."; with `Warn` (the server default) it becomes a
 * `Warning` header that kubectl prints; `Ignore` drops the check. The known fields are those of
 * the core/v1, coordination/v1 and discovery/v1 types for the parts people write by hand
 * (top level, metadata, Pod spec and containers, Service spec); deeper structures are not checked.
 * The apps/v1 and batch/v1 kinds are checked in full (model-fields.ts).
 */
import { ApiError } from './status.js';
import { isRecord } from './util.js';
import { unknownModelFields } from './model-fields.js';

const modelChecked: ReadonlySet<string> = new Set(['Deployment', 'ReplicaSet', 'DaemonSet', 'ControllerRevision', 'Job', 'CronJob']);

const objectMeta = ['name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields'];
const withSpec = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];

const topLevel: Record<string, string[]> = {
  Pod: withSpec,
  Service: withSpec,
  Namespace: withSpec,
  Node: withSpec,
  Lease: ['apiVersion', 'kind', 'metadata', 'spec'],
  ConfigMap: ['apiVersion', 'kind', 'metadata', 'data', 'binaryData', 'immutable'],
  Secret: ['apiVersion', 'kind', 'metadata', 'data', 'stringData', 'type', 'immutable'],
  ServiceAccount: ['apiVersion', 'kind', 'metadata', 'secrets', 'imagePullSecrets', 'automountServiceAccountToken'],
  Endpoints: ['apiVersion', 'kind', 'metadata', 'subsets'],
  EndpointSlice: ['apiVersion', 'kind', 'metadata', 'addressType', 'endpoints', 'ports'],
  Event: ['apiVersion', 'kind', 'metadata', 'involvedObject', 'reason', 'message', 'source', 'firstTimestamp', 'lastTimestamp', 'count', 'type', 'eventTime', 'series', 'action', 'related', 'reportingComponent', 'reportingInstance'],
  Binding: ['apiVersion', 'kind', 'metadata', 'target'],
  CertificateSigningRequest: withSpec,
};

const podSpec = [
  'volumes', 'initContainers', 'containers', 'ephemeralContainers', 'restartPolicy', 'terminationGracePeriodSeconds', 'activeDeadlineSeconds', 'dnsPolicy', 'nodeSelector',
  'serviceAccountName', 'serviceAccount', 'automountServiceAccountToken', 'nodeName', 'hostNetwork', 'hostPID', 'hostIPC', 'shareProcessNamespace', 'securityContext',
  'imagePullSecrets', 'hostname', 'subdomain', 'affinity', 'schedulerName', 'tolerations', 'hostAliases', 'priorityClassName', 'priority', 'dnsConfig', 'readinessGates',
  'runtimeClassName', 'enableServiceLinks', 'preemptionPolicy', 'overhead', 'topologySpreadConstraints', 'setHostnameAsFQDN', 'os', 'hostUsers', 'schedulingGates',
  'resourceClaims', 'resources',
];
const container = [
  'name', 'image', 'command', 'args', 'workingDir', 'ports', 'envFrom', 'env', 'resources', 'resizePolicy', 'restartPolicy', 'volumeMounts', 'volumeDevices', 'livenessProbe',
  'readinessProbe', 'startupProbe', 'lifecycle', 'terminationMessagePath', 'terminationMessagePolicy', 'imagePullPolicy', 'securityContext', 'stdin', 'stdinOnce', 'tty',
  'targetContainerName',
];
const serviceSpec = [
  'ports', 'selector', 'clusterIP', 'clusterIPs', 'type', 'externalIPs', 'sessionAffinity', 'loadBalancerIP', 'loadBalancerSourceRanges', 'externalName', 'externalTrafficPolicy',
  'healthCheckNodePort', 'publishNotReadyAddresses', 'sessionAffinityConfig', 'ipFamilies', 'ipFamilyPolicy', 'allocateLoadBalancerNodePorts', 'loadBalancerClass',
  'internalTrafficPolicy', 'trafficDistribution',
];
const servicePort = ['name', 'protocol', 'appProtocol', 'port', 'targetPort', 'nodePort'];
const containerPort = ['name', 'hostPort', 'containerPort', 'protocol', 'hostIP'];

/** Strategic-merge directives are not fields. */
const directive = (key: string) => key.startsWith('$');

function unknownKeys(value: unknown, allowed: string[], path: string, out: string[]): void {
  if (!isRecord(value)) return;
  for (const key of Object.keys(value)) if (!allowed.includes(key) && !directive(key)) out.push(path ? `${path}.${key}` : key);
}

function eachItem(value: unknown, path: string, visit: (item: unknown, itemPath: string) => void): void {
  if (Array.isArray(value)) value.forEach((item, index) => visit(item, `${path}[${index}]`));
}

/** Paths of fields the kind does not have, in kube-apiserver's notation (`spec.containers[0].imagee`). */
export function unknownFields(kind: string, body: unknown): string[] {
  // The workload kinds are checked in full against the API's type definitions (model-fields.ts).
  if (modelChecked.has(kind)) return unknownModelFields(`V1${kind}`, body) ?? [];
  const out: string[] = [];
  const allowed = topLevel[kind];
  if (!allowed || !isRecord(body)) return out;
  unknownKeys(body, allowed, '', out);
  unknownKeys(body.metadata, objectMeta, 'metadata', out);
  const spec = body.spec;
  if (kind === 'Pod' && isRecord(spec)) {
    unknownKeys(spec, podSpec, 'spec', out);
    for (const list of ['containers', 'initContainers', 'ephemeralContainers']) {
      eachItem(spec[list], `spec.${list}`, (item, itemPath) => {
        unknownKeys(item, container, itemPath, out);
        if (isRecord(item)) eachItem(item.ports, `${itemPath}.ports`, (port, portPath) => unknownKeys(port, containerPort, portPath, out));
      });
    }
  }
  if (kind === 'Service' && isRecord(spec)) {
    unknownKeys(spec, serviceSpec, 'spec', out);
    eachItem(spec.ports, 'spec.ports', (port, portPath) => unknownKeys(port, servicePort, portPath, out));
  }
  return out;
}

type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export function parseFieldValidation(value: string | null): FieldValidation {
  if (value === null || value === '' || value === 'Warn') return 'Warn';
  if (value === 'Strict' || value === 'Ignore') return value;
  throw new ApiError(400, 'BadRequest', `fieldValidation must be one of Ignore, Warn, Strict, got "${value}"`);
}

/** Throws for Strict; returns the warnings to send for Warn. */
export function checkFields(kind: string, version: string, body: unknown, mode: FieldValidation): string[] {
  if (mode === 'Ignore') return [];
  const unknown = unknownFields(kind, body);
  if (unknown.length === 0) return [];
  if (mode === 'Strict') {
    const list = unknown.map((field) => `unknown field "${field}"`).join(', ');
    throw new ApiError(400, 'BadRequest', `${kind} in version "${version}" cannot be handled as a ${kind}: strict decoding error: ${list}`);
  }
  return unknown.map((field) => `unknown field "${field}"`);
}
