/**
 * Services and EndpointSlices from the API through client-node informers (list, then watch;
 * relisted after a 410). Like kube-proxy, the proxy does not sync before both caches have
 * listed once (start() waits for that, retrying failed lists), so a restart never programs an
 * empty ruleset over a working one. A watch that
 * ends in an error is restarted after a short delay.
 */
import { CoreV1Api, DiscoveryV1Api, makeInformer, type Informer, type KubeConfig, type KubernetesObject, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import type { Logger } from '../lib/log.js';
import type { ChangeTracker } from './tracker.js';

export interface ApiSources {
  start(): Promise<void>;
  stop(): Promise<void>;
}

function wire<T extends KubernetesObject>(informer: Informer<T>, upsert: (object: T) => void, remove: (object: T) => void, log: Logger, what: string, stopped: () => boolean): void {
  informer.on('add', upsert);
  informer.on('update', upsert);
  informer.on('delete', remove);
  informer.on('error', (error: unknown) => {
    if (stopped()) return;
    log.warn({ err: error }, `${what} watch failed; restarting in 1 s`);
    setTimeout(() => {
      if (!stopped()) informer.start().catch((cause: unknown) => log.warn({ err: cause }, `${what} watch restart failed`));
    }, 1000).unref();
  });
}

/** What the informers feed: the proxy's ChangeTracker, or the cluster DNS's record index (dns/). */
type SourceSink = Pick<ChangeTracker, 'upsertService' | 'deleteService' | 'upsertSlice' | 'deleteSlice'>;

/** Informers for all Services and EndpointSlices, feeding the tracker. */
export function apiSources(kubeConfig: KubeConfig, tracker: SourceSink, log: Logger): ApiSources {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
  // "listed" resolves after the first successful list; the informer adds the items in the
  // continuation right after it, so a setImmediate later the cache holds them.
  let servicesListed!: () => void;
  let slicesListed!: () => void;
  const listed = Promise.all([new Promise<void>((resolve) => (servicesListed = resolve)), new Promise<void>((resolve) => (slicesListed = resolve))]);
  const services = makeInformer<V1Service>(kubeConfig, '/api/v1/services', () =>
    core.listServiceForAllNamespaces().then((list) => (servicesListed(), list)),
  );
  const slices = makeInformer<V1EndpointSlice>(kubeConfig, '/apis/discovery.k8s.io/v1/endpointslices', () =>
    discovery.listEndpointSliceForAllNamespaces().then((list) => (slicesListed(), list)),
  );
  let stopped = false;
  wire(services, (s) => tracker.upsertService(s), (s) => tracker.deleteService(s), log, 'Service', () => stopped);
  wire(slices, (s) => tracker.upsertSlice(s), (s) => tracker.deleteSlice(s), log, 'EndpointSlice', () => stopped);
  return {
    async start() {
      await Promise.all([services.start(), slices.start()]);
      await listed;
      await new Promise((resolve) => setImmediate(resolve));
    },
    async stop() {
      stopped = true;
      await Promise.all([services.stop(), slices.stop()]);
    },
  };
}
