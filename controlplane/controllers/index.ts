/** Starts the in-process controllers; each lives in its own module. */
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../registry.js';
import type { WatchCache } from '../watch-cache.js';
import type { Cidr } from '../ipalloc.js';
import { startNamespaceController } from './namespace.js';
import { startEndpointSliceController } from './endpointslice.js';
import { startScheduler } from './scheduler.js';
import { startNodeIpam } from './node-ipam.js';
import { startNodeLifecycle } from './node-lifecycle.js';
import { startEventTtl } from './event-ttl.js';
import type { Controller } from './controller.js';
import { startReplicaSetController } from './replicaset.js';
import { startDeploymentController } from './deployment.js';
import { startGarbageCollector } from './gc.js';
import { startJobController } from './job.js';
import { startCronJobController } from './cronjob.js';
import { startDaemonSetController } from './daemonset.js';
import { startCsrController, type CsrControllerOptions } from './csr.js';
import { startBootstrapTokenControllers } from './bootstrap-tokens.js';

export interface ControllerOptions {
  clusterCidr: Cidr;
  /** Node lifecycle: a Lease older than this marks the node Unknown (kube-controller-manager --node-monitor-grace-period, 40 s). */
  nodeMonitorGracePeriodMs: number;
  /** How often the periodic controllers look again (scheduler retries, node lifecycle checks). */
  resyncMs: number;
  /** Events older than this are deleted (kube-apiserver --event-ttl, 1 h). */
  eventTtlMs: number;
  /** csrapproving + csrsigning with the cluster CA; absent: CSRs stay pending. */
  csr?: CsrControllerOptions;
}

export type { Controller } from './controller.js';

export function startControllers(registry: Registry, cache: WatchCache, log: Logger, options: Partial<ControllerOptions> & { clusterCidr: Cidr }): Controller {
  const settings: ControllerOptions = { nodeMonitorGracePeriodMs: 40_000, resyncMs: 5_000, eventTtlMs: 3_600_000, ...options };
  const child = (controller: string) => log.child({ controller });
  const controllers: Controller[] = [
    startNamespaceController(registry, cache, child('namespace')),
    startEndpointSliceController(registry, cache, child('endpointslice')),
    startScheduler(registry, cache, child('scheduler'), settings.resyncMs),
    startNodeIpam(registry, cache, child('node-ipam'), settings.clusterCidr),
    startEventTtl(registry, child('event-ttl'), settings.eventTtlMs),
    startNodeLifecycle(registry, child('node-lifecycle'), settings.nodeMonitorGracePeriodMs, Math.min(settings.resyncMs, Math.max(250, settings.nodeMonitorGracePeriodMs / 8))),
    startReplicaSetController(registry, cache, child('replicaset')),
    startDeploymentController(registry, cache, child('deployment')),
    startGarbageCollector(registry, cache, child('garbage-collector')),
    startJobController(registry, cache, child('job')),
    startCronJobController(registry, cache, child('cronjob')),
    startDaemonSetController(registry, cache, child('daemonset')),
    startBootstrapTokenControllers(registry, cache, child('bootstrap-tokens')),
    ...(settings.csr ? [startCsrController(registry, cache, child('csr'), settings.csr)] : []),
  ];
  return {
    async stop() {
      await Promise.all(controllers.map((c) => c.stop()));
    },
  };
}
