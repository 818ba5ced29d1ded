/**
 * What the EndpointSlice and Endpoints controllers want for one Service, as a pure function of
 * the Service and its namespace's Pods
 * (https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/):
 * ready = Pod Ready (or publishNotReadyAddresses) and not terminating; serving = Pod Ready;
 * terminating = deletionTimestamp set. Named target ports resolve per Pod, so Pods with
 * different resolved ports land in different slices. Slices hold at most 100 endpoints.
 */
import { createHash } from 'node:crypto';
import { matchesMap } from '../selectors.js';
import type { KObject } from '../storage/types.js';
import { isRecord } from '../util.js';

type Obj = Record<string, unknown>;
export const managedBy = 'endpointslice-controller.k8s.io';
const maxEndpointsPerSlice = 100;

interface SlicePort {
  name: string;
  port: number;
  protocol: string;
  appProtocol?: string;
}

const obj = (v: unknown): Obj => (isRecord(v) ? v : {});
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isRecord) : []);

function podReady(pod: KObject): boolean {
  return list(obj(pod.status).conditions).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Resolves the Service's ports for one Pod; a named targetPort the Pod lacks drops that port. */
export function resolvePorts(service: KObject, pod: KObject): SlicePort[] {
  const containerPorts = list(obj(pod.spec).containers).flatMap((c) => list(c.ports));
  const ports: SlicePort[] = [];
  for (const port of list(obj(service.spec).ports)) {
    const protocol = String(port.protocol ?? 'TCP');
    let target: number | undefined;
    if (typeof port.targetPort === 'number') target = port.targetPort;
    else if (typeof port.targetPort === 'string' && /^\d+$/.test(port.targetPort)) target = Number(port.targetPort);
    else if (typeof port.targetPort === 'string') {
      const found = containerPorts.find((cp) => cp.name === port.targetPort && String(cp.protocol ?? 'TCP') === protocol);
      target = typeof found?.containerPort === 'number' ? found.containerPort : undefined;
    } else target = typeof port.port === 'number' ? port.port : undefined;
    if (target === undefined) continue;
    ports.push({ name: String(port.name ?? ''), port: target, protocol, ...(typeof port.appProtocol === 'string' ? { appProtocol: port.appProtocol } : {}) });
  }
  return ports;
}

function podIPs(pod: KObject): string[] {
  const status = obj(pod.status);
  const ips = list(status.podIPs).map((p) => p.ip).filter((ip): ip is string => typeof ip === 'string' && ip.includes('.'));
  if (ips.length > 0) return ips.slice(0, 1);
  return typeof status.podIP === 'string' && status.podIP.includes('.') ? [status.podIP] : [];
}

/** Pods that back the Service: selected, with an IPv4 address, not finished. */
function backingPods(service: KObject, pods: KObject[]): KObject[] {
  const selector = obj(service.spec).selector as Record<string, string> | undefined;
  if (!selector || Object.keys(selector).length === 0) return [];
  return pods.filter((pod) => {
    const phase = obj(pod.status).phase;
    return matchesMap(selector, pod.metadata.labels) && phase !== 'Succeeded' && phase !== 'Failed' && podIPs(pod).length > 0;
  });
}

function endpointFor(service: KObject, pod: KObject): Obj {
  const spec = obj(pod.spec);
  const terminating = pod.metadata.deletionTimestamp !== undefined;
  const ready = podReady(pod);
  const publish = obj(service.spec).publishNotReadyAddresses === true;
  const endpoint: Obj = {
    addresses: podIPs(pod),
    conditions: { ready: publish || (ready && !terminating), serving: ready, terminating },
    targetRef: { kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid },
  };
  if (typeof spec.nodeName === 'string' && spec.nodeName !== '') endpoint.nodeName = spec.nodeName;
  if (typeof spec.hostname === 'string' && spec.subdomain === service.metadata.name) endpoint.hostname = spec.hostname;
  return endpoint;
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 10);
}

/** The EndpointSlices the Service should have, with stable names. */
export function desiredSlices(service: KObject, pods: KObject[]): KObject[] {
  const name = service.metadata.name as string;
  const groups = new Map<string, { ports: SlicePort[]; endpoints: Obj[] }>();
  for (const pod of backingPods(service, pods)) {
    const ports = resolvePorts(service, pod);
    const key = JSON.stringify(ports);
    const group = groups.get(key) ?? { ports, endpoints: [] };
    group.endpoints.push(endpointFor(service, pod));
    groups.set(key, group);
  }
  if (groups.size === 0) groups.set('placeholder', { ports: [], endpoints: [] });
  const slices: KObject[] = [];
  for (const [key, group] of [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const sorted = group.endpoints.sort((a, b) => String((a.addresses as string[])[0]).localeCompare(String((b.addresses as string[])[0])));
    for (let i = 0; i === 0 || i < sorted.length; i += maxEndpointsPerSlice) {
      slices.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${name.slice(0, 50)}-${hash(`${key}/${i}`)}`,
          namespace: service.metadata.namespace,
          labels: { ...(service.metadata.labels ?? {}), 'kubernetes.io/service-name': name, 'endpointslice.kubernetes.io/managed-by': managedBy },
          ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name, uid: service.metadata.uid, controller: true, blockOwnerDeletion: true }],
        },
        addressType: 'IPv4',
        endpoints: sorted.slice(i, i + maxEndpointsPerSlice),
        ports: group.ports,
      });
    }
  }
  return slices;
}

/** The legacy Endpoints object (subsets grouped by resolved ports; not-ready addresses apart). */
export function desiredEndpoints(service: KObject, pods: KObject[]): KObject {
  const publish = obj(obj(service.spec)).publishNotReadyAddresses === true;
  const subsets = new Map<string, { addresses: Obj[]; notReadyAddresses: Obj[]; ports: SlicePort[] }>();
  for (const pod of backingPods(service, pods)) {
    const terminating = pod.metadata.deletionTimestamp !== undefined;
    if (terminating && !publish) continue;
    const ports = resolvePorts(service, pod);
    if (ports.length === 0 && list(obj(service.spec).ports).length > 0) continue;
    const key = JSON.stringify(ports);
    const subset = subsets.get(key) ?? { addresses: [], notReadyAddresses: [], ports };
    const address: Obj = { ip: podIPs(pod)[0], targetRef: { kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid } };
    const nodeName = obj(pod.spec).nodeName;
    if (typeof nodeName === 'string' && nodeName !== '') address.nodeName = nodeName;
    (publish || podReady(pod) ? subset.addresses : subset.notReadyAddresses).push(address);
    subsets.set(key, subset);
  }
  const byIp = (a: Obj, b: Obj) => String(a.ip).localeCompare(String(b.ip));
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: service.metadata.name, namespace: service.metadata.namespace, labels: { ...(service.metadata.labels ?? {}) } },
    subsets: [...subsets.values()].map((s) => {
      const subset: Obj = { ports: s.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol })) };
      if (s.addresses.length > 0) subset.addresses = s.addresses.sort(byIp);
      if (s.notReadyAddresses.length > 0) subset.notReadyAddresses = s.notReadyAddresses.sort(byIp);
      return subset;
    }),
  };
}
