/**
 * One table of packet-level cases for every proxy mode (iptables, nftables): the Services and
 * EndpointSlices to program, then real HTTP through the proxy-topology netns (client → node →
 * pods) and what must come back. The node is "node-a"; endpoints on "node-b" are remote for
 * the traffic policies, though their pods are reachable on this node's netns.
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { service, slice } from '../unit/proxy-fixtures.js';
import { nodeIP, type Topology } from './proxy-topology.js';

export interface PacketCase {
  name: string;
  services: V1Service[];
  slices: (topo: Topology) => V1EndpointSlice[];
  check: (topo: Topology, spread: (from: Topology['client'], host: string, port: number, count: number) => Promise<Map<string, number>>) => Promise<void>;
}

const http = [{ name: 'http', port: 80 }];
const ips = (topo: Topology, ...indexes: number[]) => indexes.map((index) => topo.pods[index]?.ip ?? '');
const onNode = (node: string) => (ip: string) => ({ ip, node });
const keys = (hits: Map<string, number>) => [...hits.keys()].sort();

function expectEqual<T>(actual: T, expected: T, what: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

export const packetCases: PacketCase[] = [
  {
    name: 'ClusterIP reaches every endpoint',
    services: [service('web', '10.96.0.10', http)],
    slices: (topo) => [slice('web', http, ips(topo, 0, 1, 2).map(onNode('node-a')))],
    check: async (topo, spread) => expectEqual(keys(await spread(topo.client, '10.96.0.10', 80, 40)), ['pod1', 'pod2', 'pod3'], 'ClusterIP'),
  },
  {
    name: 'NodePort on the node address reaches every endpoint',
    services: [service('np', '10.96.0.11', [{ name: 'http', port: 80, nodePort: 30080 }], { type: 'NodePort' })],
    slices: (topo) => [slice('np', http, ips(topo, 0, 1, 2).map(onNode('node-a')))],
    check: async (topo, spread) => expectEqual(keys(await spread(topo.client, nodeIP, 30080, 40)), ['pod1', 'pod2', 'pod3'], 'NodePort'),
  },
  {
    name: 'externalIPs are served',
    services: [service('ext', '10.96.0.12', http, { externalIPs: ['10.97.0.1'] })],
    slices: (topo) => [slice('ext', http, ips(topo, 1).map(onNode('node-a')))],
    check: async (topo) => expectEqual(await topo.fetch(topo.client, '10.97.0.1', 80), 'pod2', 'externalIP'),
  },
  {
    name: 'LoadBalancer IP: allowed source range passes, others are dropped',
    services: [
      { ...service('lb-ok', '10.96.0.13', [{ name: 'http', port: 80, nodePort: 30083 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.168.77.0/28'] }), status: { loadBalancer: { ingress: [{ ip: '10.98.0.1' }] } } },
      { ...service('lb-deny', '10.96.0.14', [{ name: 'http', port: 80, nodePort: 30084 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24'] }), status: { loadBalancer: { ingress: [{ ip: '10.98.0.2' }] } } },
    ],
    slices: (topo) => [slice('lb-ok', http, ips(topo, 0).map(onNode('node-a'))), slice('lb-deny', http, ips(topo, 0).map(onNode('node-a')))],
    check: async (topo) => {
      expectEqual(await topo.fetch(topo.client, '10.98.0.1', 80), 'pod1', 'allowed source');
      const denied = await topo.fetch(topo.client, '10.98.0.2', 80);
      if (!denied.startsWith('error')) throw new Error(`a source outside loadBalancerSourceRanges got through: ${denied}`);
    },
  },
  {
    name: 'session affinity ClientIP sticks to one endpoint',
    services: [service('sticky', '10.96.0.15', http, { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } })],
    slices: (topo) => [slice('sticky', http, ips(topo, 0, 1, 2).map(onNode('node-a')))],
    check: async (topo, spread) => expectEqual((await spread(topo.client, '10.96.0.15', 80, 15)).size, 1, 'distinct endpoints with affinity'),
  },
  {
    name: 'externalTrafficPolicy Local: NodePort goes to local endpoints only',
    services: [service('etp', '10.96.0.16', [{ name: 'http', port: 80, nodePort: 30086 }], { type: 'NodePort', externalTrafficPolicy: 'Local' })],
    slices: (topo) => [slice('etp', http, [{ ip: ips(topo, 0)[0] ?? '', node: 'node-a' }, { ip: ips(topo, 1)[0] ?? '', node: 'node-b' }])],
    check: async (topo, spread) => expectEqual(keys(await spread(topo.client, nodeIP, 30086, 20)), ['pod1'], 'ETP Local'),
  },
  {
    name: 'internalTrafficPolicy Local: the ClusterIP goes to local endpoints only',
    services: [service('itp', '10.96.0.17', http, { internalTrafficPolicy: 'Local' })],
    slices: (topo) => [slice('itp', http, [{ ip: ips(topo, 2)[0] ?? '', node: 'node-a' }, { ip: ips(topo, 0)[0] ?? '', node: 'node-b' }, { ip: ips(topo, 1)[0] ?? '', node: 'node-b' }])],
    check: async (topo, spread) => expectEqual(keys(await spread(topo.client, '10.96.0.17', 80, 20)), ['pod3'], 'ITP Local'),
  },
  {
    name: 'a Service without endpoints is rejected (refused, not a timeout)',
    services: [service('empty', '10.96.0.18', http)],
    slices: () => [],
    check: async (topo) => {
      const body = await topo.fetch(topo.client, '10.96.0.18', 80);
      if (!/error: .*(refused|Couldn't connect)/i.test(body)) throw new Error(`expected a refused connection, got ${body}`);
    },
  },
  {
    name: 'hairpin: a pod reaches itself through its Service',
    services: [service('solo', '10.96.0.19', http)],
    slices: (topo) => [slice('solo', http, ips(topo, 0).map(onNode('node-a')))],
    check: async (topo) => {
      const pod = topo.pods[0];
      if (!pod) throw new Error('no pod');
      expectEqual(await topo.fetch(pod.netns, '10.96.0.19', 80), 'pod1', 'hairpin');
    },
  },
];
