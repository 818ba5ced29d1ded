/**
 * Static pod manifests: one file holds one or more YAML/JSON documents, each a v1 Pod. A file is
 * accepted or rejected as a whole, so that a half-valid file never starts half its pods; the
 * error names the file, the document and the field, and never affects other files.
 *
 * The defaults applied are the API server's v1 defaults for the fields the agent reads
 * (k8s.io/kubernetes pkg/apis/core/v1/defaults.go: SetDefaults_Pod, SetDefaults_Container,
 * SetDefaults_Probe), as the kubelet's file source decodes manifests through the same scheme
 * before hashing them (pkg/kubelet/config/common.go tryDecodeSinglePod).
 */
import { parseAllDocuments } from 'yaml';
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import { defaultImagePullPolicy } from '../pods/image-policy.js';
import { maxNestingDepth, nestingProblem } from '../../lib/nesting.js';

export class ManifestError extends Error {
  constructor(
    readonly source: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`static pod manifest "${source}": ${message}`, options);
    this.name = 'ManifestError';
  }
}

const manifestExtensions = ['.yaml', '.yml', '.json'] as const;

/** True for the file names the static pod source reads (hidden files are skipped, as the kubelet does). */
export function isManifestFileName(name: string): boolean {
  const base = name.slice(name.lastIndexOf('/') + 1);
  if (base.startsWith('.')) return false;
  return manifestExtensions.some((ext) => base.toLowerCase().endsWith(ext));
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(source: string, doc: number, field: string, message: string): never {
  throw new ManifestError(source, `document ${doc + 1}: field "${field}": ${message}`);
}

function checkName(source: string, doc: number, field: string, value: unknown, pattern: RegExp, max: number): string {
  if (typeof value !== 'string' || value === '') fail(source, doc, field, 'is required');
  if (value.length > max || !pattern.test(value)) {
    fail(source, doc, field, `invalid name ${JSON.stringify(value)} (lower-case alphanumerics and "-"${pattern === dnsSubdomain ? ' or "."' : ''}, at most ${max} characters)`);
  }
  return value;
}

function checkContainer(source: string, doc: number, field: string, value: unknown, names: Set<string>): void {
  if (!isObject(value)) fail(source, doc, field, 'must be an object');
  const name = checkName(source, doc, `${field}.name`, value.name, dnsLabel, 63);
  if (names.has(name)) fail(source, doc, `${field}.name`, `duplicate container name "${name}"`);
  names.add(name);
  if (typeof value.image !== 'string' || value.image.trim() === '') fail(source, doc, `${field}.image`, 'is required');
  for (const key of ['command', 'args'] as const) {
    const list = value[key];
    if (list !== undefined && (!Array.isArray(list) || list.some((item) => typeof item !== 'string'))) {
      fail(source, doc, `${field}.${key}`, 'must be a list of strings');
    }
  }
  const policy = value.imagePullPolicy;
  if (policy !== undefined && !['Always', 'IfNotPresent', 'Never'].includes(String(policy))) {
    fail(source, doc, `${field}.imagePullPolicy`, `unsupported value ${JSON.stringify(policy)} (Always, IfNotPresent or Never)`);
  }
  const ports = value.ports;
  if (ports !== undefined) {
    if (!Array.isArray(ports)) fail(source, doc, `${field}.ports`, 'must be a list');
    ports.forEach((port: unknown, index) => {
      const p = isObject(port) ? port.containerPort : undefined;
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) {
        fail(source, doc, `${field}.ports[${index}].containerPort`, 'must be a port number between 1 and 65535');
      }
    });
  }
}

/** Structural validation of one decoded document: what the agent relies on to run the pod. */
export function validatePodDocument(source: string, doc: number, data: unknown): V1Pod {
  if (!isObject(data)) fail(source, doc, '(document)', 'expected a Pod object');
  if (data.apiVersion !== 'v1') fail(source, doc, 'apiVersion', `expected "v1", got ${JSON.stringify(data.apiVersion)}`);
  if (data.kind !== 'Pod') fail(source, doc, 'kind', `expected "Pod", got ${JSON.stringify(data.kind)}`);
  if (!isObject(data.metadata)) fail(source, doc, 'metadata', 'is required');
  checkName(source, doc, 'metadata.name', data.metadata.name, dnsSubdomain, 253);
  if (data.metadata.namespace !== undefined) checkName(source, doc, 'metadata.namespace', data.metadata.namespace, dnsLabel, 63);
  const spec = data.spec;
  if (!isObject(spec)) fail(source, doc, 'spec', 'is required');
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) fail(source, doc, 'spec.containers', 'must list at least one container');
  const names = new Set<string>();
  if (spec.initContainers !== undefined) {
    if (!Array.isArray(spec.initContainers)) fail(source, doc, 'spec.initContainers', 'must be a list');
    spec.initContainers.forEach((c: unknown, i) => checkContainer(source, doc, `spec.initContainers[${i}]`, c, names));
  }
  spec.containers.forEach((c: unknown, i) => checkContainer(source, doc, `spec.containers[${i}]`, c, names));
  const policy = spec.restartPolicy;
  if (policy !== undefined && !['Always', 'OnFailure', 'Never'].includes(String(policy))) {
    fail(source, doc, 'spec.restartPolicy', `unsupported value ${JSON.stringify(policy)} (Always, OnFailure or Never)`);
  }
  if (spec.hostNetwork !== undefined && typeof spec.hostNetwork !== 'boolean') fail(source, doc, 'spec.hostNetwork', 'must be true or false');
  if (spec.volumes !== undefined) {
    if (!Array.isArray(spec.volumes)) fail(source, doc, 'spec.volumes', 'must be a list');
    const volumes = new Set<string>();
    spec.volumes.forEach((v: unknown, i) => {
      const name = checkName(source, doc, `spec.volumes[${i}].name`, isObject(v) ? v.name : undefined, dnsLabel, 63);
      if (volumes.has(name)) fail(source, doc, `spec.volumes[${i}].name`, `duplicate volume name "${name}"`);
      volumes.add(name);
    });
  }
  return data as V1Pod;
}

function defaultProbe(probe: V1Probe | undefined): void {
  if (!probe) return;
  probe.timeoutSeconds ??= 1;
  probe.periodSeconds ??= 10;
  probe.successThreshold ??= 1;
  probe.failureThreshold ??= 3;
}

function defaultContainer(container: V1Container, hostNetwork: boolean): void {
  container.imagePullPolicy ??= defaultImagePullPolicy(container.image ?? '');
  container.terminationMessagePath ??= '/dev/termination-log';
  container.terminationMessagePolicy ??= 'File';
  for (const port of container.ports ?? []) {
    port.protocol ??= 'TCP';
    // SetDefaults_Pod: with hostNetwork, hostPort defaults to containerPort.
    if (hostNetwork) port.hostPort ??= port.containerPort;
  }
  defaultProbe(container.livenessProbe);
  defaultProbe(container.readinessProbe);
  defaultProbe(container.startupProbe);
}

/** Applies the v1 defaults the agent depends on. Mutates and returns the pod. */
export function applyPodDefaults(pod: V1Pod): V1Pod {
  const spec = pod.spec!;
  spec.restartPolicy ??= 'Always';
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.schedulerName ??= 'default-scheduler';
  spec.enableServiceLinks ??= true;
  spec.securityContext ??= {};
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) defaultContainer(c, spec.hostNetwork === true);
  return pod;
}

/**
 * YAML/JSON text → plain documents (null for an empty one), or the first syntax error or shape
 * problem (nested deeper than maxDepth: such a value would overflow the stack of whatever
 * handles it next, first of all the structured clone carrying a worker's answer back).
 * Self-contained on purpose (parseAll and shapeProblem are passed in, nothing else is
 * referenced): it also runs in a worker thread for large manifests (manifest-worker.ts), from
 * its source text.
 */
export function yamlDocuments(
  parseAll: typeof parseAllDocuments,
  shapeProblem: typeof nestingProblem,
  text: string,
  maxDepth: number,
): { documents: unknown[] } | { error: string } {
  let parsed: ReturnType<typeof parseAllDocuments>;
  try {
    parsed = parseAll(text);
  } catch (error) {
    return { error: `cannot parse as YAML or JSON: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` };
  }
  if (!Array.isArray(parsed)) return { error: 'not a YAML or JSON document' };
  const documents: unknown[] = [];
  for (let index = 0; index < parsed.length; index++) {
    const document = parsed[index]!;
    if (document.errors.length > 0) {
      const first = document.errors[0]!;
      const line = first.linePos?.[0]?.line;
      return { error: `document ${index + 1}: invalid YAML${line ? ` at line ${line}` : ''}: ${first.message.split('\n')[0]}` };
    }
    let value: unknown;
    try {
      value = document.contents === null ? null : document.toJS();
    } catch (error) {
      // e.g. an alias bomb past yaml's maxAliasCount, or nesting deeper than the stack
      return { error: `document ${index + 1}: cannot be decoded: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` };
    }
    const problem = shapeProblem(value, maxDepth);
    if (problem) return { error: `document ${index + 1} ${problem}` };
    documents.push(value);
  }
  return { documents };
}

/** Plain documents → validated, defaulted pods; throws ManifestError. */
export function podsFromDocuments(documents: readonly unknown[], source: string): V1Pod[] {
  const pods: V1Pod[] = [];
  const names = new Set<string>();
  documents.forEach((document, index) => {
    if (document === null) return;
    const pod = applyPodDefaults(validatePodDocument(source, index, document));
    const key = `${pod.metadata!.namespace ?? 'default'}/${pod.metadata!.name}`;
    if (names.has(key)) fail(source, index, 'metadata.name', `duplicate pod "${key}" in this file`);
    names.add(key);
    pods.push(pod);
  });
  if (pods.length === 0) throw new ManifestError(source, 'holds no pod (empty file)');
  return pods;
}

/** Parses one manifest's text into validated, defaulted pods on this thread; throws ManifestError. */
export function parseManifest(text: string, source: string): V1Pod[] {
  const parsed = yamlDocuments(parseAllDocuments, nestingProblem, text, maxNestingDepth);
  if ('error' in parsed) throw new ManifestError(source, parsed.error);
  return podsFromDocuments(parsed.documents, source);
}
