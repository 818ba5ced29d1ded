/** Wires the ClusterIP/NodePort allocation into the registry as a Service admission hook. */
import type { Registry } from './registry.js';
import { resources, type ResourceInfo, resourceNamed } from './resources.js';
import { allocateForService, serviceAllocations } from './kinds-service.js';
import type { Cidr } from './ipalloc.js';

const servicesInfo = resourceNamed('services');

export function registerAllocators(registry: Registry, serviceCidr: Cidr): void {
  registry.addAdmitHook('Service', async (service, old, reg) => {
    const all = (await reg.list(servicesInfo, undefined)).items;
    const self = old ? `${old.metadata.namespace}/${old.metadata.name}` : undefined;
    const { ips, nodePorts } = serviceAllocations(all, self);
    return allocateForService(service, old, { serviceCidr, usedIps: ips, usedNodePorts: nodePorts });
  });
}
