/**
 * The packet-level cases of ./proxy-packet-cases.ts against each proxy mode, in a node netns
 * (proxy-topology): the iptables proxier (iptables-legacy, run with `ip netns exec`) and the
 * nftables proxier (netlink, its socket opened in the node netns by test/helpers/nft-netns.ts).
 * All cases are programmed at once (one full sync), then each is checked with real traffic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { createLogger } from '../../lib/log.js';
import { ChangeTracker } from '../../proxy/tracker.js';
import { IptablesProxier, cleanupIptables } from '../../proxy/iptables/proxier.js';
import { CommandIptables } from '../../lib/netfilter/iptables.js';
import { NftablesProxier, cleanupNftables } from '../../proxy/nftables/proxier.js';
import { ConntrackTool } from '../../proxy/conntrack.js';
import { ProxyMetrics } from '../../proxy/metrics.js';
import { NetnsNft } from '../helpers/nft-netns.js';
import { createTopology, type Topology } from './proxy-topology.js';
import { spread as spreadHits } from './proxy-topology.js';
import { packetCases } from './proxy-packet-cases.js';

const env = await prerequisites('root', 'command:ip', 'command:iptables-legacy-restore', 'command:nft', 'command:conntrack', 'command:busybox', 'command:curl');

interface Mode {
  sync(): Promise<unknown>;
  cleanup(): Promise<void>;
  close(): void;
}

const rules = { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 };
const log = createLogger('proxy-modes-test', 'silent');

async function startMode(mode: 'iptables' | 'nftables', topo: Topology, tracker: ChangeTracker): Promise<Mode> {
  const prefix = ['ip', 'netns', 'exec', topo.node.name];
  const common = { conntrack: new ConntrackTool(prefix), tracker, nodeName: 'node-a', syncPeriodMs: 3_600_000, metrics: new ProxyMetrics(), log };
  if (mode === 'iptables') {
    const iptables = new CommandIptables('legacy', prefix);
    const proxier = new IptablesProxier({ ...common, iptables, rules });
    return { sync: () => proxier.sync(), cleanup: () => cleanupIptables(iptables), close: () => undefined };
  }
  const nft = await NetnsNft.start(topo.node.name);
  const proxier = new NftablesProxier({ ...common, nft, rules });
  return { sync: () => proxier.sync(), cleanup: async () => void (await cleanupNftables(nft)), close: () => nft.close() };
}

describe.skipIf(env.skip).each(['iptables', 'nftables'] as const)('%s mode: packet-level cases', (modeName) => {
  let topo: Topology;
  let mode: Mode;

  beforeAll(async () => {
    topo = await createTopology(3);
    const tracker = new ChangeTracker();
    for (const c of packetCases) {
      for (const svc of c.services) tracker.upsertService(svc);
      for (const s of c.slices(topo)) tracker.upsertSlice(s);
    }
    mode = await startMode(modeName, topo, tracker);
    await mode.sync();
  });

  afterAll(async () => {
    mode?.close();
    await topo?.stop();
  });

  const spread = (from: Topology['client'], host: string, port: number, count: number) => spreadHits(topo, from, host, port, count);

  it.each(packetCases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await c.check(topo, spread);
  });

  it('cleanup removes what the mode made; the ClusterIP stops answering', async () => {
    await mode.cleanup();
    expect(await topo.fetch(topo.client, '10.96.0.10', 80)).toMatch(/^error/);
  });
});
