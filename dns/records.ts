/**
 * The cluster zone's records, built from Services and EndpointSlices as the Kubernetes DNS
 * specification asks (github.com/kubernetes/dns, docs/specification.md, schema 1.1.0):
 *  - ClusterIP Service: A/AAAA `<svc>.<ns>.svc.<zone>` → cluster IPs; SRV
 *    `_<port>._<proto>.<svc>.<ns>.svc.<zone>` → `0 100 <port> <svc>.<ns>.svc.<zone>` per named
 *    port; PTR for each cluster IP → the Service name (2.3);
 *  - headless Service: A/AAAA `<svc>.<ns>.svc.<zone>` → every ready endpoint (all endpoints with
 *    `publishNotReadyAddresses`), `<hostname>.<svc>.<ns>.svc.<zone>` → that endpoint, where the
 *    hostname is the endpoint's `hostname` (a Pod's hostname when its subdomain names the
 *    Service) or else the dashed address as CoreDNS does; SRV per named port → each endpoint's
 *    name; PTR for each endpoint address → that name (2.4);
 *  - ExternalName Service: CNAME `<svc>.<ns>.svc.<zone>` → externalName (2.5).
 *
 * The index is incremental: a change to one Service or one of its slices recomputes that
 * Service's records only, so that 100 changes per second over 10k Services stay cheap. Every
 * ancestor of a record name inside the zone is counted as an "empty non-terminal" so that the
 * lookup can answer NODATA for it instead of NXDOMAIN (RFC 8020). Pure: no I/O.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';

/** One record of the cluster zone (a subset of dns-packet's Answer, class IN). */
export type ClusterRecord =
  | { name: string; type: 'A' | 'AAAA' | 'CNAME' | 'PTR'; ttl: number; data: string }
  | { name: string; type: 'SRV'; ttl: number; data: { priority: number; weight: number; port: number; target: string } };

const serviceNameLabel = 'kubernetes.io/service-name';

const keyOf = (object: { metadata?: { namespace?: string; name?: string } }) => `${object.metadata?.namespace ?? 'default'}/${object.metadata?.name ?? ''}`;

/** The reverse-lookup name of an address (in-addr.arpa / ip6.arpa), or undefined when not an IP. */
export function reverseName(address: string): string | undefined {
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!isIPv6(address)) return undefined;
  const halves = address.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const full = halves.length === 2 ? [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail] : head;
  const nibbles = full.map((group) => group.padStart(4, '0')).join('');
  return `${[...nibbles.toLowerCase()].reverse().join('.')}.ip6.arpa`;
}

/** CoreDNS's name for an endpoint without a hostname: its address with dashes. */
function dashed(address: string): string {
  return address.replace(/[.:]/g, '-');
}

const addressRecord = (name: string, ip: string, ttl: number): ClusterRecord | undefined =>
  isIPv4(ip) ? { name, type: 'A', ttl, data: ip } : isIPv6(ip) ? { name, type: 'AAAA', ttl, data: ip } : undefined;

/** A DNS label is at most 63 octets; Kubernetes names always fit, bad objects are skipped. */
const validLabel = (label: string) => label.length > 0 && label.length <= 63 && !label.includes('.');

/** The records one Service (with its slices) contributes. Pure. */
function serviceRecords(service: V1Service, slices: V1EndpointSlice[], zone: string, ttl: number): ClusterRecord[] {
  const name = service.metadata?.name ?? '';
  const namespace = service.metadata?.namespace ?? 'default';
  if (!validLabel(name) || !validLabel(namespace)) return [];
  const base = `${name}.${namespace}.svc.${zone}`.toLowerCase();
  const spec = service.spec ?? {};
  if (spec.type === 'ExternalName') {
    const target = (spec.externalName ?? '').replace(/\.$/, '').toLowerCase();
    return target && target.length <= 253 ? [{ name: base, type: 'CNAME', ttl, data: target }] : [];
  }
  const records: ClusterRecord[] = [];
  const clusterIPs = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  if (clusterIPs.length > 0 && clusterIPs[0] !== 'None') {
    for (const ip of clusterIPs) {
      const record = addressRecord(base, ip, ttl);
      if (!record) continue;
      records.push(record);
      const reverse = reverseName(ip);
      if (reverse) records.push({ name: reverse, type: 'PTR', ttl, data: base });
    }
    for (const port of spec.ports ?? []) {
      if (!port.name || !validLabel(port.name)) continue;
      records.push({ name: `_${port.name}._${(port.protocol ?? 'TCP').toLowerCase()}.${base}`.toLowerCase(), type: 'SRV', ttl, data: { priority: 0, weight: 100, port: port.port, target: base } });
    }
    return records;
  }
  if (clusterIPs[0] !== 'None') return records;
  return headlessRecords(base, slices, Boolean(spec.publishNotReadyAddresses), ttl);
}

function headlessRecords(base: string, slices: V1EndpointSlice[], publishNotReady: boolean, ttl: number): ClusterRecord[] {
  const records = new Map<string, ClusterRecord>();
  const add = (record: ClusterRecord) => records.set(`${record.name}|${record.type}|${JSON.stringify(record.data)}`, record);
  for (const slice of slices) {
    for (const endpoint of slice.endpoints ?? []) {
      // "ready" unset means ready (discovery.k8s.io/v1 EndpointConditions).
      if (!publishNotReady && endpoint.conditions?.ready === false) continue;
      for (const address of endpoint.addresses ?? []) {
        const host = endpoint.hostname && validLabel(endpoint.hostname) ? endpoint.hostname.toLowerCase() : dashed(address);
        const hostName = `${host}.${base}`;
        const a = addressRecord(base, address, ttl);
        const named = addressRecord(hostName, address, ttl);
        if (!a || !named) continue;
        add(a);
        add(named);
        const reverse = reverseName(address);
        if (reverse) add({ name: reverse, type: 'PTR', ttl, data: hostName });
        for (const port of slice.ports ?? []) {
          if (!port.name || !validLabel(port.name) || port.port === undefined) continue;
          add({ name: `_${port.name}._${(port.protocol ?? 'TCP').toLowerCase()}.${base}`.toLowerCase(), type: 'SRV', ttl, data: { priority: 0, weight: 100, port: port.port, target: hostName } });
        }
      }
    }
  }
  return [...records.values()];
}

/** Services and slices → records by name, kept up to date one Service at a time. */
export class ClusterIndex {
  private readonly services = new Map<string, V1Service>();
  private readonly slices = new Map<string, V1EndpointSlice>();
  private readonly slicesOf = new Map<string, Set<string>>();
  private readonly contributed = new Map<string, ClusterRecord[]>();
  private readonly byName = new Map<string, ClusterRecord[]>();
  private readonly ancestors = new Map<string, number>();
  /** Service name → its `<svc>.<ns>.svc.<zone>` name, which exists even with no records (NODATA). */
  private readonly serviceNames = new Map<string, string>();
  /** Bumped on every change (answer caches key on it). */
  generation = 0;

  constructor(
    readonly zone: string,
    readonly ttl = 5,
  ) {}

  upsertService(service: V1Service): void {
    this.services.set(keyOf(service), service);
    this.rebuild(keyOf(service));
  }

  deleteService(service: V1Service): void {
    this.services.delete(keyOf(service));
    this.rebuild(keyOf(service));
  }

  upsertSlice(slice: V1EndpointSlice): void {
    const key = keyOf(slice);
    const previous = this.slices.get(key);
    this.slices.set(key, slice);
    const before = previous ? this.serviceKeyOf(previous) : undefined;
    const after = this.serviceKeyOf(slice);
    if (before && before !== after) this.unlinkSlice(before, key);
    if (after) {
      let set = this.slicesOf.get(after);
      if (!set) this.slicesOf.set(after, (set = new Set()));
      set.add(key);
      this.rebuild(after);
    }
    if (before && before !== after) this.rebuild(before);
  }

  deleteSlice(slice: V1EndpointSlice): void {
    const key = keyOf(slice);
    const stored = this.slices.get(key) ?? slice;
    this.slices.delete(key);
    const service = this.serviceKeyOf(stored);
    if (!service) return;
    this.unlinkSlice(service, key);
    this.rebuild(service);
  }

  /** Records at a (lower-case, no trailing dot) name. */
  lookup(name: string): readonly ClusterRecord[] | undefined {
    return this.byName.get(name);
  }

  /** True when some record lives below this name (an empty non-terminal) or a Service has it. */
  hasDescendants(name: string): boolean {
    return this.ancestors.has(name);
  }

  get serviceCount(): number {
    return this.services.size;
  }

  /** The objects the index holds, to build a copy of it elsewhere (./serving.ts). */
  snapshot(): { services: V1Service[]; slices: V1EndpointSlice[] } {
    return { services: [...this.services.values()], slices: [...this.slices.values()] };
  }

  private serviceKeyOf(slice: V1EndpointSlice): string | undefined {
    const service = slice.metadata?.labels?.[serviceNameLabel];
    return service ? `${slice.metadata?.namespace ?? 'default'}/${service}` : undefined;
  }

  private unlinkSlice(service: string, sliceKey: string): void {
    const set = this.slicesOf.get(service);
    set?.delete(sliceKey);
    if (set?.size === 0) this.slicesOf.delete(service);
  }

  private rebuild(serviceKey: string): void {
    this.generation++;
    for (const record of this.contributed.get(serviceKey) ?? []) this.remove(record);
    this.contributed.delete(serviceKey);
    const oldName = this.serviceNames.get(serviceKey);
    if (oldName !== undefined) {
      this.countAncestors(`.${oldName}`, -1);
      this.serviceNames.delete(serviceKey);
    }
    const service = this.services.get(serviceKey);
    if (!service) return;
    const [namespace, name] = serviceKey.split('/') as [string, string];
    if (validLabel(name) && validLabel(namespace)) {
      // Counted as the ancestor of an empty label, so that the Service's own name exists.
      const base = `${name}.${namespace}.svc.${this.zone}`.toLowerCase();
      this.serviceNames.set(serviceKey, base);
      this.countAncestors(`.${base}`, 1);
    }
    const slices = [...(this.slicesOf.get(serviceKey) ?? [])].map((key) => this.slices.get(key)).filter((s): s is V1EndpointSlice => s !== undefined);
    const records = serviceRecords(service, slices, this.zone, this.ttl);
    for (const record of records) this.add(record);
    if (records.length > 0) this.contributed.set(serviceKey, records);
  }

  private add(record: ClusterRecord): void {
    const list = this.byName.get(record.name);
    if (list) list.push(record);
    else {
      this.byName.set(record.name, [record]);
      this.countAncestors(record.name, 1);
    }
  }

  private remove(record: ClusterRecord): void {
    const list = this.byName.get(record.name);
    if (!list) return;
    const index = list.indexOf(record);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) {
      this.byName.delete(record.name);
      this.countAncestors(record.name, -1);
    }
  }

  private countAncestors(name: string, delta: number): void {
    for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) {
      const ancestor = name.slice(dot + 1);
      const count = (this.ancestors.get(ancestor) ?? 0) + delta;
      if (count <= 0) this.ancestors.delete(ancestor);
      else this.ancestors.set(ancestor, count);
    }
  }
}
