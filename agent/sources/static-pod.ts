/**
 * Identity of pods that come from files or a URL, as the kubelet gives them
 * (pkg/kubelet/config/common.go applyDefaults): the UID is the md5 of the decoded pod followed by
 * "host:<nodeName>" and "file:<path>" (or "url:<url>"), unless the manifest sets one; the name is
 * "<name>-<nodeName>"; the namespace defaults to "default"; spec.nodeName is this node; and the
 * config hash annotation is the UID. The config source and first-seen annotations are set by the
 * pod config merger (pkg/kubelet/config/config.go, pkg/kubelet/types/pod_update.go).
 *
 * Mirror pods (pkg/kubelet/pod/mirror_client.go CreateMirrorPod): a copy of the static pod on the
 * API server whose "kubernetes.io/config.mirror" annotation holds the config hash and whose
 * controller owner reference is the Node.
 */
import { createHash } from 'node:crypto';
import type { V1OwnerReference, V1Pod } from '@kubernetes/client-node';

import { configHash, configHashAnnotation, configMirrorAnnotation, configSourceAnnotation } from '../../lib/k8s/pod-source.js';

/** JSON with object keys sorted at every level: the same pod always encodes the same way. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : stableJson(item))).join(',')}]`;
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${stableJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The kubelet's static pod UID: md5(pod) + host + source, hex. */
export function staticPodUid(pod: V1Pod, nodeName: string, kind: 'file' | 'http', location: string): string {
  const hash = createHash('md5');
  hash.update(stableJson(pod));
  if (kind === 'file') {
    hash.update(`host:${nodeName}`);
    hash.update(`file:${location}`);
  } else {
    hash.update(`url:${location}`);
  }
  return hash.digest('hex');
}

function staticPodName(name: string, nodeName: string): string {
  return `${name}-${nodeName}`;
}

/**
 * Turns a parsed manifest pod into the pod the agent runs: UID, name, namespace, nodeName and the
 * source/hash annotations. Returns a new object; the input is not changed.
 */
export function toStaticPod(parsed: V1Pod, nodeName: string, kind: 'file' | 'http', location: string): V1Pod {
  const pod = structuredClone(parsed);
  const metadata = (pod.metadata ??= {});
  const uid = metadata.uid || staticPodUid(parsed, nodeName, kind, location);
  metadata.uid = uid;
  metadata.name = staticPodName(metadata.name!, nodeName);
  metadata.namespace ||= 'default';
  pod.spec!.nodeName = nodeName;
  metadata.annotations = { ...metadata.annotations, [configHashAnnotation]: uid, [configSourceAnnotation]: kind };
  delete pod.status;
  return pod;
}

/** The mirror pod to create on the API server for a static pod. */
export function buildMirrorPod(staticPod: V1Pod, node: { name: string; uid: string }): V1Pod {
  const hash = configHash(staticPod);
  if (!hash) throw new Error(`pod "${staticPod.metadata?.name}" is not a static pod (no ${configHashAnnotation} annotation)`);
  const owner: V1OwnerReference = { apiVersion: 'v1', kind: 'Node', name: node.name, uid: node.uid, controller: true };
  const metadata = structuredClone(staticPod.metadata!);
  delete metadata.uid;
  delete metadata.resourceVersion;
  delete metadata.creationTimestamp;
  delete metadata.deletionTimestamp;
  metadata.annotations = { ...metadata.annotations, [configMirrorAnnotation]: hash };
  metadata.ownerReferences = [owner];
  return { apiVersion: 'v1', kind: 'Pod', metadata, spec: structuredClone(staticPod.spec!) };
}

/**
 * Whether an existing mirror pod still stands for the static pod: same hash and not being
 * deleted (pkg/kubelet/pod/pod_manager.go IsMirrorPodOf; a mismatch means delete and recreate).
 */
export function mirrorMatches(mirror: V1Pod, staticPod: V1Pod): boolean {
  if (mirror.metadata?.deletionTimestamp) return false;
  const hash = mirror.metadata?.annotations?.[configMirrorAnnotation];
  return hash !== undefined && hash === configHash(staticPod);
}
