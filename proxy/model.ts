/**
 * Change tracking, the pure part shared by every dataplane: Services and EndpointSlices
 * (client-node types) become a list of service ports, each with the endpoints that cluster
 * and external traffic may use. Mirrors kube-proxy's ServiceChangeTracker/EndpointsChangeTracker
 * and CategorizeEndpoints (pkg/proxy/topology.go):
 *  - an endpoint is usable when ready; when a service has no ready endpoint, serving+terminating
 *    ones are used instead (KEP-1669, ProxyTerminatingEndpoints);
 *  - internalTrafficPolicy: Local → cluster traffic goes to this node's endpoints only (KEP-2086);
 *  - externalTrafficPolicy: Local → external traffic goes to this node's endpoints only, and the
 *    service gets a healthCheckNodePort;
 *  - EndpointSlice ports are matched to service ports by name (the EndpointSlice controller has
 *    already resolved named targetPorts to numbers, as in kube-proxy).
 * Invalid input never throws: the offending service port is skipped with a reason.
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { isValidIP } from '../lib/net.js';
import ipaddr from 'ipaddr.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface Endpoint {
  ip: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName?: string;
  isLocal: boolean;
}

export interface ServicePort {
  /** kube-proxy's ServicePortName.String(): "ns/name:port" or "ns/name" for an unnamed port. */
  name: string;
  namespace: string;
  serviceName: string;
  portName: string;
  protocol: Protocol;
  clusterIP: string;
  port: number;
  nodePort: number;
  externalIPs: string[];
  loadBalancerIPs: string[];
  /** spec.loadBalancerSourceRanges (IPv4 CIDRs; empty: no restriction) of a LoadBalancer service. */
  loadBalancerSourceRanges: string[];
  /** Seconds, when sessionAffinity is ClientIP. */
  affinityTimeout?: number;
  externalPolicyLocal: boolean;
  internalPolicyLocal: boolean;
  healthCheckNodePort: number;
  /** Every endpoint of the slices for this port (deduplicated by ip:port). */
  endpoints: readonly Endpoint[];
}

interface SkippedObject {
  object: string;
  reason: string;
}

export interface ProxyModel {
  /** Sorted by name, so that output built from the model is deterministic. */
  ports: ServicePort[];
  skipped: SkippedObject[];
}

const protocols: readonly string[] = ['TCP', 'UDP', 'SCTP'];

export const serviceNameLabel = 'kubernetes.io/service-name';

function servicePortName(namespace: string, name: string, portName: string): string {
  return `${namespace}/${name}${portName ? `:${portName}` : ''}`;
}

const isIPv4 = (text: string) => isValidIP(text) && ipaddr.parse(text).kind() === 'ipv4';
const validPort = (port: unknown): port is number => typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;

interface ServiceParse {
  ports: ServicePort[];
  skipped: SkippedObject[];
}

/** The IPv4 service ports of one Service (this proxier programs IPv4, as kube-proxy's v4 proxier). */
/**
 * loadBalancerSourceRanges as kube-proxy reads them: entries trimmed, those that do not parse
 * as a CIDR skipped (the API server validates them; kube-proxy's iptables proxier keeps only
 * valid ones of its IP family), IPv4 only here, normalised to the network address.
 */
function sourceRanges(ranges: readonly string[]): string[] {
  const result = new Set<string>();
  for (const raw of ranges) {
    try {
      const [network, bits] = ipaddr.parseCIDR(raw.trim());
      if (network.kind() !== 'ipv4') continue;
      result.add(`${ipaddr.IPv4.networkAddressFromCIDR(`${network.toString()}/${bits}`).toString()}/${bits}`);
    } catch {
      // not a CIDR: ignored
    }
  }
  return [...result].sort();
}

function servicePorts(service: V1Service): ServiceParse {
  const namespace = service.metadata?.namespace ?? 'default';
  const name = service.metadata?.name ?? '';
  const object = `Service ${namespace}/${name}`;
  const spec = service.spec;
  const skip = (reason: string): ServiceParse => ({ ports: [], skipped: [{ object, reason }] });
  if (!name || !spec) return skip('has no name or spec');
  if (spec.type === 'ExternalName') return { ports: [], skipped: [] };
  const clusterIP = spec.clusterIP ?? '';
  if (clusterIP === '' || clusterIP === 'None') return { ports: [], skipped: [] }; // headless: nothing to proxy
  if (!isValidIP(clusterIP)) return skip(`invalid clusterIP "${clusterIP}"`);
  if (!isIPv4(clusterIP)) return skip(`clusterIP ${clusterIP} is not IPv4 (this proxier programs IPv4)`);
  const externalIPs = (spec.externalIPs ?? []).filter(isIPv4);
  const loadBalancerIPs = (service.status?.loadBalancer?.ingress ?? []).map((ingress) => ingress.ip ?? '').filter(isIPv4);
  const loadBalancerSourceRanges = spec.type === 'LoadBalancer' ? sourceRanges(spec.loadBalancerSourceRanges ?? []) : [];
  const externalPolicyLocal = spec.externalTrafficPolicy === 'Local' && (spec.type === 'NodePort' || spec.type === 'LoadBalancer' || externalIPs.length > 0);
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  const affinityTimeout = spec.sessionAffinity === 'ClientIP' ? (validTimeout(timeout) ? timeout : 10800) : undefined;
  const result: ServiceParse = { ports: [], skipped: [] };
  const seen = new Set<string>();
  for (const port of spec.ports ?? []) {
    const portName = port.name ?? '';
    const protocol = port.protocol ?? 'TCP';
    const label = `${object} port "${portName || port.port}"`;
    if (!protocols.includes(protocol)) {
      result.skipped.push({ object: label, reason: `unsupported protocol "${protocol}"` });
      continue;
    }
    if (!validPort(port.port)) {
      result.skipped.push({ object: label, reason: `invalid port ${String(port.port)}` });
      continue;
    }
    const nodePort = port.nodePort ?? 0;
    if (nodePort !== 0 && !validPort(nodePort)) {
      result.skipped.push({ object: label, reason: `invalid nodePort ${String(nodePort)}` });
      continue;
    }
    if (seen.has(portName)) {
      result.skipped.push({ object: label, reason: `duplicate port name "${portName}"` });
      continue;
    }
    seen.add(portName);
    result.ports.push({
      name: servicePortName(namespace, name, portName),
      namespace,
      serviceName: name,
      portName,
      protocol: protocol as Protocol,
      clusterIP,
      port: port.port,
      nodePort,
      externalIPs,
      loadBalancerIPs,
      loadBalancerSourceRanges,
      affinityTimeout,
      externalPolicyLocal,
      internalPolicyLocal: spec.internalTrafficPolicy === 'Local',
      healthCheckNodePort: externalPolicyLocal && validPort(spec.healthCheckNodePort) ? spec.healthCheckNodePort : 0,
      endpoints: [],
    });
  }
  return result;
}

function validTimeout(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= 86400;
}

/** Endpoints of the slices of one service, keyed by port name then protocol. */
function sliceEndpoints(slices: readonly V1EndpointSlice[], nodeName: string, skipped: SkippedObject[]): Map<string, Endpoint[]> {
  const byPort = new Map<string, Map<string, Endpoint>>();
  for (const slice of slices) {
    const object = `EndpointSlice ${slice.metadata?.namespace}/${slice.metadata?.name}`;
    if (slice.addressType !== 'IPv4') continue;
    for (const port of slice.ports ?? []) {
      if (!validPort(port.port)) {
        skipped.push({ object, reason: `invalid port ${String(port.port)}` });
        continue;
      }
      const key = `${port.name ?? ''}/${port.protocol ?? 'TCP'}`;
      const endpoints = byPort.get(key) ?? new Map<string, Endpoint>();
      byPort.set(key, endpoints);
      for (const endpoint of slice.endpoints ?? []) {
        const ip = endpoint.addresses?.[0] ?? '';
        if (!isIPv4(ip)) {
          skipped.push({ object, reason: `invalid endpoint address "${ip}"` });
          continue;
        }
        // API semantics: a nil ready means ready; nil serving means "same as ready".
        const ready = endpoint.conditions?.ready ?? true;
        const serving = endpoint.conditions?.serving ?? ready;
        const terminating = endpoint.conditions?.terminating ?? false;
        const id = `${ip}:${port.port}`;
        const previous = endpoints.get(id);
        if (previous && previous.ready) continue; // the same endpoint in two slices: keep the ready one
        endpoints.set(id, { ip, port: port.port, ready, serving, terminating, nodeName: endpoint.nodeName, isLocal: endpoint.nodeName === nodeName && nodeName !== '' });
      }
    }
  }
  return new Map([...byPort].map(([key, endpoints]) => [key, sortEndpoints([...endpoints.values()])]));
}

/** Sorted by address (numerically), then port: a stable order for the rules. */
function sortEndpoints(endpoints: Endpoint[]): Endpoint[] {
  const keyed = endpoints.map((endpoint) => ({ endpoint, key: endpoint.ip.split('.').reduce((sum, part) => sum * 256 + Number(part), 0) * 65536 + endpoint.port }));
  return keyed.sort((a, b) => a.key - b.key).map((entry) => entry.endpoint);
}

interface CachedService {
  slices: readonly V1EndpointSlice[];
  nodeName: string;
  ports: ServicePort[];
  skipped: SkippedObject[];
}

/**
 * Per-Service results, keyed by the Service object: informers replace an object when it
 * changes, so an unchanged Service with the same slice objects gives the same (frozen) ports
 * again. At 10k services this turns a sync after one change from rebuilding everything into
 * rebuilding one service. Ports are never mutated after they are made.
 */
const serviceCache = new WeakMap<V1Service, CachedService>();

function sameSlices(a: readonly V1EndpointSlice[], b: readonly V1EndpointSlice[]): boolean {
  return a.length === b.length && a.every((slice, index) => slice === b[index]);
}

function modelForService(service: V1Service, slices: readonly V1EndpointSlice[], nodeName: string): CachedService {
  const cached = serviceCache.get(service);
  if (cached && cached.nodeName === nodeName && sameSlices(cached.slices, slices)) return cached;
  const parsed = servicePorts(service);
  const skipped = [...parsed.skipped];
  const endpoints = sliceEndpoints(slices, nodeName, skipped);
  const ports = parsed.ports.map((port) => Object.freeze({ ...port, endpoints: endpoints.get(`${port.portName}/${port.protocol}`) ?? [] }));
  const result = { slices, nodeName, ports, skipped };
  serviceCache.set(service, result);
  return result;
}

/** The order of `ProxyModel.ports`: by name, then protocol. */
function comparePorts(a: ServicePort, b: ServicePort): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0;
}

/** A proxier's key for one service port: "ns/name:port/PROTOCOL". */
export const portKey = (port: ServicePort): string => `${port.name}/${port.protocol}`;

/** Where the model reads Services and their EndpointSlices, by service key ("ns/name"). */
export interface ModelSource {
  /** Every key with a Service or EndpointSlices: the Services' first, in a stable order. */
  serviceKeys(): Iterable<string>;
  service(key: string): V1Service | undefined;
  slicesOf(key: string): readonly V1EndpointSlice[];
}

/** One service port that a model update changed: absent before (added) or after (removed). */
export interface PortChange {
  before?: ServicePort;
  after?: ServicePort;
}

interface ServiceResult {
  ports: readonly ServicePort[];
  skipped: readonly SkippedObject[];
}

/** Position of `port` in `sorted` (or where it would go), by binary search. */
function sortedIndex(sorted: readonly ServicePort[], port: ServicePort): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (comparePorts(sorted[middle]!, port) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * The model kept service by service, as kube-proxy's ServiceChangeTracker and
 * EndpointsChangeTracker apply only pending changes to its svcPortMap and endpointsMap
 * (pkg/proxy/servicechangetracker.go, endpointschangetracker.go): `update` with the keys that
 * changed recomputes those services only and says which ports changed, so that a partial sync
 * at 10k Services costs what one Service costs, not a pass over all of them.
 */
export class IncrementalProxyModel {
  private readonly results = new Map<string, ServiceResult>();
  private sorted: ServicePort[] = [];

  constructor(private readonly nodeName: string) {}

  /** Recomputes every service of the source (a full sync); unchanged Services give the same frozen ports again. */
  rebuild(source: ModelSource): void {
    this.results.clear();
    for (const key of source.serviceKeys()) {
      const result = this.compute(source, key);
      if (result) this.results.set(key, result);
    }
    this.sorted = [...this.results.values()].flatMap((result) => result.ports).sort(comparePorts);
  }

  /** Recomputes the services `keys` only (a partial sync) and returns the ports whose object changed, by portKey. */
  update(source: ModelSource, keys: Iterable<string>): Map<string, PortChange> {
    const changes = new Map<string, PortChange>();
    const note = (port: ServicePort, side: keyof PortChange) => {
      const key = portKey(port);
      const change = changes.get(key) ?? {};
      change[side] = port;
      changes.set(key, change);
    };
    for (const key of keys) {
      const old = this.results.get(key);
      const result = this.compute(source, key);
      if (result) this.results.set(key, result);
      else this.results.delete(key);
      if (old === result || (old && result && old.ports === result.ports)) continue;
      for (const port of old?.ports ?? []) {
        note(port, 'before');
        this.sorted.splice(sortedIndex(this.sorted, port), 1);
      }
      for (const port of result?.ports ?? []) {
        note(port, 'after');
        this.sorted.splice(sortedIndex(this.sorted, port), 0, port);
      }
    }
    for (const [key, change] of changes) if (change.before === change.after) changes.delete(key);
    return changes;
  }

  private compute(source: ModelSource, key: string): ServiceResult | undefined {
    const service = source.service(key);
    const slices = source.slicesOf(key);
    if (service) return modelForService(service, slices, this.nodeName);
    if (slices.length === 0) return undefined;
    return { ports: [], skipped: [{ object: `EndpointSlices of ${key}`, reason: 'no such Service (ignored until it appears)' }] };
  }

  /** Every service port, sorted by name then protocol. */
  get ports(): readonly ServicePort[] {
    return this.sorted;
  }

  get skippedCount(): number {
    let count = 0;
    for (const result of this.results.values()) count += result.skipped.length;
    return count;
  }

  get model(): ProxyModel {
    return { ports: [...this.sorted], skipped: [...this.results.values()].flatMap((result) => result.skipped) };
  }
}

/** A ModelSource over plain lists (tests, benchmarks, and `buildProxyModel`). */
function listSource(services: readonly V1Service[], slices: readonly V1EndpointSlice[]): ModelSource {
  const serviceByKey = new Map<string, V1Service>();
  for (const service of services) serviceByKey.set(`${service.metadata?.namespace ?? 'default'}/${service.metadata?.name ?? ''}`, service);
  const slicesByService = new Map<string, V1EndpointSlice[]>();
  for (const slice of slices) {
    const service = slice.metadata?.labels?.[serviceNameLabel];
    if (!service) continue;
    const key = `${slice.metadata?.namespace ?? 'default'}/${service}`;
    const list = slicesByService.get(key);
    if (list) list.push(slice);
    else slicesByService.set(key, [slice]);
  }
  return {
    serviceKeys: () => new Set([...serviceByKey.keys(), ...slicesByService.keys()]),
    service: (key) => serviceByKey.get(key),
    slicesOf: (key) => slicesByService.get(key) ?? [],
  };
}

/** Services + EndpointSlices → the model. `nodeName` decides which endpoints are local. */
export function buildProxyModel(services: readonly V1Service[], slices: readonly V1EndpointSlice[], nodeName: string): ProxyModel {
  const model = new IncrementalProxyModel(nodeName);
  model.rebuild(listSource(services, slices));
  return model.model;
}

/** Ready endpoints, else serving+terminating ones (KEP-1669). */
function usable(endpoints: readonly Endpoint[]): Endpoint[] {
  const ready = endpoints.filter((endpoint) => endpoint.ready);
  if (ready.length > 0) return ready;
  return endpoints.filter((endpoint) => endpoint.serving && endpoint.terminating);
}

interface CategorizedEndpoints {
  /** Every usable endpoint, on any node. */
  all: Endpoint[];
  /** Where traffic to the cluster IP goes (all usable, or local ones with internalTrafficPolicy Local). */
  cluster: Endpoint[];
  /** Local usable endpoints (for externalTrafficPolicy Local). */
  local: Endpoint[];
}

const categorized = new WeakMap<ServicePort, CategorizedEndpoints>();
const fingerprints = new WeakMap<ServicePort, string>();

/** kube-proxy's CategorizeEndpoints, without topology hints. */
export function categorizeEndpoints(port: ServicePort): CategorizedEndpoints {
  let result = categorized.get(port);
  if (!result) {
    const all = usable(port.endpoints);
    const local = usable(port.endpoints.filter((endpoint) => endpoint.isLocal));
    result = { all, cluster: port.internalPolicyLocal ? local : all, local };
    if (Object.isFrozen(port)) categorized.set(port, result);
  }
  return result;
}

/** A stable fingerprint of everything the rules of one service port depend on. */
export function servicePortFingerprint(port: ServicePort): string {
  let fingerprint = fingerprints.get(port);
  if (fingerprint === undefined) {
    fingerprint = JSON.stringify(port);
    if (Object.isFrozen(port)) fingerprints.set(port, fingerprint);
  }
  return fingerprint;
}
