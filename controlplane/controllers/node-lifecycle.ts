/**
 * Node lifecycle (kube-controller-manager node lifecycle controller,
 * https://kubernetes.io/docs/concepts/architecture/nodes/#node-controller): a node whose Lease in
 * kube-node-lease (or, without one, its Ready heartbeat) is older than the grace period
 * (--node-monitor-grace-period, 40 s) gets every condition set to Unknown
 * ("Kubelet stopped posting node status."), the node.kubernetes.io/unreachable taints
 * (NoSchedule and NoExecute), and its Pods get Ready=False. When the kubelet reports Ready again
 * the taints are removed. A node is given the full grace period from when this controller first
 * saw it, so a control-plane restart does not mark every node Unknown at once.
 */
import type { Logger } from '../../lib/log.js';
import { setCondition } from '../binding.js';
import type { Registry } from '../registry.js';
import { resources, type ResourceInfo, resourceNamed } from '../resources.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';
import { isRecord, recordOf, rfc3339, stringOf } from '../util.js';
import type { Controller } from './controller.js';

const info = resourceNamed;
const nodes = info('nodes');
const leases = info('leases');
const pods = info('pods');
const unreachableTaint = 'node.kubernetes.io/unreachable';

type Obj = Record<string, unknown>;
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isRecord) : []);

/** Milliseconds of the newest sign of life: Lease renewTime, Ready heartbeat, first observation. */
function lastHeartbeat(node: KObject, lease: KObject | undefined, firstSeen: number): number {
  const times = [firstSeen];
  const renew = lease && isRecord(lease.spec) ? lease.spec.renewTime : undefined;
  if (typeof renew === 'string') times.push(Date.parse(renew));
  for (const c of list(isRecord(node.status) ? node.status.conditions : undefined)) {
    if (c.type === 'Ready' && typeof c.lastHeartbeatTime === 'string') times.push(Date.parse(c.lastHeartbeatTime));
  }
  return Math.max(...times.filter((t) => Number.isFinite(t)));
}

function readyStatus(node: KObject): string | undefined {
  return stringOf(list(recordOf(node.status).conditions).find((c) => c.type === 'Ready')?.status);
}

function hasUnreachableTaint(node: KObject): boolean {
  return list(isRecord(node.spec) ? node.spec.taints : undefined).some((t) => t.key === unreachableTaint);
}

async function markUnknown(registry: Registry, name: string, now: Date): Promise<void> {
  await registry.mutate(
    nodes,
    undefined,
    name,
    (node) => {
      const status = recordOf(node.status);
      const types = new Set(['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure', ...list(status.conditions).map((c) => String(c.type))]);
      for (const type of types) {
        if (type === 'NetworkUnavailable') continue;
        setCondition(status, { type, status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastHeartbeatTime: list(status.conditions).find((c) => c.type === type)?.lastHeartbeatTime ?? null, lastTransitionTime: rfc3339(now) });
      }
      node.status = status;
      return node;
    },
    'status',
  );
  await registry.mutate(nodes, undefined, name, (node) => {
    const spec = recordOf(node.spec);
    const taints = list(spec.taints).filter((t) => t.key !== unreachableTaint);
    taints.push({ key: unreachableTaint, effect: 'NoSchedule' }, { key: unreachableTaint, effect: 'NoExecute', timeAdded: rfc3339(now) });
    node.spec = { ...spec, taints };
    return node;
  });
  const onNode = (await registry.list(pods, undefined, { fieldSelector: `spec.nodeName=${name}` })).items;
  for (const pod of onNode) {
    try {
      await registry.mutate(
        pods,
        pod.metadata.namespace,
        pod.metadata.name ?? '',
        (current) => {
          const status = recordOf(current.status);
          setCondition(status, { type: 'Ready', status: 'False', reason: 'NodeLost', message: `Node ${name} which was running pod ${String(current.metadata.name)} is unresponsive`, lastProbeTime: null, lastTransitionTime: rfc3339(now) });
          current.status = status;
          return current;
        },
        'status',
      );
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 404)) throw error;
    }
  }
}

async function removeTaints(registry: Registry, name: string): Promise<void> {
  await registry.mutate(nodes, undefined, name, (node) => {
    const { taints: current, ...spec } = recordOf(node.spec);
    const taints = list(current).filter((t) => t.key !== unreachableTaint);
    node.spec = taints.length === 0 ? spec : { ...spec, taints };
    return node;
  });
}

export function startNodeLifecycle(registry: Registry, log: Logger, graceMs: number, periodMs: number): Controller {
  const firstSeen = new Map<string, number>();
  let running: Promise<void> | undefined;
  const pass = async () => {
    const now = new Date();
    const nodeList = (await registry.list(nodes, undefined)).items;
    const leaseList = (await registry.list(leases, 'kube-node-lease')).items;
    for (const node of nodeList) {
      const name = node.metadata.name ?? '';
      if (!firstSeen.has(name)) firstSeen.set(name, now.getTime());
      const lease = leaseList.find((l) => l.metadata.name === name);
      const stale = now.getTime() - lastHeartbeat(node, lease, firstSeen.get(name) ?? now.getTime()) > graceMs;
      try {
        if (stale && readyStatus(node) !== 'Unknown') {
          log.info({ node: name }, 'node stopped renewing its lease: Ready=Unknown, tainted unreachable');
          await markUnknown(registry, name, now);
        } else if (!stale && readyStatus(node) !== 'Unknown' && hasUnreachableTaint(node)) {
          await removeTaints(registry, name);
        }
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 404)) log.warn({ err: error, node: name }, 'node lifecycle update failed');
      }
    }
    for (const name of firstSeen.keys()) if (!nodeList.some((n) => n.metadata.name === name)) firstSeen.delete(name);
  };
  const timer = setInterval(() => {
    if (running) return;
    running = pass()
      .catch((error: unknown) => log.warn({ err: error }, 'node lifecycle pass failed'))
      .finally(() => (running = undefined));
  }, periodMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
