/**
 * Service defaulting, validation and the ClusterIP/NodePort allocation the service REST storage
 * does on create (pkg/registry/core/service/storage): type ClusterIP, sessionAffinity None,
 * port protocol TCP, targetPort = port; a requested ClusterIP or NodePort already in use is a
 * 422, as kube-apiserver answers ("provided IP is already allocated").
 */
import type { StatusCause } from './status.js';
import type { KObject } from './storage/types.js';
import type { KindStrategy } from './strategy.js';
import { allocateNodePort, allocateServiceIp, inCidr, type Cidr } from './ipalloc.js';
import { checkMetadata, checkName, checkPort, checkProtocol, duplicate, invalidValue, required, unsupported } from './validation.js';
import { isOneOf, recordOf, recordsOf } from './util.js';

type Obj = Record<string, unknown>;
const types = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'];

function ports(service: KObject): Obj[] {
  return recordsOf(recordOf(service.spec).ports);
}

/** SetDefaults_Service (pkg/apis/core/v1/defaults.go); ipFamilies/ipFamilyPolicy as the REST storage's allocation fills them. */
export function defaultService(service: KObject): void {
  const spec = recordOf(service.spec);
  service.spec = spec;
  if (spec.sessionAffinity === undefined || spec.sessionAffinity === '') spec.sessionAffinity = 'None';
  if (spec.sessionAffinity === 'None') delete spec.sessionAffinityConfig;
  if (spec.sessionAffinity === 'ClientIP') {
    const clientIP = recordOf(recordOf(spec.sessionAffinityConfig).clientIP);
    if (typeof clientIP.timeoutSeconds !== 'number') spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: 10800 } };
  }
  if (spec.type === undefined || spec.type === '') spec.type = 'ClusterIP';
  if (spec.type !== 'ExternalName') {
    spec.internalTrafficPolicy ??= 'Cluster';
    spec.ipFamilies ??= ['IPv4'];
    spec.ipFamilyPolicy ??= 'SingleStack';
  }
  // service.ExternallyAccessible: NodePort, LoadBalancer, or ClusterIP with external IPs.
  const external = spec.type === 'NodePort' || spec.type === 'LoadBalancer' || (spec.type === 'ClusterIP' && Array.isArray(spec.externalIPs) && spec.externalIPs.length > 0);
  if (external && (spec.externalTrafficPolicy === undefined || spec.externalTrafficPolicy === '')) spec.externalTrafficPolicy = 'Cluster';
  if (spec.type === 'LoadBalancer') spec.allocateLoadBalancerNodePorts ??= true;
  for (const port of ports(service)) {
    if (port.protocol === undefined || port.protocol === '') port.protocol = 'TCP';
    if (port.targetPort === undefined || port.targetPort === 0 || port.targetPort === '') port.targetPort = port.port;
  }
  service.status ??= { loadBalancer: {} };
}

export function validateService(service: KObject): StatusCause[] {
  const causes = checkMetadata(service, 'dns1035');
  const spec = recordOf(service.spec);
  if (!isOneOf(spec.type, types)) causes.push(unsupported('spec.type', spec.type, types));
  if (!isOneOf(spec.sessionAffinity, ['None', 'ClientIP'])) causes.push(unsupported('spec.sessionAffinity', spec.sessionAffinity, ['ClientIP', 'None']));
  const list = ports(service);
  const headless = spec.clusterIP === 'None';
  if (list.length === 0 && spec.type !== 'ExternalName' && !headless) causes.push(required('spec.ports'));
  const names = new Set<string>();
  list.forEach((port, index) => {
    const path = `spec.ports[${index}]`;
    if (list.length > 1 && (typeof port.name !== 'string' || port.name === '')) causes.push(required(`${path}.name`));
    if (typeof port.name === 'string' && port.name !== '') {
      causes.push(...checkName(`${path}.name`, port.name, 'label'));
      if (names.has(port.name)) causes.push(duplicate(`${path}.name`, port.name));
      names.add(port.name);
    }
    causes.push(...checkPort(`${path}.port`, port.port));
    causes.push(...checkProtocol(`${path}.protocol`, port.protocol));
    if (typeof port.targetPort === 'number') causes.push(...checkPort(`${path}.targetPort`, port.targetPort));
    else if (typeof port.targetPort === 'string') causes.push(...checkName(`${path}.targetPort`, port.targetPort, 'label'));
    if (port.nodePort !== undefined && port.nodePort !== 0) {
      if (spec.type !== 'NodePort' && spec.type !== 'LoadBalancer') causes.push({ reason: 'FieldValueForbidden', message: 'Forbidden: may not be used when `type` is \'ClusterIP\'', field: `${path}.nodePort` });
      else if (typeof port.nodePort !== 'number' || port.nodePort < 30000 || port.nodePort > 32767)
        causes.push(invalidValue(`${path}.nodePort`, port.nodePort, 'provided port is not in the valid range. The range of valid ports is 30000-32767'));
    }
  });
  return causes;
}

export const serviceStrategy: KindStrategy = {
  defaults: defaultService,
  /** Status is not client-settable on create (service strategy PrepareForCreate). */
  prepareForCreate(service) {
    service.status = { loadBalancer: {} };
  },
  validate: (service) => validateService(service),
  returnsDeletedObject: true,
};

interface ServiceAllocationState {
  serviceCidr: Cidr;
  usedIps: Set<string>;
  usedNodePorts: Set<number>;
}

/** Fills clusterIP(s) and nodePorts, or reports which requested ones are taken. */
export function allocateForService(service: KObject, old: KObject | undefined, state: ServiceAllocationState): StatusCause[] {
  const spec = recordOf(service.spec);
  service.spec = spec;
  const oldSpec = recordOf(old?.spec);
  const causes: StatusCause[] = [];
  if (old && (spec.clusterIP === undefined || spec.clusterIP === '')) {
    spec.clusterIP = oldSpec.clusterIP;
    spec.clusterIPs = oldSpec.clusterIPs;
  }
  if (old && spec.clusterIP !== oldSpec.clusterIP && spec.type !== 'ExternalName' && oldSpec.type !== 'ExternalName')
    causes.push(invalidValue('spec.clusterIPs[0]', spec.clusterIP, 'may not change once set'));
  if (spec.type === 'ExternalName') {
    delete spec.clusterIP;
    delete spec.clusterIPs;
  } else if (!old || oldSpec.type === 'ExternalName') {
    const requested = spec.clusterIP;
    if (requested === 'None') spec.clusterIPs = ['None'];
    else if (typeof requested === 'string' && requested !== '') {
      if (!inCidr(state.serviceCidr, requested))
        causes.push(invalidValue('spec.clusterIPs', [requested], `failed to allocate IP ${requested}: the provided IP (${requested}) is not in the valid range. The range of valid IPs is ${formatCidr(state.serviceCidr)}`));
      else if (state.usedIps.has(requested)) causes.push(invalidValue('spec.clusterIPs', [requested], `failed to allocate IP ${requested}: provided IP is already allocated`));
      spec.clusterIPs = [requested];
    } else {
      const ip = allocateServiceIp(state.serviceCidr, state.usedIps, Math.floor(Math.random() * 1024));
      if (!ip) causes.push(invalidValue('spec.clusterIPs', [], 'failed to allocate IP: range is full'));
      else {
        spec.clusterIP = ip;
        spec.clusterIPs = [ip];
      }
    }
  }
  if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') causes.push(...allocateNodePorts(spec, oldSpec, state));
  else for (const port of ports(service)) delete port.nodePort;
  return causes;
}

function allocateNodePorts(spec: Obj, oldSpec: Obj, state: ServiceAllocationState): StatusCause[] {
  const causes: StatusCause[] = [];
  const oldPorts = recordsOf(oldSpec.ports);
  const oldNodePorts = new Set(oldPorts.map((p) => p.nodePort).filter((p): p is number => typeof p === 'number'));
  const list = recordsOf(spec.ports);
  const taken = new Set(state.usedNodePorts);
  list.forEach((port, index) => {
    if (typeof port.nodePort === 'number' && port.nodePort !== 0) {
      if (taken.has(port.nodePort) && !oldNodePorts.has(port.nodePort))
        causes.push(invalidValue(`spec.ports[${index}].nodePort`, port.nodePort, 'provided port is already allocated'));
      taken.add(port.nodePort);
      return;
    }
    const same = oldPorts.map((p) => (p.port === port.port && p.protocol === port.protocol && typeof p.nodePort === 'number' ? p.nodePort : undefined)).find((p) => p !== undefined);
    const chosen = same ?? allocateNodePort(taken, Math.floor(Math.random() * 2768));
    if (chosen === undefined) causes.push(invalidValue(`spec.ports[${index}].nodePort`, 0, 'failed to allocate a node port: range is full'));
    else {
      port.nodePort = chosen;
      taken.add(chosen);
    }
  });
  return causes;
}

function formatCidr(cidr: Cidr): string {
  return `${[24, 16, 8, 0].map((s) => (cidr.base >>> s) & 255).join('.')}/${cidr.bits}`;
}

export function serviceAllocations(services: KObject[], skipKey?: string): { ips: Set<string>; nodePorts: Set<number> } {
  const ips = new Set<string>();
  const nodePorts = new Set<number>();
  for (const service of services) {
    if (skipKey && `${service.metadata.namespace}/${service.metadata.name}` === skipKey) continue;
    const spec = recordOf(service.spec);
    if (typeof spec.clusterIP === 'string' && spec.clusterIP !== 'None') ips.add(spec.clusterIP);
    for (const port of ports(service)) if (typeof port.nodePort === 'number') nodePorts.add(port.nodePort);
  }
  return { ips, nodePorts };
}
