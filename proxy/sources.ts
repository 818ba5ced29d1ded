/**
 * Services and EndpointSlices from the API through the informer helper (lib/informer.ts: list,
 * then watch; relist after a 410; the one retry policy). Like kube-proxy, the proxy does not sync
 * before both caches have listed once (start() waits for that, while failed lists are retried),
 * so a restart never programs an empty ruleset over a working one.
 */
import type { KubeConfig, V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { CoreV1Api, DiscoveryV1Api } from '../lib/kube-client.js';
import { Informer } from '../lib/informer.js';
import type { Logger } from '../lib/log.js';
import type { ChangeTracker } from './tracker.js';

export interface ApiSources {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** What the informers feed: the proxy's ChangeTracker, or the cluster DNS's record index (dns/). */
type SourceSink = Pick<ChangeTracker, 'upsertService' | 'deleteService' | 'upsertSlice' | 'deleteSlice'>;

/** Informers for all Services and EndpointSlices, feeding the tracker. */
export function apiSources(kubeConfig: KubeConfig, tracker: SourceSink, log: Logger): ApiSources {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
  const services = new Informer<V1Service>({
    kubeConfig,
    path: '/api/v1/services',
    list: (selectors) => core.listServiceForAllNamespaces(selectors),
    onAdd: (service) => tracker.upsertService(service),
    onUpdate: (service) => tracker.upsertService(service),
    onDelete: (service) => tracker.deleteService(service),
    what: 'Services',
    log,
  });
  const slices = new Informer<V1EndpointSlice>({
    kubeConfig,
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    list: (selectors) => discovery.listEndpointSliceForAllNamespaces(selectors),
    onAdd: (slice) => tracker.upsertSlice(slice),
    onUpdate: (slice) => tracker.upsertSlice(slice),
    onDelete: (slice) => tracker.deleteSlice(slice),
    what: 'EndpointSlices',
    log,
  });
  return {
    async start() {
      await Promise.all([services.start(), slices.start()]);
      // kube-proxy: no sync before both caches are filled (cache.WaitForCacheSync).
      await Promise.all([services.whenSynced(), slices.whenSynced()]);
    },
    async stop() {
      await Promise.all([services.stop(), slices.stop()]);
    },
  };
}
