/**
 * The proxy's view of the API: the latest Service and EndpointSlice objects (from informers),
 * plus when each service last changed, for kubeproxy_network_programming_duration_seconds
 * (measured from the EndpointSlice's endpoints.kubernetes.io/last-change-trigger-time
 * annotation when present, else from when the change arrived, as kube-proxy does).
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { serviceNameLabel, type ModelSource } from './model.js';

const triggerAnnotation = 'endpoints.kubernetes.io/last-change-trigger-time';

const objectKey = (object: { metadata?: { namespace?: string; name?: string } }) => `${object.metadata?.namespace ?? 'default'}/${object.metadata?.name ?? ''}`;

interface TrackerSnapshot {
  /** Service key ("ns/name") → earliest unprogrammed change (ms since epoch). */
  changedAt: Map<string, number>;
}

const sliceServiceKey = (slice: V1EndpointSlice) => `${slice.metadata?.namespace ?? 'default'}/${slice.metadata?.labels?.[serviceNameLabel] ?? ''}`;

export class ChangeTracker implements ModelSource {
  private readonly services = new Map<string, V1Service>();
  private readonly slices = new Map<string, V1EndpointSlice>();
  /** Service key → its labelled slices by slice key: the model reads one Service's slices without a scan. */
  private readonly slicesByService = new Map<string, Map<string, V1EndpointSlice>>();
  private changedAt = new Map<string, number>();
  /** Called after every change (the sync loop's trigger). */
  onChange: () => void = () => {};

  constructor(private readonly now: () => number = Date.now) {}

  private mark(serviceKey: string, at = this.now()): void {
    const previous = this.changedAt.get(serviceKey);
    this.changedAt.set(serviceKey, previous === undefined ? at : Math.min(previous, at));
    this.onChange();
  }

  upsertService(service: V1Service): void {
    this.services.set(objectKey(service), service);
    this.mark(objectKey(service));
  }

  deleteService(service: V1Service): void {
    this.services.delete(objectKey(service));
    this.mark(objectKey(service));
  }

  upsertSlice(slice: V1EndpointSlice): void {
    const key = objectKey(slice);
    const old = this.slices.get(key);
    // a slice relabelled to another Service leaves the old one (which changes too)
    if (old && sliceServiceKey(old) !== sliceServiceKey(slice)) this.deleteSlice(old);
    this.slices.set(key, slice);
    if (slice.metadata?.labels?.[serviceNameLabel]) {
      const service = sliceServiceKey(slice);
      const index = this.slicesByService.get(service);
      if (index) index.set(key, slice);
      else this.slicesByService.set(service, new Map([[key, slice]]));
    }
    this.markSlice(slice);
  }

  deleteSlice(slice: V1EndpointSlice): void {
    const key = objectKey(slice);
    const old = this.slices.get(key) ?? slice;
    this.slices.delete(key);
    const service = sliceServiceKey(old);
    const index = this.slicesByService.get(service);
    if (index?.delete(key) && index.size === 0) this.slicesByService.delete(service);
    this.markSlice(old);
  }

  serviceKeys(): Iterable<string> {
    return new Set([...this.services.keys(), ...this.slicesByService.keys()]);
  }

  service(key: string): V1Service | undefined {
    return this.services.get(key);
  }

  slicesOf(key: string): readonly V1EndpointSlice[] {
    const index = this.slicesByService.get(key);
    return index ? [...index.values()] : [];
  }

  private markSlice(slice: V1EndpointSlice): void {
    const trigger = Date.parse(slice.metadata?.annotations?.[triggerAnnotation] ?? '');
    this.mark(sliceServiceKey(slice), Number.isFinite(trigger) ? Math.min(trigger, this.now()) : this.now());
  }

  /** The pending change times, which this call hands over and clears (the model reads the objects by key). */
  take(): TrackerSnapshot {
    const changedAt = this.changedAt;
    this.changedAt = new Map();
    return { changedAt };
  }

  /** The current objects (benchmarks and tests compare the kept model with a rebuild from them). */
  objects(): { services: V1Service[]; slices: V1EndpointSlice[] } {
    return { services: [...this.services.values()], slices: [...this.slices.values()] };
  }

  /** Puts change times back after a failed sync, so that latency counts from the first change. */
  restore(changedAt: Map<string, number>): void {
    for (const [key, at] of changedAt) this.changedAt.set(key, Math.min(at, this.changedAt.get(key) ?? at));
  }
}
