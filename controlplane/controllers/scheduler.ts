/**
 * The scheduler: binds Pods without spec.nodeName (schedulerName default-scheduler) through
 * pods/binding, one at a time so that each decision sees the previous ones, and records what
 * kube-scheduler records: a `Scheduled` event ("Successfully assigned ns/pod to node") on bind;
 * for a Pod no node fits, PodScheduled=False (reason Unschedulable) and a `FailedScheduling`
 * Warning naming the reasons (scheduler-policy.ts).
 *
 * Unschedulable Pods are parked, as kube-scheduler's unschedulable queue does
 * (https://github.com/kubernetes/enhancements/tree/master/keps/sig-scheduling/4247-queueinghint):
 * they are tried again when something that can make room happens — a node is added or changes,
 * a pod is deleted or finishes — and otherwise at most once a minute (upstream flushes after 5 min).
 */
import type { Logger } from '../../lib/log.js';
import { bindPod, setCondition } from '../binding.js';
import type { Registry } from '../registry.js';
import { resourceNamed } from '../resources.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';
import { canonicalJson, isRecord, rfc3339 } from '../util.js';
import type { WatchCache } from '../watch-cache.js';
import { KeyQueue } from './queue.js';
import { nodeUsage, schedule } from './scheduler-policy.js';
import type { Controller } from './controller.js';
import { createEventRecorder, type EventRecorder } from './events.js';

const pods = resourceNamed('pods');
const nodes = resourceNamed('nodes');
/** How long a parked Pod waits without a cluster event before it is tried again. */
const unschedulableFlushMs = 60_000;
/** Bound on the parked set (keys of Pods; a deleted Pod leaves it on its next attempt). */
const maxParked = 100_000;

function wantsScheduling(pod: KObject): boolean {
  const spec = isRecord(pod.spec) ? pod.spec : {};
  return !spec.nodeName && (spec.schedulerName ?? 'default-scheduler') === 'default-scheduler' && !pod.metadata.deletionTimestamp;
}

const keyOf = (pod: KObject) => `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`;

class Scheduler {
  readonly queue: KeyQueue;
  /** Unschedulable Pods by key: the time of their last attempt and the spec it saw. */
  readonly parked = new Map<string, { at: number; spec: string }>();
  private readonly events: EventRecorder;

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {
    this.queue = new KeyQueue((key) => this.reconcile(key), log);
    this.events = createEventRecorder(registry, 'default-scheduler', log);
  }

  /** A cluster event that may make room: every parked Pod is tried again. */
  retryParked(): void {
    for (const key of this.parked.keys()) this.queue.add(key);
  }

  /** Periodic pass: Pods never seen (missed events, a restart) and parked ones past the flush time. */
  resync(now: number): void {
    this.registry.list(pods, undefined, { fieldSelector: 'spec.nodeName=' }).then(
      (list) => {
        for (const pod of list.items.filter(wantsScheduling)) {
          const key = keyOf(pod);
          const parked = this.parked.get(key);
          if (parked === undefined || now - parked.at >= unschedulableFlushMs) this.queue.add(key);
        }
      },
      (error: unknown) => this.log.warn({ err: error }, 'cannot list pending pods'),
    );
  }

  private async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    let pod: KObject;
    try {
      pod = await this.registry.get(pods, namespace, name);
    } catch (error) {
      if (error instanceof ApiError && error.code === 404) {
        this.parked.delete(key);
        return;
      }
      throw error;
    }
    if (!wantsScheduling(pod)) {
      this.parked.delete(key);
      return;
    }
    const nodeList = (await this.registry.list(nodes, undefined)).items;
    const podList = (await this.registry.list(pods, undefined)).items;
    const decision = schedule(pod, nodeList, nodeUsage(podList));
    if ('node' in decision) {
      this.parked.delete(key);
      try {
        await bindPod(this.registry, namespace, name, { target: { kind: 'Node', name: decision.node } });
      } catch (error) {
        if (error instanceof ApiError && (error.code === 404 || error.code === 409)) return; // gone or bound meanwhile
        throw error;
      }
      await this.events.record(pod, 'Normal', 'Scheduled', `Successfully assigned ${namespace}/${name} to ${decision.node}`);
      return;
    }
    if (this.parked.size < maxParked || this.parked.has(key)) this.parked.set(key, { at: Date.now(), spec: canonicalJson(pod.spec) });
    await this.markUnschedulable(pod, decision.unschedulable);
  }

  private async markUnschedulable(pod: KObject, message: string): Promise<void> {
    const namespace = pod.metadata.namespace as string;
    const name = pod.metadata.name as string;
    try {
      await this.registry.mutate(
        pods,
        namespace,
        name,
        (current) => {
          const status = (isRecord(current.status) ? current.status : {}) as Record<string, unknown>;
          setCondition(status, { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastProbeTime: null, lastTransitionTime: rfc3339(new Date()) });
          current.status = status;
          return current;
        },
        'status',
      );
    } catch (error) {
      if (error instanceof ApiError && error.code === 404) return;
      throw error;
    }
    await this.events.record(pod, 'Warning', 'FailedScheduling', message);
  }
}

function schedulingProperties(node: KObject): string {
  const spec = isRecord(node.spec) ? node.spec : {};
  const status = isRecord(node.status) ? node.status : {};
  const ready = Array.isArray(status.conditions) ? status.conditions.filter(isRecord).find((c) => c.type === 'Ready')?.status : undefined;
  return canonicalJson({ labels: node.metadata.labels, taints: spec.taints, unschedulable: spec.unschedulable, allocatable: status.allocatable ?? status.capacity, ready });
}

export function startScheduler(registry: Registry, cache: WatchCache, log: Logger, resyncMs: number): Controller {
  const scheduler = new Scheduler(registry, log);
  const from = cache.lastRevision();
  const offPods = cache.add(
    {
      filter: { prefix: '/registry/core/pods/', matches: () => true },
      send: (type, pod) => {
        if (type !== 'DELETED' && wantsScheduling(pod)) {
          // A parked pod is tried again when its spec changes (tolerations added), not on its own status writes.
          const parked = scheduler.parked.get(keyOf(pod));
          if (!parked || parked.spec !== canonicalJson(pod.spec)) scheduler.queue.add(keyOf(pod));
          return;
        }
        // A deleted or finished pod frees room (resources, host ports) on its node.
        const phase = isRecord(pod.status) ? pod.status.phase : undefined;
        if (type === 'DELETED' || phase === 'Succeeded' || phase === 'Failed') scheduler.retryParked();
      },
    },
    from,
  );
  // Only a change that can matter to a filter moves parked Pods (nodeSchedulingPropertiesChange),
  // not the heartbeat of a node's status.
  const seenNodes = new Map<string, string>();
  const offNodes = cache.add(
    {
      filter: { prefix: '/registry/core/nodes/', matches: () => true },
      send: (type, node) => {
        const name = node.metadata.name ?? '';
        if (type === 'DELETED') {
          seenNodes.delete(name);
          return;
        }
        const print = schedulingProperties(node);
        if (seenNodes.get(name) === print) return;
        seenNodes.set(name, print);
        scheduler.retryParked();
      },
    },
    from,
  );
  scheduler.resync(Date.now());
  const timer = setInterval(() => scheduler.resync(Date.now()), resyncMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      offPods();
      offNodes();
      await scheduler.queue.stop();
    },
  };
}
