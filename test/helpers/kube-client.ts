/**
 * API clients from a kubeconfig file, for tests that talk to the Kubernetes API
 * (the components build their own from lib/config/kubeconfig.ts). client-node is loaded on demand (see lib/config/kubeconfig.ts).
 *
 *   const clients = await createKubeClients('/path/kubeconfig');
 *   await clients.core.patchNodeStatus({ name, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
 *   const informer = new Informer<V1Pod>({ kubeConfig: clients.kubeConfig, path: '/api/v1/pods', list: (s) => clients.core.listPodForAllNamespaces(s), … }); // lib/informer.ts
 */
import type { CoordinationV1Api, CoreV1Api, DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';
import { loadKubeconfig } from '../../lib/config/kubeconfig.js';

export interface KubeClients {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  discovery: DiscoveryV1Api;
  coordination: CoordinationV1Api;
}

export async function createKubeClients(kubeconfigFile: string): Promise<KubeClients> {
  const kubeConfig = await loadKubeconfig(kubeconfigFile);
  const k8s = await import('@kubernetes/client-node');
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(k8s.CoreV1Api),
    discovery: kubeConfig.makeApiClient(k8s.DiscoveryV1Api),
    coordination: kubeConfig.makeApiClient(k8s.CoordinationV1Api),
  };
}
