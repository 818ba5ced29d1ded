/**
 * The probe manager as the agent uses it (the kubelet's prober.NewManager in NewMainKubelet):
 * probes run through the runtime's execSync and the network probers; what they learn goes back
 * to the pod workers (a readiness/startup change resyncs the pod, a liveness/startup failure
 * kills the container) and to the node's event recorder (Unhealthy, ProbeWarning).
 */
import type { Registry } from 'prom-client';
import type { ContainerRuntime } from '../../cri/runtime.js';
import type { EventRecorder } from '../../lib/events.js';
import { podReference } from '../../lib/events.js';
import type { Logger } from '../../lib/log.js';
import { HandlerProber, ProbeManager, executorFromRuntime, probeUserAgent, type Prober, type ProbeListener } from '../../probes/index.js';
import { kubeletVersion } from '../node/manager.js';
import type { PodWorkers } from './workers.js';

/** Probes know containers by their status containerID ("docker://<id>"); the runtime by the bare id. */
function runtimeIdsOnly(runtime: Pick<ContainerRuntime, 'execSync'>): Pick<ContainerRuntime, 'execSync'> {
  return { execSync: (id, cmd, timeoutSeconds) => runtime.execSync(id.replace(/^[a-z]+:\/\//, ''), cmd, timeoutSeconds) };
}

/** Refuses network probes when the pod network is not reachable from the agent's namespace. */
function guardedProber(inner: Prober, reachable: boolean): Prober {
  if (reachable) return inner;
  return {
    probe: async (spec, context) =>
      spec.handler.kind === 'exec' ? inner.probe(spec, context) : { result: 'failure', output: `${spec.handler.kind} probes are disabled: the pod network is not reachable from the agent's network namespace` },
  };
}

type WorkerView = Pick<PodWorkers, 'get' | 'podEvent'>;

/** Probe results to the pod workers, probe events to the recorder. */
function workerProbeListener(workers: () => WorkerView, events: Pick<EventRecorder, 'record'>, log: Logger): ProbeListener {
  return {
    resultChanged: (update) => workers().podEvent(update.podUid),
    killContainer: (request) => {
      log.info({ pod: `${request.namespace}/${request.podName}`, container: request.containerName, reason: request.reason }, request.message);
      workers().get(request.podUid)?.killForProbe(request.containerId, request.gracePeriodSeconds, request.message);
    },
    event: (event) => {
      log.info({ pod: `${event.namespace}/${event.podName}`, container: event.containerName, reason: event.reason }, event.message);
      events.record({
        involvedObject: podReference({ metadata: { name: event.podName, namespace: event.namespace, uid: event.podUid } }, event.containerName),
        type: event.type,
        reason: event.reason,
        message: event.message,
      });
    },
  };
}

interface PodProbesOptions {
  runtime: Pick<ContainerRuntime, 'execSync'>;
  /** False: pods live in another network namespace; only exec probes run (agent/command.ts). */
  podNetworkReachable: boolean;
  /** The pod workers (built after the probe manager, which they read). */
  workers: () => WorkerView;
  events: Pick<EventRecorder, 'record'>;
  registry: Registry;
  log: Logger;
}

export function createPodProbes(options: PodProbesOptions): ProbeManager {
  const { log } = options;
  return new ProbeManager({
    prober: guardedProber(new HandlerProber(executorFromRuntime(runtimeIdsOnly(options.runtime)), probeUserAgent(kubeletVersion)), options.podNetworkReachable),
    listener: workerProbeListener(options.workers, options.events, log),
    statusProvider: {
      getPodStatus: (uid) => options.workers().get(uid)?.status,
      isPodTerminationRequested: (uid) => Boolean(options.workers().get(uid)?.currentPod.metadata?.deletionTimestamp),
    },
    registry: options.registry,
    logger: log,
  });
}
