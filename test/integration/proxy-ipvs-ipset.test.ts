/**
 * The IPVS proxier's ipset sync (proxy/ipvs/ipset.ts through CommandIpvsHost.syncSets) against
 * the real ipset of this kernel, inside a test netns (ipsets are per network namespace): sets
 * are created, entries change by difference only, a no-change sync writes nothing, and an
 * entry added by hand to a knode set is removed again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandIpvsHost, type IpSetSpec } from '../../proxy/ipvs/host.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'command:ip', 'command:ipset');

describe.skipIf(env.skip)('IPVS ipset sync by difference (real ipset, test netns)', () => {
  const network = new TestNetwork();
  let node: Netns;
  let host: CommandIpvsHost;
  const list = async (name: string) => (await node.exec(['ipset', 'list', name])).stdout.split('Members:\n')[1]!.trim().split('\n').filter(Boolean).sort();
  const sets = (cluster: string[], nodePorts: string[]): IpSetSpec[] => [
    { name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port', entries: cluster },
    { name: 'KUBE-LOOP-BACK', type: 'hash:ip,port,ip', entries: ['10.244.0.2,tcp:8080,10.244.0.2'] },
    { name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port', entries: nodePorts },
  ];

  beforeAll(async () => {
    node = await network.node('ipset');
    host = new CommandIpvsHost(['ip', 'netns', 'exec', node.name]);
  });
  afterAll(() => network.cleanup());

  it('creates the sets and fills them', async () => {
    await host.syncSets(sets(['10.96.0.1,tcp:443', '10.96.0.10,tcp:80'], ['30080']));
    expect(await list('KUBE-CLUSTER-IP')).toEqual(['10.96.0.1,tcp:443', '10.96.0.10,tcp:80']);
    expect(await list('KUBE-LOOP-BACK')).toEqual(['10.244.0.2,tcp:8080,10.244.0.2']);
    expect(await list('KUBE-NODE-PORT-TCP')).toEqual(['30080']);
  });

  it('the kernel spells entries as knode does: a no-change sync has nothing to write', async () => {
    const saved = (await node.exec(['ipset', 'save'])).stdout;
    const { ipsetSyncScript, parseIpsetSave } = await import('../../proxy/ipvs/ipset.js');
    expect(ipsetSyncScript(parseIpsetSave(saved), sets(['10.96.0.1,tcp:443', '10.96.0.10,tcp:80'], ['30080']))).toBe('');
  });

  it('changes only the difference and removes a hand-added entry', async () => {
    await node.exec(['ipset', 'add', 'KUBE-CLUSTER-IP', '10.96.0.99,udp:53']);
    await host.syncSets(sets(['10.96.0.1,tcp:443', '10.96.0.20,tcp:8443'], ['30080', '30443']));
    expect(await list('KUBE-CLUSTER-IP')).toEqual(['10.96.0.1,tcp:443', '10.96.0.20,tcp:8443']);
    expect(await list('KUBE-NODE-PORT-TCP')).toEqual(['30080', '30443']);
    await host.cleanup(sets([], []).map((set) => set.name));
    expect((await node.exec(['ipset', 'list', '-n'])).stdout.trim()).toBe('');
  });
});
