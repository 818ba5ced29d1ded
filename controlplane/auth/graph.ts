/**
 * The Node authorizer's graph, answered from the registry at request time (kube-apiserver keeps
 * an in-memory graph fed by informers; the answers are the same): a pod's node, and whether any
 * pod bound to a node references a secret / configmap / persistentvolumeclaim (volumes,
 * projected sources, env, envFrom, imagePullSecrets), as pkg/auth/nodeidentifier +
 * plugin/pkg/auth/authorizer/node/graph_populator.go derive the edges.
 */
import type { Registry } from '../registry.js';
import { resourceNamed } from '../resources.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';
import { isRecord } from '../util.js';
import type { NodeGraph } from './authz.js';

type Kind = 'secrets' | 'configmaps' | 'persistentvolumeclaims';

/** Names of the objects of each kind a pod spec uses (podutil.VisitPodSecretNames / VisitPodConfigmapNames). */
export function podReferences(pod: KObject): Record<Kind, Set<string>> {
  const refs: Record<Kind, Set<string>> = { secrets: new Set(), configmaps: new Set(), persistentvolumeclaims: new Set() };
  const spec = isRecord(pod.spec) ? pod.spec : {};
  const add = (kind: Kind, name: unknown) => {
    if (typeof name === 'string' && name !== '') refs[kind].add(name);
  };
  for (const secret of Array.isArray(spec.imagePullSecrets) ? spec.imagePullSecrets : []) if (isRecord(secret)) add('secrets', secret.name);
  for (const volume of Array.isArray(spec.volumes) ? spec.volumes : []) {
    if (!isRecord(volume)) continue;
    if (isRecord(volume.secret)) add('secrets', volume.secret.secretName);
    if (isRecord(volume.configMap)) add('configmaps', volume.configMap.name);
    if (isRecord(volume.persistentVolumeClaim)) add('persistentvolumeclaims', volume.persistentVolumeClaim.claimName);
    if (volume.ephemeral !== undefined) add('persistentvolumeclaims', `${pod.metadata.name ?? ''}-${String(volume.name)}`);
    const sources = isRecord(volume.projected) && Array.isArray(volume.projected.sources) ? volume.projected.sources : [];
    for (const source of sources) {
      if (isRecord(source) && isRecord(source.secret)) add('secrets', source.secret.name);
      if (isRecord(source) && isRecord(source.configMap)) add('configmaps', source.configMap.name);
    }
    for (const key of ['cephfs', 'cinder', 'flexVolume', 'iscsi', 'rbd', 'scaleIO', 'storageos', 'azureFile', 'csi']) {
      const source = volume[key];
      if (isRecord(source)) add('secrets', isRecord(source.secretRef) ? source.secretRef.name : source.secretName);
    }
  }
  const containers = [spec.containers, spec.initContainers, spec.ephemeralContainers].flatMap((list) => (Array.isArray(list) ? list : []));
  for (const container of containers) {
    if (!isRecord(container)) continue;
    for (const from of Array.isArray(container.envFrom) ? container.envFrom : []) {
      if (isRecord(from) && isRecord(from.secretRef)) add('secrets', from.secretRef.name);
      if (isRecord(from) && isRecord(from.configMapRef)) add('configmaps', from.configMapRef.name);
    }
    for (const env of Array.isArray(container.env) ? container.env : []) {
      const valueFrom = isRecord(env) && isRecord(env.valueFrom) ? env.valueFrom : {};
      if (isRecord(valueFrom.secretKeyRef)) add('secrets', valueFrom.secretKeyRef.name);
      if (isRecord(valueFrom.configMapKeyRef)) add('configmaps', valueFrom.configMapKeyRef.name);
    }
  }
  return refs;
}

export function registryGraph(registry: Registry): NodeGraph {
  const pods = resourceNamed('pods');
  return {
    async podNode(namespace, name) {
      try {
        const pod = await registry.get(pods, namespace, name);
        const nodeName = isRecord(pod.spec) ? pod.spec.nodeName : undefined;
        return typeof nodeName === 'string' ? nodeName : undefined;
      } catch (error) {
        if (error instanceof ApiError && error.code === 404) return undefined;
        throw error;
      }
    },
    async nodeUses(node, kind, namespace, name) {
      const list = await registry.list(pods, namespace, { fieldSelector: `spec.nodeName=${node}` });
      return list.items.some((pod) => podReferences(pod)[kind].has(name));
    },
  };
}
