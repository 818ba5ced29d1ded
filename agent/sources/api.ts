/**
 * The API source (pkg/kubelet/config/apiserver.go): pods whose spec.nodeName is this node, kept
 * by the informer helper (lib/informer.ts: list + watch, relist on 410, one retry policy) with a
 * field selector. Every change emits the complete set.
 */
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { CoreV1Api } from '../../lib/kube-client.js';
import type { Logger } from '../../lib/log.js';
import { Informer, RetryBackoff } from '../../lib/informer.js';

export const apiSourceName = 'api';

interface ApiPodSourceOptions {
  kubeConfig: KubeConfig;
  nodeName: string;
  onPods(source: string, pods: V1Pod[]): void;
  log: Logger;
  /** First restart delay after a watch failure (ms); doubles to 30 s. */
  retryMs?: number;
}

export class ApiPodSource {
  private readonly informer: Informer<V1Pod>;

  constructor(options: ApiPodSourceOptions) {
    const fieldSelector = `spec.nodeName=${options.nodeName}`;
    const core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.informer = new Informer<V1Pod>({
      kubeConfig: options.kubeConfig,
      path: '/api/v1/pods',
      list: (selectors) => core.listPodForAllNamespaces(selectors),
      fieldSelector,
      onItems: (pods) => options.onPods(apiSourceName, pods),
      what: 'pods of this node',
      log: options.log,
      ...(options.retryMs !== undefined ? { backoff: new RetryBackoff(options.retryMs) } : {}),
    });
  }

  /** Starts the watch; resolves once the first list is in (or failed, then it keeps retrying). */
  start(): Promise<void> {
    return this.informer.start();
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  /** Whether the first list has been received. */
  get hasSynced(): boolean {
    return this.informer.hasSynced;
  }
}
