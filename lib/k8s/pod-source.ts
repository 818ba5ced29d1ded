/**
 * Where a pod came from, as the kubelet marks it (pkg/kubelet/types/pod_update.go): the config
 * source annotation ("file", "http" or "api") on static pods, and the config mirror annotation on
 * the API-server copy of a static pod (pkg/kubelet/pod/mirror_client.go).
 */
import type { V1Pod } from '@kubernetes/client-node';

export const configSourceAnnotation = 'kubernetes.io/config.source';
export const configHashAnnotation = 'kubernetes.io/config.hash';
export const configSeenAnnotation = 'kubernetes.io/config.seen';
export const configMirrorAnnotation = 'kubernetes.io/config.mirror';

type PodSourceKind = 'file' | 'http' | 'api';

/** The pod's config source; anything that is not a file or URL manifest is an API pod. */
function podSource(pod: V1Pod): PodSourceKind {
  const source = pod.metadata?.annotations?.[configSourceAnnotation];
  return source === 'file' || source === 'http' ? source : 'api';
}

/** kubetypes.IsStaticPod: the pod came from a manifest file or URL, not the API server. */
export function isStaticPod(pod: V1Pod): boolean {
  return podSource(pod) !== 'api';
}

/** kubetypes.IsMirrorPod: the API server's copy of a static pod. */
export function isMirrorPod(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[configMirrorAnnotation] !== undefined;
}

export function configHash(pod: V1Pod): string | undefined {
  return pod.metadata?.annotations?.[configHashAnnotation];
}
