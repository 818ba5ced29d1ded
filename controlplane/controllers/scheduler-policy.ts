/**
 * Scheduling decision for one Pod, pure (https://kubernetes.io/docs/concepts/scheduling-eviction/kube-scheduler/):
 * filter nodes that are Ready, schedulable, whose NoSchedule/NoExecute taints the Pod tolerates,
 * whose labels satisfy nodeSelector, and with room for the Pod's requests (cpu, memory, pod
 * count) in allocatable; then score by least allocated share, ties by name. The message for an
 * unschedulable Pod has kube-scheduler's shape: "0/3 nodes are available: 1 node(s) had
 * untolerated taint {...}, 2 Insufficient cpu."
 */
import { parseMilliCPU, parseQuantity } from '../../lib/quantity.js';
import type { KObject } from '../storage/types.js';
import { isRecord, podView } from '../util.js';
import { podResources } from '../../lib/k8s/resources.js';
import { untoleratedTaints } from '../../lib/k8s/tolerations.js';
import type { V1Node } from '@kubernetes/client-node';

const nodeView = (node: KObject): V1Node => node as V1Node;

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (isRecord(v) ? v : {});
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isRecord) : []);

interface Resources {
  milliCpu: number;
  memory: number;
  pods: number;
}

function quantity(map: Obj, name: string, cpu: boolean): number {
  const value = map[name];
  if (value === undefined || value === null) return 0;
  try {
    return cpu ? parseMilliCPU(String(value)) : parseQuantity(String(value));
  } catch {
    return 0;
  }
}

/** Effective requests (lib/k8s podResources: resource.PodRequests); an invalid quantity counts as zero. */
export function podRequests(pod: KObject): Resources {
  let requests: Record<string, number> = {};
  try {
    requests = podResources(podView(pod)).requests;
  } catch {
    // validation refuses bad quantities on create; a stored one must not stop scheduling
  }
  return { milliCpu: requests.cpu ?? 0, memory: requests.memory ?? 0, pods: 1 };
}

function allocatable(node: KObject): Resources {
  const status = obj(node.status);
  const source = isRecord(status.allocatable) ? status.allocatable : obj(status.capacity);
  return {
    milliCpu: source.cpu === undefined ? Number.POSITIVE_INFINITY : quantity(source, 'cpu', true),
    memory: source.memory === undefined ? Number.POSITIVE_INFINITY : quantity(source, 'memory', false),
    pods: source.pods === undefined ? 110 : quantity(source, 'pods', false),
  };
}

function nodeReady(node: KObject): boolean {
  return list(obj(node.status).conditions).some((c) => c.type === 'Ready' && c.status === 'True');
}

type Reason = string;

function filter(pod: KObject, node: KObject, used: Resources): Reason | undefined {
  const spec = obj(node.spec);
  if (!nodeReady(node)) return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }";
  if (spec.unschedulable === true) return 'node(s) were unschedulable';
  const [taint] = untoleratedTaints(nodeView(node).spec?.taints, podView(pod).spec?.tolerations);
  if (taint) return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`;
  const selector = obj(obj(pod.spec).nodeSelector);
  const labels = node.metadata.labels ?? {};
  if (Object.entries(selector).some(([k, v]) => labels[k] !== v)) return "node(s) didn't match Pod's node affinity/selector";
  const want = podRequests(pod);
  const have = allocatable(node);
  if (used.pods + 1 > have.pods) return 'Too many pods';
  if (used.milliCpu + want.milliCpu > have.milliCpu) return 'Insufficient cpu';
  if (used.memory + want.memory > have.memory) return 'Insufficient memory';
  return undefined;
}

type Decision = { node: string } | { unschedulable: string };

/** `usage` maps node name to the requests of the Pods already bound there. */
export function schedule(pod: KObject, nodes: KObject[], usage: Map<string, Resources>): Decision {
  const reasons = new Map<Reason, number>();
  let best: { name: string; score: number } | undefined;
  for (const node of nodes) {
    const name = node.metadata.name as string;
    const used = usage.get(name) ?? { milliCpu: 0, memory: 0, pods: 0 };
    const reason = filter(pod, node, used);
    if (reason) {
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      continue;
    }
    const have = allocatable(node);
    const want = podRequests(pod);
    const free = (total: number, taken: number) => (Number.isFinite(total) && total > 0 ? (total - taken) / total : 1);
    const score = free(have.milliCpu, used.milliCpu + want.milliCpu) + free(have.memory, used.memory + want.memory);
    if (!best || score > best.score || (score === best.score && name < best.name)) best = { name, score };
  }
  if (best) return { node: best.name };
  const detail = [...reasons.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([reason, count]) => `${count} ${reason}`)
    .join(', ');
  return { unschedulable: `0/${nodes.length} nodes are available${detail ? `: ${detail}` : ''}.` };
}

/** Requests of the Pods bound to each node (finished Pods do not count). */
export function nodeUsage(pods: KObject[]): Map<string, Resources> {
  const usage = new Map<string, Resources>();
  for (const pod of pods) {
    const node = obj(pod.spec).nodeName;
    const phase = obj(pod.status).phase;
    if (typeof node !== 'string' || node === '' || phase === 'Succeeded' || phase === 'Failed') continue;
    const r = podRequests(pod);
    const current = usage.get(node) ?? { milliCpu: 0, memory: 0, pods: 0 };
    usage.set(node, { milliCpu: current.milliCpu + r.milliCpu, memory: current.memory + r.memory, pods: current.pods + 1 });
  }
  return usage;
}
