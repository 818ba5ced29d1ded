/**
 * Toleration matching (k8s.io/api/core/v1 Toleration.ToleratesTaint; docs "Taints and
 * Tolerations"): an empty effect matches every effect; operator Exists with an empty key matches
 * every taint; operator Equal (the default) needs the same key and value.
 */
import type { V1Taint, V1Toleration } from '@kubernetes/client-node';

export type TaintLike = Pick<V1Taint, 'key' | 'effect'> & { value?: string };
export type TolerationLike = Pick<V1Toleration, 'key' | 'operator' | 'value' | 'effect'>;

export function toleratesTaint(toleration: TolerationLike, taint: TaintLike): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  const operator = toleration.operator || 'Equal';
  if (operator === 'Exists') return !toleration.key || toleration.key === taint.key;
  if (operator !== 'Equal') return false;
  return (toleration.key ?? '') === taint.key && (toleration.value ?? '') === (taint.value ?? '');
}

/** Whether any of the tolerations tolerates the taint. */
export function toleratesAny(tolerations: readonly TolerationLike[] | undefined, taint: TaintLike): boolean {
  return (tolerations ?? []).some((toleration) => toleratesTaint(toleration, taint));
}

/** The taints (of the given effects) that no toleration tolerates (v1helper.FindMatchingUntoleratedTaint). */
export function untoleratedTaints<T extends TaintLike>(
  taints: readonly T[] | undefined,
  tolerations: readonly TolerationLike[] | undefined,
  effects: readonly string[] = ['NoSchedule', 'NoExecute'],
): T[] {
  return (taints ?? []).filter((taint) => effects.includes(taint.effect) && !toleratesAny(tolerations, taint));
}
