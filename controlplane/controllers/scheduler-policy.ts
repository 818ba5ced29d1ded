/**
 * Scheduling decision for one Pod, pure (https://kubernetes.io/docs/concepts/scheduling-eviction/kube-scheduler/):
 * filter nodes that are schedulable, whose NoSchedule/NoExecute taints (with the not-ready /
 * unreachable ones a node's Ready condition stands for) the Pod tolerates, whose labels and
 * name satisfy nodeSelector and required node affinity, whose host ports are free, and with
 * room for the Pod's requests (cpu, memory, pod count) in allocatable; then score by least
 * allocated share, ties by name. The message for an unschedulable Pod has kube-scheduler's
 * shape: "0/3 nodes are available: 1 node(s) had untolerated taint {...}, 2 Insufficient cpu."
 */
import { parseMilliCPU, parseQuantity } from '../../lib/quantity.js';
import type { KObject } from '../storage/types.js';
import { isRecord, podView } from '../util.js';
import { podResources } from '../../lib/k8s/resources.js';
import { toleratesAny, untoleratedTaints, type TaintLike } from '../../lib/k8s/tolerations.js';
import { matchesNodeSelectorAndAffinity } from '../../lib/k8s/node-affinity.js';
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

interface HostPort {
  hostIP: string;
  protocol: string;
  port: number;
}

interface NodeUsage extends Resources {
  hostPorts: HostPort[];
}

const emptyUsage = (): NodeUsage => ({ milliCpu: 0, memory: 0, pods: 0, hostPorts: [] });

/** The host ports a Pod asks for (schedutil.GetContainerPorts: hostIP 0.0.0.0 and protocol TCP by default). */
export function podHostPorts(pod: KObject): HostPort[] {
  const ports: HostPort[] = [];
  for (const container of list(obj(pod.spec).containers))
    for (const port of list(container.ports)) {
      if (typeof port.hostPort !== 'number' || port.hostPort <= 0) continue;
      ports.push({ hostIP: typeof port.hostIP === 'string' && port.hostIP !== '' ? port.hostIP : '0.0.0.0', protocol: typeof port.protocol === 'string' && port.protocol !== '' ? port.protocol : 'TCP', port: port.hostPort });
    }
  return ports;
}

/** HostPortInfo.CheckConflict: same port and protocol, and the addresses overlap (either is 0.0.0.0, or equal). */
export function hostPortsConflict(wanted: HostPort[], used: HostPort[]): boolean {
  const any = (ip: string) => ip === '0.0.0.0' || ip === '::';
  return wanted.some((w) => used.some((u) => u.port === w.port && u.protocol === w.protocol && (any(u.hostIP) || any(w.hostIP) || u.hostIP === w.hostIP)));
}

/**
 * The node's taints plus the ones its conditions stand for: the node lifecycle controller
 * taints a node whose Ready condition is False (or missing) `node.kubernetes.io/not-ready`
 * and one whose Ready is Unknown `node.kubernetes.io/unreachable` (TaintNodesByCondition),
 * and the scheduler filters on taints only, so a pod that tolerates them may still go there.
 */
function effectiveTaints(node: KObject): TaintLike[] {
  const taints = [...((nodeView(node).spec?.taints ?? []) as TaintLike[])];
  const ready = list(obj(node.status).conditions).find((c) => c.type === 'Ready');
  const key = ready?.status === 'True' ? undefined : ready?.status === 'Unknown' ? 'node.kubernetes.io/unreachable' : 'node.kubernetes.io/not-ready';
  if (key && !taints.some((t) => t.key === key && t.effect === 'NoSchedule')) taints.push({ key, effect: 'NoSchedule' });
  return taints;
}

const unschedulableToleration: TaintLike = { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' };

/**
 * kube-scheduler's filter plugins in the default profile's order (NodeUnschedulable,
 * TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit), with their messages; the first
 * failing plugin gives the node's reasons (NodeResourcesFit may give several).
 */
function filter(pod: KObject, node: KObject, used: NodeUsage): Reason[] {
  const tolerations = podView(pod).spec?.tolerations;
  if (obj(node.spec).unschedulable === true && !toleratesAny(tolerations, unschedulableToleration)) return ['node(s) were unschedulable'];
  const [taint] = untoleratedTaints(effectiveTaints(node), tolerations);
  if (taint) return [`node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`];
  if (!matchesNodeSelectorAndAffinity(pod.spec, node)) return ["node(s) didn't match Pod's node affinity/selector"];
  if (hostPortsConflict(podHostPorts(pod), used.hostPorts)) return ["node(s) didn't have free ports for the requested pod ports"];
  const want = podRequests(pod);
  const have = allocatable(node);
  const reasons: Reason[] = [];
  if (used.pods + 1 > have.pods) reasons.push('Too many pods');
  if (want.milliCpu > 0 && used.milliCpu + want.milliCpu > have.milliCpu) reasons.push('Insufficient cpu');
  if (want.memory > 0 && used.memory + want.memory > have.memory) reasons.push('Insufficient memory');
  return reasons;
}

type Decision = { node: string } | { unschedulable: string };

/** `usage` maps node name to the requests and host ports of the Pods already bound there. */
export function schedule(pod: KObject, nodes: KObject[], usage: Map<string, NodeUsage>): Decision {
  const reasons = new Map<Reason, number>();
  let best: { name: string; score: number } | undefined;
  for (const node of nodes) {
    const name = node.metadata.name as string;
    const used = usage.get(name) ?? emptyUsage();
    const failed = filter(pod, node, used);
    if (failed.length > 0) {
      for (const reason of failed) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      continue;
    }
    const have = allocatable(node);
    const want = podRequests(pod);
    const free = (total: number, taken: number) => (Number.isFinite(total) && total > 0 ? (total - taken) / total : 1);
    const score = free(have.milliCpu, used.milliCpu + want.milliCpu) + free(have.memory, used.memory + want.memory);
    if (!best || score > best.score || (score === best.score && name < best.name)) best = { name, score };
  }
  if (best) return { node: best.name };
  // framework.FitError.Error(): "0/N nodes are available: " + the "count reason" strings sorted.
  if (nodes.length === 0) return { unschedulable: 'no nodes available to schedule pods' };
  const detail = [...reasons.entries()].map(([reason, count]) => `${count} ${reason}`).sort();
  return { unschedulable: `0/${nodes.length} nodes are available: ${detail.join(', ')}.` };
}

/** Requests and host ports of the Pods bound to each node (finished Pods do not count). */
export function nodeUsage(pods: KObject[]): Map<string, NodeUsage> {
  const usage = new Map<string, NodeUsage>();
  for (const pod of pods) {
    const node = obj(pod.spec).nodeName;
    const phase = obj(pod.status).phase;
    if (typeof node !== 'string' || node === '' || phase === 'Succeeded' || phase === 'Failed') continue;
    const r = podRequests(pod);
    const current = usage.get(node) ?? emptyUsage();
    usage.set(node, { milliCpu: current.milliCpu + r.milliCpu, memory: current.memory + r.memory, pods: current.pods + 1, hostPorts: [...current.hostPorts, ...podHostPorts(pod)] });
  }
  return usage;
}
