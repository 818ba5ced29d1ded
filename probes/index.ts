/**
 * probes/ — liveness, readiness and startup probes with the kubelet's semantics
 * (https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/,
 * https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/).
 *
 * Public API for the agent
 * ------------------------
 * Construct once:
 *   const probes = new ProbeManager({
 *     prober: new HandlerProber(executorFromRuntime(runtime), probeUserAgent(kubeletVersion)),
 *                                            // executorFromRuntime adapts a CRI-shaped execSync
 *                                            // (timeout in seconds, DeadlineExceeded on timeout)
 *     listener,                              // ProbeListener: receives changes, kills, events
 *     statusProvider,                        // PodStatusProvider: latest V1PodStatus per pod UID
 *     registry,                              // prom-client Registry for prober_* metrics
 *   });
 *   probes.start();  …  probes.stop();       // both idempotent; stop() ends every worker
 *
 * Pods:
 *   probes.addPod(pod)        when the agent admits a pod: one worker per (pod UID, container,
 *                             probe type). Validates first; throws ProbeValidationError (every
 *                             problem listed, e.g. "successThreshold: must be 1" on liveness)
 *                             and adds nothing. Calling it again for the same pod is a no-op.
 *   probes.removePod(uid)     when the pod is gone; cleanupPods(desiredUids) for a full resync.
 *
 * What workers read: statusProvider.getPodStatus(uid) — phase, podIP, containerStatuses[] with
 * containerID and state.running.startedAt / state.terminated. A new containerID for a container
 * (the agent restarted it) resets that worker: fresh counters, cached result back to the
 * initial value (readiness Failure, liveness Success, startup Unknown), initialDelaySeconds
 * counted again from the new start. Nothing else is needed on restart: the worker notices at
 * its next tick (at most one period; at once for readiness when the agent asks ready()) and
 * drops the old container's result then.
 * isPodTerminationRequested(uid) (optional) stops liveness/startup probing during deletion.
 * A worker ends by itself (and drops its result) when the pod is Succeeded/Failed, the
 * container terminated under restartPolicy Never, or deletion was requested (liveness/startup).
 *
 * Scheduling: each worker ticks every periodSeconds on a fixed schedule; during the first
 * period after start() the first tick is delayed by a random part of the period (jitter);
 * every probe is bounded by timeoutSeconds, so a hanging target only delays its own worker.
 * Probes run from the agent's own network namespace (the node's), like the kubelet's.
 *
 * What the agent learns (ProbeListener, synchronous, only on change):
 *   resultChanged({podUid, containerName, containerId, probeType, result})
 *       — readiness flips → recompute the pod's Ready/ContainersReady (and so EndpointSlices);
 *         startup success → the container is started (liveness/readiness begin).
 *   killContainer({... reason: 'LivenessProbe'|'StartupProbe', message, gracePeriodSeconds})
 *       — a liveness/startup probe failed failureThreshold times: kill the container with that
 *         grace period (probe terminationGracePeriodSeconds, else the pod's, at least 2 s) and
 *         restart it per restartPolicy; record message in lastState. The worker holds until it
 *         sees a new containerID. Readiness never asks for a kill.
 *   event({reason: 'Unhealthy'|'ProbeWarning', message: 'Liveness probe failed: …'})
 *       — one per failed probe, as the kubelet records them.
 * Status generation: probes.updatePodStatus(uid, status) fills containerStatuses[].started and
 * .ready (no readiness probe → ready once running and started); podReadiness(pod, status)
 * then gives ContainersReady/Ready including readiness gates. getResult(containerId, type)
 * reads the cache directly. By name: ready(uid, name, containerId?) / started(uid, name,
 * containerId?) give true/false, or undefined when there is no such probe or no result yet
 * (a readiness worker without a result probes at once); pass the current container ID so a
 * result of the previous container is never used after a restart.
 */
export { ProbeManager, type ProbeManagerOptions } from './manager.js';
export { HandlerProber, ProbeError, defaultProbeUserAgent, probeUserAgent, resolvePort, probeExec, type Prober, type ProbeContext } from './prober.js';
export { resolveProbe, resolveContainerProbes, ProbeValidationError, type ProbeSpec, type ProbeHandler } from './spec.js';
export { podReadiness, type ReadinessVerdict } from './readiness.js';
export { probeHttp, maxResponseBodyBytes } from './http.js';
export { probeTcp } from './tcp.js';
export { probeGrpc, healthServiceDefinition } from './grpc.js';
export * from './types.js';
