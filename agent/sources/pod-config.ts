/**
 * Merges the pod sources into one desired set, keyed by UID (pkg/kubelet/config/config.go
 * PodConfig with PodConfigNotificationIncremental): each source reports its complete set; a pod
 * is stamped with kubernetes.io/config.seen on first sight and config.source by its source;
 * mirror pods from the API are kept apart (they stand for static pods, they are not run);
 * a full name claimed by two pods is given to the first source (file, http, api order) and the
 * other is reported, as the kubelet's duplicate filtering.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { systemClock, type Clock } from '../../lib/clock.js';
import { stableJson } from './static-pod.js';
import { configSeenAnnotation, configSourceAnnotation, isMirrorPod } from '../../lib/k8s/pod-source.js';

export interface PodConfigListener {
  onPodsChanged(desired: ReadonlyMap<string, V1Pod>, mirrors: ReadonlyMap<string, V1Pod>): void;
  onDuplicate?(pod: V1Pod, existing: V1Pod): void;
}

const sourceOrder = ['file', 'http', 'api'];

/**
 * Whether a new version of a pod matters to its worker (kubelet config.go
 * podsDifferSemantically): spec, labels, annotations and the deletion fields; not status or
 * resourceVersion, so that a status patch (ours, echoed by the watch) resyncs nothing. The
 * conditions of the pod's readiness gates count too: Ready follows them (the kubelet's
 * RECONCILE of pod readiness, KEP-580).
 */
export function podsDifferSemantically(a: V1Pod, b: V1Pod): boolean {
  const view = (pod: V1Pod) => {
    const { labels, annotations, deletionTimestamp, deletionGracePeriodSeconds } = pod.metadata ?? {};
    const gateTypes = new Set((pod.spec?.readinessGates ?? []).map((gate) => gate.conditionType));
    const gates = (pod.status?.conditions ?? []).filter((c) => gateTypes.has(c.type)).map((c) => [c.type, c.status]);
    return stableJson({ spec: pod.spec, labels, annotations, deletionTimestamp, deletionGracePeriodSeconds, gates });
  };
  return a !== b && view(a) !== view(b);
}

export function fullName(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? 'default'}/${pod.metadata?.name ?? ''}`;
}

export class PodConfig {
  private readonly sources = new Map<string, V1Pod[]>();
  private readonly seen = new Map<string, string>();
  private desired = new Map<string, V1Pod>();
  private mirrors = new Map<string, V1Pod>();

  constructor(
    private readonly listener: PodConfigListener,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Replaces a source's pods and recomputes the desired set. */
  set(source: string, pods: readonly V1Pod[]): void {
    this.sources.set(source, [...pods]);
    this.recompute();
  }

  desiredPods(): ReadonlyMap<string, V1Pod> {
    return this.desired;
  }

  mirrorPods(): ReadonlyMap<string, V1Pod> {
    return this.mirrors;
  }

  private stamp(pod: V1Pod, source: string): V1Pod {
    const uid = pod.metadata!.uid!;
    let seenAt = this.seen.get(uid);
    if (!seenAt) {
      seenAt = new Date(this.clock.now()).toISOString();
      this.seen.set(uid, seenAt);
    }
    const annotations = pod.metadata!.annotations ?? {};
    if (annotations[configSeenAnnotation] === seenAt && annotations[configSourceAnnotation] === source) return pod;
    return { ...pod, metadata: { ...pod.metadata, annotations: { ...annotations, [configSourceAnnotation]: source, [configSeenAnnotation]: seenAt } } };
  }

  private recompute(): void {
    const desired = new Map<string, V1Pod>();
    const mirrors = new Map<string, V1Pod>();
    const byName = new Map<string, V1Pod>();
    const ordered = [...this.sources.keys()].sort((a, b) => (sourceOrder.indexOf(a) >>> 0) - (sourceOrder.indexOf(b) >>> 0));
    for (const source of ordered) {
      for (const pod of this.sources.get(source)!) {
        const uid = pod.metadata?.uid;
        if (!uid) continue;
        if (source === 'api' && isMirrorPod(pod)) {
          mirrors.set(fullName(pod), pod);
          continue;
        }
        const existing = byName.get(fullName(pod));
        if (existing && existing.metadata!.uid !== uid) {
          this.listener.onDuplicate?.(pod, existing);
          continue;
        }
        const stamped = this.stamp(pod, source);
        byName.set(fullName(pod), stamped);
        desired.set(uid, stamped);
      }
    }
    for (const uid of this.seen.keys()) if (!desired.has(uid)) this.seen.delete(uid);
    this.desired = desired;
    this.mirrors = mirrors;
    this.listener.onPodsChanged(desired, mirrors);
  }
}
