/**
 * The agent's Prometheus metrics (prom-client), named as the kubelet's (pkg/kubelet/metrics):
 * pod start latency, running pods/containers, PLEG relist duration, runtime operation latency
 * and errors. Each agent has its own registry, so several agents can live in one process (tests).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import type { ContainerRuntime } from '../../cri/runtime.js';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly podStartLatency = new Histogram({
    name: 'kubelet_pod_start_duration_seconds',
    help: 'Duration in seconds from the agent seeing a pod for the first time to the pod running',
    buckets: [0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600],
    registers: [this.registry],
  });
  readonly runningPods = new Gauge({ name: 'kubelet_running_pods', help: 'Number of pods that have a running pod sandbox', registers: [this.registry] });
  readonly runningContainers = new Gauge({ name: 'kubelet_running_containers', help: 'Number of containers currently running', labelNames: ['container_state'], registers: [this.registry] });
  readonly desiredPods = new Gauge({ name: 'kubelet_desired_pods', help: 'The number of pods the agent is being instructed to run', registers: [this.registry] });
  readonly plegRelist = new Histogram({
    name: 'kubelet_pleg_relist_duration_seconds',
    help: 'Duration in seconds for relisting pods in PLEG',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly runtimeOperations = new Histogram({
    name: 'kubelet_runtime_operations_duration_seconds',
    help: 'Duration in seconds of runtime operations, by operation type',
    labelNames: ['operation_type'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly runtimeErrors = new Counter({ name: 'kubelet_runtime_operations_errors_total', help: 'Cumulative number of runtime operation errors by operation type', labelNames: ['operation_type'], registers: [this.registry] });
  readonly manifestErrors = new Counter({ name: 'knode_static_pod_manifest_errors_total', help: 'Static pod manifests rejected', registers: [this.registry] });

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }

  /** Wraps a runtime so that every call is timed and every failure counted. */
  instrument<T extends ContainerRuntime>(runtime: T): T {
    return new Proxy(runtime, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function' || typeof property !== 'string') return value;
        return (...args: unknown[]) => {
          const end = this.runtimeOperations.startTimer({ operation_type: property });
          let result: unknown;
          try {
            result = (value as (...a: unknown[]) => unknown).apply(target, args);
          } catch (error) {
            this.runtimeErrors.inc({ operation_type: property });
            end();
            throw error;
          }
          if (result instanceof Promise) {
            return result.then(
              (ok: unknown) => {
                end();
                return ok;
              },
              (error: unknown) => {
                end();
                this.runtimeErrors.inc({ operation_type: property });
                throw error;
              },
            );
          }
          end();
          return result;
        };
      },
    });
  }

  updateRunning(pods: { pod: V1Pod; status?: V1PodStatus }[]): void {
    let podsRunning = 0;
    const states = { running: 0, exited: 0, created: 0, unknown: 0 };
    for (const { status } of pods) {
      if (status?.conditions?.find((c) => c.type === 'PodReadyToStartContainers')?.status === 'True') podsRunning++;
      for (const c of [...(status?.initContainerStatuses ?? []), ...(status?.containerStatuses ?? [])]) {
        if (c.state?.running) states.running++;
        else if (c.state?.terminated) states.exited++;
        else if (c.containerID) states.created++;
      }
    }
    this.runningPods.set(podsRunning);
    for (const [state, count] of Object.entries(states)) this.runningContainers.set({ container_state: state }, count);
  }
}
