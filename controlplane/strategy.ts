/**
 * The per-kind hooks of the generic registry (the RESTCreateStrategy / RESTUpdateStrategy /
 * RESTDeleteStrategy of k8s.io/apiserver/pkg/registry/rest). A leaf module, so that every kind's
 * module can implement it without importing the table of kinds.
 */
import type { StatusCause } from './status.js';
import type { KObject } from './storage/types.js';

export interface KindStrategy {
  /** SetDefaults of the versioned type, run on create and on every update. */
  defaults?(object: KObject): void;
  /** PrepareForCreate: clears what a client may not set on create (most often status). */
  prepareForCreate?(object: KObject): void;
  /** PrepareForUpdate (not for the status subresource): carries over what an update may not change. */
  prepareForUpdate?(object: KObject, old: KObject): void;
  /**
   * Update through a subresource other than binding (status, approval, resize): builds the object
   * to store from the body and the stored one. Without it (or when it answers undefined), `status`
   * keeps everything but status.
   */
  prepareForSubresourceUpdate?(subresource: string, object: KObject, old: KObject): KObject | undefined;
  /** Validate on create (old undefined) and ValidateUpdate; `subresource` names the endpoint written (status, resize). */
  validate(object: KObject, old: KObject | undefined, subresource?: string): StatusCause[];
  /**
   * CheckGracefulDelete: the grace period in seconds a delete gets (0 removes at once). A kind
   * with this hook is deleted gracefully: in deletion, it is removed only once its grace is 0.
   */
  checkGracefulDelete?(object: KObject, requested: number | undefined): number;
  /** Why a delete is refused (the NamespaceLifecycle admission's immortal namespaces). */
  forbidDelete?(object: KObject): string | undefined;
  /** A DELETE answers with the object (pods, services) instead of a Success Status. */
  returnsDeletedObject?: boolean;
}

