/**
 * Whether a Pod's nodeSelector and required node affinity admit a Node (the scheduler's
 * NodeAffinity filter and the DaemonSet controller's nodeShouldRunDaemonPod share it:
 * k8s.io/component-helpers/scheduling/corev1/nodeaffinity, GetRequiredNodeAffinity(pod).Match).
 * https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#node-affinity
 *
 * - nodeSelector: every pair must equal the node's label.
 * - requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms are ORed; within a term
 *   matchExpressions (labels) and matchFields (only `metadata.name`) are ANDed; a term with
 *   neither matches nothing, and so does an empty list of terms.
 * - Operators: In, NotIn, Exists, DoesNotExist, Gt, Lt (Gt/Lt compare integers; a label that
 *   is not an integer, or a value list that is not exactly one integer, does not match).
 */

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const records = (v: unknown): Obj[] => (Array.isArray(v) ? v.map(obj) : []);

interface NodeLike {
  metadata: { name?: string; labels?: Record<string, string> };
}

const integer = /^[+-]?\d{1,18}$/;

function matchRequirement(requirement: Obj, value: string | undefined): boolean {
  const values = Array.isArray(requirement.values) ? requirement.values.map(String) : [];
  switch (requirement.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      const [bound] = values;
      if (value === undefined || values.length !== 1 || !integer.test(value) || !integer.test(bound as string)) return false;
      return requirement.operator === 'Gt' ? BigInt(value) > BigInt(bound as string) : BigInt(value) < BigInt(bound as string);
    }
    default:
      return false;
  }
}

/** matchFields: the only field selectable is metadata.name, with In or NotIn (validation's rule). */
function matchField(requirement: Obj, node: NodeLike): boolean {
  if (requirement.key !== 'metadata.name' || (requirement.operator !== 'In' && requirement.operator !== 'NotIn')) return false;
  return matchRequirement(requirement, node.metadata.name);
}

function matchesNodeSelectorTerm(term: Obj, node: NodeLike): boolean {
  const expressions = records(term.matchExpressions);
  const fields = records(term.matchFields);
  if (expressions.length === 0 && fields.length === 0) return false;
  const labels = node.metadata.labels ?? {};
  const label = (key: unknown) => (Object.hasOwn(labels, String(key)) ? labels[String(key)] : undefined);
  return expressions.every((e) => matchRequirement(e, label(e.key))) && fields.every((f) => matchField(f, node));
}

/** The pod spec's nodeSelector and required node affinity both admit the node. */
export function matchesNodeSelectorAndAffinity(podSpec: unknown, node: NodeLike): boolean {
  const spec = obj(podSpec);
  const labels = node.metadata.labels ?? {};
  if (Object.entries(obj(spec.nodeSelector)).some(([k, v]) => labels[k] !== v)) return false;
  const affinity = obj(obj(spec.affinity).nodeAffinity);
  if (affinity.requiredDuringSchedulingIgnoredDuringExecution === undefined || affinity.requiredDuringSchedulingIgnoredDuringExecution === null) return true;
  const terms = records(obj(affinity.requiredDuringSchedulingIgnoredDuringExecution).nodeSelectorTerms);
  return terms.some((term) => matchesNodeSelectorTerm(term, node));
}

/**
 * The node a DaemonSet pod is meant for (daemon util.GetTargetNodeName): spec.nodeName once
 * bound, else the single name of its required `matchFields metadata.name In [node]` term.
 */
export function targetNodeName(podSpec: unknown): string | undefined {
  const spec = obj(podSpec);
  if (typeof spec.nodeName === 'string' && spec.nodeName !== '') return spec.nodeName;
  const terms = records(obj(obj(obj(spec.affinity).nodeAffinity).requiredDuringSchedulingIgnoredDuringExecution).nodeSelectorTerms);
  for (const term of terms)
    for (const field of records(term.matchFields))
      if (field.key === 'metadata.name' && field.operator === 'In' && Array.isArray(field.values) && field.values.length === 1) return String(field.values[0]);
  return undefined;
}
