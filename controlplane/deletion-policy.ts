/**
 * The finalizer a DELETE's propagationPolicy adds (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion):
 * Foreground → `foregroundDeletion`, Orphan (or the deprecated orphanDependents) → `orphan`,
 * Background or none → no finalizer; the garbage collector (controllers/gc.ts) removes them.
 */
import { badRequest } from './status.js';

export const foregroundFinalizer = 'foregroundDeletion';
export const orphanFinalizer = 'orphan';

/** The finalizers after a DELETE with this propagationPolicy (undefined means the default, Background). */
export function finalizersForDelete(existing: string[], policy: string | undefined, orphanDependents?: boolean): string[] {
  const chosen = policy ?? (orphanDependents === true ? 'Orphan' : undefined);
  if (chosen !== undefined && !['Orphan', 'Background', 'Foreground'].includes(chosen)) throw badRequest(`DeleteOptions.propagationPolicy: Unsupported value: "${chosen}": supported values: "Foreground", "Background", "Orphan"`);
  const rest = existing.filter((f) => f !== foregroundFinalizer && f !== orphanFinalizer);
  if (chosen === 'Foreground') return [...rest, foregroundFinalizer];
  if (chosen === 'Orphan') return [...rest, orphanFinalizer];
  // Background on an object already waiting in foreground or orphan mode keeps that mode.
  return existing;
}

