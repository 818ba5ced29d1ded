/**
 * The iptables proxier against the real kernel, inside a test node netns: fixed Services and
 * EndpointSlices go through the tracker, the proxier applies them with iptables-restore (run
 * with `ip netns exec`), and real HTTP/UDP traffic from a client netns checks the result.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { prerequisites } from '../helpers/prereq.js';
import { createLogger } from '../../lib/log.js';
import { ChangeTracker } from '../../proxy/tracker.js';
import { IptablesProxier, cleanupIptables } from '../../proxy/iptables/proxier.js';
import { CommandIptables, detectBackend, type Backend } from '../../lib/netfilter/iptables.js';
import { ConntrackTool } from '../../proxy/conntrack.js';
import { ProxyMetrics } from '../../proxy/metrics.js';
import { serviceChainName } from '../../proxy/iptables/chain-names.js';
import { createTopology, nodeIP, type Topology } from './proxy-topology.js';
import { spread as spreadHits } from './proxy-topology.js';
import { service, slice } from '../unit/proxy-fixtures.js';

const env = await prerequisites('root', 'command:ip', 'command:iptables-nft-restore', 'command:conntrack', 'command:busybox', 'command:curl');

describe.skipIf(env.skip).each(['nft', 'legacy'] as Backend[])('iptables proxier (iptables-%s) in a node netns', (backend) => {
  let topo: Topology;
  let tracker: ChangeTracker;
  let proxier: IptablesProxier;
  let iptables: CommandIptables;
  let prefix: string[];
  const log = createLogger('proxy-test', 'silent');

  const webSlice = (ips: string[]): V1EndpointSlice => slice('web', [{ name: 'http', port: 80 }], ips.map((ip) => ({ ip, node: 'node-a' })));

  beforeAll(async () => {
    topo = await createTopology(3);
    prefix = ['ip', 'netns', 'exec', topo.node.name];
    iptables = new CommandIptables(backend, prefix);
    tracker = new ChangeTracker();
    proxier = new IptablesProxier({
      iptables,
      conntrack: new ConntrackTool(prefix),
      tracker,
      nodeName: 'node-a',
      rules: { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 },
      syncPeriodMs: 3_600_000,
      metrics: new ProxyMetrics(),
      log,
    });
    tracker.upsertService(service('web', '10.96.0.10', [{ name: 'http', port: 80, nodePort: 30080 }], { type: 'NodePort' }));
    tracker.upsertSlice(webSlice(topo.pods.map((pod) => pod.ip)));
    tracker.upsertService(service('sticky', '10.96.0.11', [{ name: 'http', port: 80 }], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } }));
    tracker.upsertSlice(slice('sticky', [{ name: 'http', port: 80 }], topo.pods.map((pod) => ({ ip: pod.ip }))));
    tracker.upsertService(service('empty', '10.96.0.12', [{ name: 'http', port: 80 }]));
    const report = await proxier.sync();
    expect(report.full).toBe(true);
    // with rules in place, detection finds the backend that holds them
    expect(await detectBackend(prefix)).toBe(backend);
  });

  afterAll(async () => {
    await topo?.stop();
  });

  const spread = (from: Topology['client'], host: string, port: number, count: number) => spreadHits(topo, from, host, port, count);

  it('ClusterIP from a client netns reaches all endpoints', async () => {
    const hits = await spread(topo.client, '10.96.0.10', 80, 45);
    expect([...hits.keys()].sort()).toEqual(['pod1', 'pod2', 'pod3']);
    for (const count of hits.values()) expect(count).toBeGreaterThanOrEqual(3);
  });

  it('ClusterIP from the node itself (OUTPUT chain) and NodePort on the node address', async () => {
    expect(['pod1', 'pod2', 'pod3']).toContain(await topo.fetch(topo.node, '10.96.0.10', 80));
    const hits = await spread(topo.client, nodeIP, 30080, 30);
    expect([...hits.keys()].sort()).toEqual(['pod1', 'pod2', 'pod3']);
  });

  it('session affinity sticks to one endpoint', async () => {
    const hits = await spread(topo.client, '10.96.0.11', 80, 15);
    expect(hits.size).toBe(1);
    expect(['pod1', 'pod2', 'pod3']).toContain([...hits.keys()][0]);
  });

  it('a service without endpoints is rejected (connection refused, not a timeout)', async () => {
    const body = await topo.fetch(topo.client, '10.96.0.12', 80);
    expect(body).toMatch(/error: .*(refused|Couldn't connect)/i);
  });

  it('an endpoint removed takes effect at the next (partial) sync', async () => {
    tracker.upsertSlice(webSlice([topo.pods[0]!.ip, topo.pods[1]!.ip]));
    const report = await proxier.sync();
    expect(report.full).toBe(false);
    expect(report.writtenPorts).toBe(1);
    const hits = await spread(topo.client, '10.96.0.10', 80, 30);
    expect([...hits.keys()].sort()).toEqual(['pod1', 'pod2']);
  });

  it('rules deleted by hand come back at the next full sync', async () => {
    const chain = serviceChainName('ns1/web:http', 'TCP');
    await topo.node.exec([`iptables-${iptables.backend}`, '-w', '-t', 'nat', '-F', chain]);
    await topo.node.exec([`iptables-${iptables.backend}`, '-w', '-t', 'nat', '-D', 'PREROUTING', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES']);
    expect(await topo.fetch(topo.client, '10.96.0.10', 80)).toMatch(/^error/);
    proxier.requestFullSync();
    expect((await proxier.sync()).full).toBe(true);
    const hits = await spread(topo.client, '10.96.0.10', 80, 20);
    expect([...hits.keys()].sort()).toEqual(['pod1', 'pod2']);
  });

  it('UDP: conntrack entries to a removed endpoint are deleted', async () => {
    tracker.upsertService(service('dns', '10.96.0.53', [{ name: 'dns', port: 53, protocol: 'UDP' }]));
    tracker.upsertSlice(slice('dns', [{ name: 'dns', port: 5353, protocol: 'UDP' }], [{ ip: topo.pods[2]!.ip }]));
    await proxier.sync();
    await topo.client.exec(['bash', '-c', 'echo ping > /dev/udp/10.96.0.53/53'], { allowFailure: true, timeoutMs: 10_000 });
    const entries = async () => (await topo.node.exec(['conntrack', '-L', '-p', 'udp', '--orig-dst', '10.96.0.53'], { allowFailure: true })).stdout;
    expect(await entries()).toContain(`src=${topo.pods[2]!.ip}`);
    tracker.upsertSlice(slice('dns', [{ name: 'dns', port: 5353, protocol: 'UDP' }], []));
    await proxier.sync();
    expect(await entries()).not.toContain(`src=${topo.pods[2]!.ip}`);
  });

  it('--cleanup removes every chain and jump it created', async () => {
    await cleanupIptables(iptables);
    for (const table of ['nat', 'filter'] as const) expect(await iptables.save(table)).not.toMatch(/KUBE-/);
    expect(await topo.fetch(topo.client, '10.96.0.10', 80)).toMatch(/^error/);
  });
});
