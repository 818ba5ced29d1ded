/** Builders of Services and EndpointSlices for the proxy's unit tests. */
import type { V1EndpointSlice, V1Service, V1ServicePort } from '@kubernetes/client-node';

export function service(name: string, clusterIP: string, ports: V1ServicePort[], spec: Partial<V1Service['spec']> = {}, namespace = 'ns1'): V1Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { clusterIP, type: 'ClusterIP', ports, ...spec } };
}

export interface EndpointSpec {
  ip: string;
  node?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

export function slice(serviceName: string, ports: { name?: string; port: number; protocol?: string }[], endpoints: EndpointSpec[], namespace = 'ns1', suffix = 'abc'): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    addressType: 'IPv4',
    metadata: { name: `${serviceName}-${suffix}`, namespace, labels: { 'kubernetes.io/service-name': serviceName } },
    ports,
    endpoints: endpoints.map((endpoint) => ({
      addresses: [endpoint.ip],
      nodeName: endpoint.node,
      conditions: { ready: endpoint.ready ?? true, serving: endpoint.serving ?? endpoint.ready ?? true, terminating: endpoint.terminating ?? false },
    })),
  };
}
