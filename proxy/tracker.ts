/**
 * The proxy's view of the API: the latest Service and EndpointSlice objects (from informers),
 * plus when each service last changed, for kubeproxy_network_programming_duration_seconds
 * (measured from the EndpointSlice's endpoints.kubernetes.io/last-change-trigger-time
 * annotation when present, else from when the change arrived, as kube-proxy does).
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { serviceNameLabel } from './model.js';

const triggerAnnotation = 'endpoints.kubernetes.io/last-change-trigger-time';

const objectKey = (object: { metadata?: { namespace?: string; name?: string } }) => `${object.metadata?.namespace ?? 'default'}/${object.metadata?.name ?? ''}`;

interface TrackerSnapshot {
  services: V1Service[];
  slices: V1EndpointSlice[];
  /** Service key ("ns/name") → earliest unprogrammed change (ms since epoch). */
  changedAt: Map<string, number>;
}

export class ChangeTracker {
  private readonly services = new Map<string, V1Service>();
  private readonly slices = new Map<string, V1EndpointSlice>();
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
    this.slices.set(objectKey(slice), slice);
    this.markSlice(slice);
  }

  deleteSlice(slice: V1EndpointSlice): void {
    this.slices.delete(objectKey(slice));
    this.markSlice(slice);
  }

  private markSlice(slice: V1EndpointSlice): void {
    const service = slice.metadata?.labels?.[serviceNameLabel] ?? '';
    const trigger = Date.parse(slice.metadata?.annotations?.[triggerAnnotation] ?? '');
    this.mark(`${slice.metadata?.namespace ?? 'default'}/${service}`, Number.isFinite(trigger) ? Math.min(trigger, this.now()) : this.now());
  }

  /** The current objects, and the pending change times (which this call hands over and clears). */
  take(): TrackerSnapshot {
    const changedAt = this.changedAt;
    this.changedAt = new Map();
    return { services: [...this.services.values()], slices: [...this.slices.values()], changedAt };
  }

  /** Puts change times back after a failed sync, so that latency counts from the first change. */
  restore(changedAt: Map<string, number>): void {
    for (const [key, at] of changedAt) this.changedAt.set(key, Math.min(at, this.changedAt.get(key) ?? at));
  }
}
