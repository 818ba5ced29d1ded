/**
 * The API objects a pod's environment and volumes refer to (configMaps and secrets), read when
 * its containers are started, as the kubelet's configMapManager/secretManager do for env and
 * volumes. A static pod may not refer to API objects (it must run without the API server), so
 * it gets none; an object that does not exist is absent (the pod's `optional` decides).
 */
import type { CoreV1Api, V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import { describeError } from '../../lib/errors.js';
import { isStaticPod } from '../../lib/k8s/pod-source.js';
import { apiErrorCode } from '../status/manager.js';
import { referencedObjects, type EnvObjects } from './env.js';

export function apiPodObjects(core: Pick<CoreV1Api, 'readNamespacedConfigMap' | 'readNamespacedSecret'>): (pod: V1Pod) => Promise<EnvObjects> {
  return async (pod) => {
    const configMaps = new Map<string, V1ConfigMap>();
    const secrets = new Map<string, V1Secret>();
    if (!isStaticPod(pod)) {
      const namespace = pod.metadata?.namespace ?? 'default';
      const refs = referencedObjects(pod);
      const read = async <T>(fetch: () => Promise<T>): Promise<T | undefined> => {
        try {
          return await fetch();
        } catch (error) {
          if (apiErrorCode(error) === 404) return undefined;
          throw new Error(`cannot read objects of pod ${namespace}/${pod.metadata?.name}: ${describeError(error)}`, { cause: error });
        }
      };
      for (const name of refs.configMaps) {
        const cm = await read(() => core.readNamespacedConfigMap({ name, namespace }));
        if (cm) configMaps.set(name, cm);
      }
      for (const name of refs.secrets) {
        const secret = await read(() => core.readNamespacedSecret({ name, namespace }));
        if (secret) secrets.set(name, secret);
      }
    }
    return { configMap: (name) => configMaps.get(name), secret: (name) => secrets.get(name) };
  };
}
