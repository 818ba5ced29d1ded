/**
 * Docker names and labels of sandboxes and containers, as cri-dockerd (and dockershim before it)
 * writes them (cri-dockerd core/naming.go, core/helpers.go), so that everything the runtime
 * reports can be rebuilt from Docker alone after the agent restarts:
 *
 *   sandbox:   k8s_POD_<pod>_<namespace>_<uid>_<attempt>
 *   container: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>
 *
 * CRI annotations are stored as labels prefixed "annotation." (cri-dockerd does the same); a
 * few knode labels carry what Docker cannot otherwise tell (the sandbox's CRI config bits that
 * teardown needs, the CRI log path).
 */
import { kubeLabels, type ContainerMetadata, type Labels, type PodSandboxMetadata } from '../runtime.js';

export const dockerLabels = {
  /** "podsandbox" | "container" (cri-dockerd). */
  type: 'io.kubernetes.docker.type',
  /** On containers: the id of their sandbox (cri-dockerd). */
  sandboxId: 'io.kubernetes.sandbox.id',
  /** On containers: the CRI log path (absolute) that links to Docker's log file. */
  logPath: 'io.kubernetes.container.logpath',
  /** knode: JSON of the sandbox settings needed later (see SandboxRecord). */
  sandboxRecord: 'io.knode.cri.sandbox',
  /** knode: the CRI image spec the container was created from. */
  image: 'io.knode.cri.image',
} as const;

export const sandboxType = 'podsandbox';
export const containerType = 'container';
export const sandboxContainerName = 'POD';
const annotationPrefix = 'annotation.';
const namePrefix = 'k8s';

/** Kubernetes names, namespaces and uids never contain "_", which makes the name parseable. */
function checkPart(what: string, value: string): void {
  if (!value || value.includes('_') || value.includes('/')) {
    throw new Error(`invalid ${what} "${value}": must be non-empty without "_" or "/"`);
  }
}

export function sandboxName(metadata: PodSandboxMetadata): string {
  checkPart('pod name', metadata.name);
  checkPart('pod namespace', metadata.namespace);
  checkPart('pod uid', metadata.uid);
  return [namePrefix, sandboxContainerName, metadata.name, metadata.namespace, metadata.uid, String(metadata.attempt)].join('_');
}

export function containerName(container: ContainerMetadata, pod: PodSandboxMetadata): string {
  checkPart('container name', container.name);
  return [namePrefix, container.name, pod.name, pod.namespace, pod.uid, String(container.attempt)].join('_');
}

interface ParsedName {
  container: ContainerMetadata;
  pod: PodSandboxMetadata;
}

/** Parses a Docker name (with or without the leading "/"; a random suffix after it is allowed). */
export function parseName(name: string): ParsedName | undefined {
  const parts = name.replace(/^\//, '').split('_');
  if (parts.length < 6 || parts[0] !== namePrefix) return undefined;
  const [, container, pod, namespace, uid, attemptText] = parts as [string, string, string, string, string, string];
  const attempt = Number(attemptText);
  if (!Number.isInteger(attempt) || attempt < 0) return undefined;
  return { container: { name: container, attempt }, pod: { name: pod, namespace, uid, attempt } };
}

/** Labels and annotations → Docker labels ("annotation.<key>" for annotations). */
export function toDockerLabels(labels: Labels | undefined, annotations: Labels | undefined): Labels {
  const result: Labels = { ...labels };
  for (const [key, value] of Object.entries(annotations ?? {})) result[annotationPrefix + key] = value;
  return result;
}

const internalLabels = new Set<string>([dockerLabels.type, dockerLabels.sandboxId, dockerLabels.logPath, dockerLabels.sandboxRecord, dockerLabels.image]);

/** Docker labels → CRI labels and annotations (internal labels removed). */
export function fromDockerLabels(dockerLabelSet: Labels | undefined, scope: Labels = {}): { labels: Labels; annotations: Labels } {
  const labels: Labels = {};
  const annotations: Labels = {};
  for (const [key, value] of Object.entries(dockerLabelSet ?? {})) {
    if (key.startsWith(annotationPrefix)) annotations[key.slice(annotationPrefix.length)] = value;
    else if (!internalLabels.has(key) && !(key in scope)) labels[key] = value;
  }
  return { labels, annotations };
}

/** The identity labels the kubelet also sets; the runtime sets them from the metadata. */
export function podIdentityLabels(pod: PodSandboxMetadata, container: string): Labels {
  return {
    [kubeLabels.podName]: pod.name,
    [kubeLabels.podNamespace]: pod.namespace,
    [kubeLabels.podUid]: pod.uid,
    [kubeLabels.containerName]: container,
  };
}

/** What a sandbox needs to remember beyond its name, stored as JSON in a label. */
export interface SandboxRecord {
  hostNetwork: boolean;
  hostname: string;
  logDirectory: string;
  /** Directory with the pod's resolv.conf, hostname and hosts files. */
  filesDir: string;
}

export function encodeRecord(record: SandboxRecord): string {
  return JSON.stringify(record);
}

export function decodeRecord(text: string | undefined): SandboxRecord | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<SandboxRecord>;
    return {
      hostNetwork: value.hostNetwork === true,
      hostname: String(value.hostname ?? ''),
      logDirectory: String(value.logDirectory ?? ''),
      filesDir: String(value.filesDir ?? ''),
    };
  } catch {
    // Not JSON (JSON.parse's SyntaxError): a label this runtime did not write carries no record.
    return undefined;
  }
}

/** Docker timestamps ("2026-11-22T02:14:39.123456789Z", "0001-01-01T00:00:00Z") → ns. */
export function isoToNs(text: string | undefined): number {
  if (!text || text.startsWith('0001-')) return 0;
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!match) {
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? 0 : ms * 1e6;
  }
  const seconds = Date.parse(`${match[1]}${match[3]}`) / 1000;
  const fraction = Number(((match[2] ?? '') + '000000000').slice(0, 9));
  return seconds * 1e9 + fraction;
}
