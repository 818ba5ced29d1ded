/**
 * Fakes for the eviction manager's boundaries, for unit tests. Each is checked against its
 * interface at compile time below.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { ImageInfo, ImageStore } from '../../eviction/image-gc.js';
import type {
  ActivePodsSource,
  ContainerReclaimer,
  EvictedPodStatus,
  EvictionEvent,
  ImageReclaimer,
  NodeConditionSink,
  ObservationSource,
  Observations,
  PodKiller,
  PodStatsSource,
  PodUsageMap,
  PressureCondition,
  SignalObservation,
} from '../../eviction/types.js';
import type { Clock } from '../../lib/clock.js';
import { FakeClock } from './fake-clock.js';

export { FakeClock };

export class FakeObservations implements ObservationSource {
  constructor(
    public current: Observations = {},
    public dedicatedImageFs = false,
  ) {}
  /** Applied after a node-level reclaim (observe() is called again by the manager). */
  next: Observations[] = [];
  async observe(): Promise<Observations> {
    const next = this.next.shift();
    if (next) this.current = next;
    return this.current;
  }
  async observeMemory(): Promise<SignalObservation> {
    const memory = this.current['memory.available'];
    if (!memory) throw new Error('fake: no memory observation');
    return memory;
  }
  async hasDedicatedImageFs(): Promise<boolean> {
    return this.dedicatedImageFs;
  }
}

export class FakePodStats implements PodStatsSource {
  constructor(public usage: PodUsageMap = new Map()) {}
  async podUsage(): Promise<PodUsageMap> {
    return this.usage;
  }
}

export class FakeActivePods implements ActivePodsSource {
  constructor(public pods: V1Pod[] = []) {}
  async activePods(): Promise<V1Pod[]> {
    return this.pods;
  }
}

export interface FakeEviction {
  pod: V1Pod;
  gracePeriodSeconds: number;
  status: EvictedPodStatus;
  event: EvictionEvent;
}

export class FakePodKiller implements PodKiller {
  evictions: FakeEviction[] = [];
  constructor(private readonly pods?: FakeActivePods) {}
  async evictPod(pod: V1Pod, gracePeriodSeconds: number, status: EvictedPodStatus, event: EvictionEvent): Promise<void> {
    this.evictions.push({ pod, gracePeriodSeconds, status, event });
    if (this.pods) this.pods.pods = this.pods.pods.filter((p) => p !== pod);
  }
}

export class FakeConditionSink implements NodeConditionSink {
  history: { conditions: PressureCondition[]; at: number }[] = [];
  setPressureConditions(conditions: ReadonlySet<PressureCondition>, at: number): void {
    this.history.push({ conditions: [...conditions].sort(), at });
  }
  get last(): PressureCondition[] {
    return this.history.at(-1)?.conditions ?? [];
  }
}

export class FakeImageReclaimer implements ImageReclaimer {
  calls = 0;
  constructor(private readonly freed = 0) {}
  async deleteUnusedImages(): Promise<number> {
    this.calls++;
    return this.freed;
  }
}

export class FakeContainerReclaimer implements ContainerReclaimer {
  calls = 0;
  async deleteAllUnusedContainers(): Promise<void> {
    this.calls++;
  }
}

/** An in-memory image store: images, which are in use, and an image fs whose space they take. */
export class FakeImageStore implements ImageStore {
  removed: string[] = [];
  constructor(
    public images: ImageInfo[],
    public inUse = new Set<string>(),
    public fs = { capacityBytes: 1000, otherUsedBytes: 0 },
  ) {}
  async listImages(): Promise<ImageInfo[]> {
    return [...this.images];
  }
  async imagesInUse(): Promise<Set<string>> {
    return new Set(this.inUse);
  }
  async removeImage(id: string): Promise<void> {
    if (this.inUse.has(id)) throw new Error(`image ${id} is in use`);
    this.images = this.images.filter((image) => image.id !== id);
    this.removed.push(id);
  }
  async imageFsInfo(): Promise<{ capacityBytes: number; availableBytes: number }> {
    const used = this.fs.otherUsedBytes + this.images.reduce((total, image) => total + image.sizeBytes, 0);
    return { capacityBytes: this.fs.capacityBytes, availableBytes: this.fs.capacityBytes - used };
  }
}

// Compile-time checks that every fake implements its interface.
const _checks: [Clock, ObservationSource, PodStatsSource, ActivePodsSource, PodKiller, NodeConditionSink, ImageReclaimer, ContainerReclaimer, ImageStore] = [
  new FakeClock(),
  new FakeObservations(),
  new FakePodStats(),
  new FakeActivePods(),
  new FakePodKiller(),
  new FakeConditionSink(),
  new FakeImageReclaimer(),
  new FakeContainerReclaimer(),
  new FakeImageStore([]),
];
void _checks;

export interface PodSpecInput {
  name: string;
  namespace?: string;
  priority?: number;
  /** Per container: name → resources. One container "c" when omitted. */
  containers?: { name: string; requests?: Record<string, string>; limits?: Record<string, string> }[];
  annotations?: Record<string, string>;
  terminationGracePeriodSeconds?: number;
}

/** A V1Pod for tests; the UID is the pod's name. */
export function makePod(input: PodSpecInput): V1Pod {
  return {
    metadata: { name: input.name, namespace: input.namespace ?? 'default', uid: input.name, annotations: input.annotations },
    spec: {
      priority: input.priority,
      terminationGracePeriodSeconds: input.terminationGracePeriodSeconds,
      containers: (input.containers ?? [{ name: 'c' }]).map((c) => ({ name: c.name, image: 'busybox', resources: { requests: c.requests, limits: c.limits } })),
    },
  };
}
