/**
 * Storage boundary of the control plane. Shaped after etcd as kube-apiserver uses it: one
 * global revision counter; every write bumps it and the object's `metadata.resourceVersion` is
 * the revision of its last write (mod_revision). Writes can be conditioned on the revision the
 * caller read (optimistic concurrency). Changes are published in revision order to subscribers,
 * which the watch cache turns into watch streams.
 */

/** A stored Kubernetes object (JSON). */
export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: KMetadata;
  [field: string]: unknown;
}

interface KMetadata {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: unknown[];
  finalizers?: string[];
  [field: string]: unknown;
}

type StoredEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredEvent {
  type: StoredEventType;
  key: string;
  /** For DELETED: the last state, with resourceVersion set to the deletion's revision. */
  object: KObject;
  /** The state before a MODIFIED or DELETED change. */
  previous?: KObject;
  revision: number;
}

/** Why a storage write failed; the registry maps these to Status errors. */
export class StorageError extends Error {
  constructor(
    readonly kind: 'NotFound' | 'AlreadyExists' | 'Conflict',
    readonly key: string,
    options?: { cause?: unknown },
  ) {
    super(`storage: ${kind} for key ${key}`, options);
    this.name = 'StorageError';
  }
}

export interface Storage {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The revision of the last write. */
  revision(): number;
  get(key: string): Promise<KObject | undefined>;
  /** All objects whose key starts with prefix, sorted by key, and the revision they reflect. */
  list(prefix: string): Promise<{ items: KObject[]; revision: number }>;
  /** Fails with AlreadyExists. */
  create(key: string, object: KObject): Promise<KObject>;
  /** Fails with NotFound, or Conflict when expectedRevision is given and differs. */
  update(key: string, object: KObject, expectedRevision?: number): Promise<KObject>;
  /** Fails with NotFound or Conflict. Returns the deleted object. */
  delete(key: string, expectedRevision?: number): Promise<KObject>;
  /** Every committed change, in revision order. Returns the unsubscribe function. */
  subscribe(listener: (event: StoredEvent) => void): () => void;
}

export function revisionOf(object: KObject): number {
  const value = Number(object.metadata.resourceVersion ?? '0');
  return Number.isFinite(value) ? value : 0;
}

export function withRevision(object: KObject, revision: number): KObject {
  return { ...object, metadata: { ...object.metadata, resourceVersion: String(revision) } };
}
