/**
 * The nftables proxier against the kernel, in a test netns (its netlink socket opened there by
 * test/helpers/nft-netns.ts): the ruleset read back with `nft -j list table ip kube-proxy`,
 * partial syncs that send only what changed, drift repaired by the full resync, and a fuzz of
 * random Service sets where a full resync after every partial sync must find nothing to repair
 * (the readback over netlink equals what was sent, rule by rule and element by element).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { prerequisites } from '../helpers/prereq.js';
import { run } from '../../lib/exec.js';
import { createLogger } from '../../lib/log.js';
import { ChangeTracker } from '../../proxy/tracker.js';
import { FakeConntrack } from '../../proxy/conntrack.js';
import { ProxyMetrics } from '../../proxy/metrics.js';
import { NftablesProxier, cleanupNftables } from '../../proxy/nftables/proxier.js';
import { NetnsNft, nft } from '../helpers/nft-netns.js';
import { service, slice } from '../unit/proxy-fixtures.js';

const env = await prerequisites('root', 'command:ip', 'command:nft');
const log = createLogger('nft-test', 'silent');
const rules = { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 };

interface NftJson {
  nftables: { chain?: { name: string }; map?: { name: string; elem?: unknown[] }; set?: { name: string; elem?: unknown[] }; rule?: { chain: string } }[];
}

describe.skipIf(env.skip)('nftables proxier in a netns', () => {
  const ns = `knt-nftpx-${randomBytes(3).toString('hex')}`;
  let transport: NetnsNft;
  let tracker: ChangeTracker;
  let conntrack: FakeConntrack;
  let proxier: NftablesProxier;
  const listJson = async () => JSON.parse(await nft(ns, ['-j', 'list', 'table', 'ip', 'kube-proxy'])) as NftJson;
  const listText = () => nft(ns, ['list', 'table', 'ip', 'kube-proxy']);

  beforeAll(async () => {
    await run(['ip', 'netns', 'add', ns]);
    transport = await NetnsNft.start(ns);
    tracker = new ChangeTracker();
    conntrack = new FakeConntrack();
    proxier = new NftablesProxier({ nft: transport, conntrack, tracker, nodeName: 'node-a', rules, syncPeriodMs: 3_600_000, metrics: new ProxyMetrics(), log });
  });

  afterAll(async () => {
    transport?.close();
    await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  });

  it('writes kube-proxy\'s table, readable with nft -j', async () => {
    tracker.upsertService(service('svc1', '172.30.0.41', [{ name: 'p80', port: 80, nodePort: 30080 }], { type: 'NodePort' }));
    tracker.upsertSlice(slice('svc1', [{ name: 'p80', port: 80 }], [{ ip: '10.180.0.1', node: 'node-a' }, { ip: '10.180.0.2' }]));
    tracker.upsertService(service('dns', '172.30.0.10', [{ name: 'dns', port: 53, protocol: 'UDP' }]));
    tracker.upsertSlice(slice('dns', [{ name: 'dns', port: 53, protocol: 'UDP' }], [{ ip: '10.180.0.3' }]));
    const report = await proxier.sync();
    expect(report.full).toBe(true);
    expect(report.transactions).toBe(1);
    const json = await listJson();
    const chains = json.nftables.flatMap((entry) => (entry.chain ? [entry.chain.name] : []));
    // upstream's own examples (pkg/proxy/nftables/proxier.go): same hash, same names
    expect(chains).toContain('service-ULMVA6XW-ns1/svc1/tcp/p80');
    expect(chains).toContain('endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80');
    expect(chains).toEqual(expect.arrayContaining(['services', 'masquerading', 'mark-for-masquerade', 'nat-prerouting', 'filter-input']));
    const serviceIps = json.nftables.find((entry) => entry.map?.name === 'service-ips')?.map;
    expect(serviceIps?.elem).toHaveLength(2);
    const text = await listText();
    expect(text).toMatch(/numgen random mod 2 0 goto endpoint-5OJB2KTY-ns1\/svc1\/tcp\/p80__10\.180\.0\.1\/80\n\s*goto endpoint-/);
    expect(text).toContain('172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80');
  });

  it('a second full sync finds the kernel equal to the wanted ruleset and sends nothing', async () => {
    proxier.requestFullSync();
    const report = await proxier.sync();
    expect(report.full).toBe(true);
    expect(report.messages).toBe(0);
  });

  it('a partial sync sends only the changed chains and elements', async () => {
    tracker.upsertSlice(slice('svc1', [{ name: 'p80', port: 80 }], [{ ip: '10.180.0.1', node: 'node-a' }, { ip: '10.180.0.2' }, { ip: '10.180.0.9' }]));
    const report = await proxier.sync();
    expect(report.full).toBe(false);
    expect(report.changedPorts).toBe(1);
    // new endpoint chain (add + 2 rules), service chain refilled (flush, masquerade rule, 3 numgen picks)
    expect(report.messages).toBeLessThanOrEqual(8);
    expect(await listText()).toMatch(/numgen random mod 3 0 goto endpoint-[^\n]*\n\s*numgen random mod 2 0 goto endpoint-[^\n]*\n\s*goto endpoint-/);
  });

  it('UDP endpoints removed: conntrack entries to them are cleaned', async () => {
    tracker.upsertSlice(slice('dns', [{ name: 'dns', port: 53, protocol: 'UDP' }], []));
    await proxier.sync();
    expect(conntrack.actions).toContainEqual({ kind: 'nat', serviceIP: '172.30.0.10', endpointIP: '10.180.0.3' });
    expect(await listText()).toMatch(/172\.30\.0\.10 \. udp \. 53 comment "ns1\/dns:dns" : goto reject-chain/);
  });

  it('the full resync repairs drift: flushed chain, deleted element, stray chain, deleted table', async () => {
    const before = await listText();
    await nft(ns, ['flush', 'chain', 'ip', 'kube-proxy', 'service-ULMVA6XW-ns1/svc1/tcp/p80']);
    await nft(ns, ['delete', 'element', 'ip', 'kube-proxy', 'service-nodeports', '{ tcp . 30080 }']);
    await nft(ns, ['add', 'chain', 'ip', 'kube-proxy', 'stray/chain']);
    expect(await listText()).not.toBe(before);
    proxier.requestFullSync();
    const report = await proxier.sync();
    expect(report.messages).toBeGreaterThan(0);
    expect(await listText()).toBe(before);
    await nft(ns, ['delete', 'table', 'ip', 'kube-proxy']);
    proxier.requestFullSync();
    await proxier.sync();
    expect(await listText()).toBe(before);
  });

  it('fuzz: random Service sets; after every partial sync a full resync finds nothing to repair', async () => {
    const random = seeded(0x5eed);
    const names = Array.from({ length: 24 }, (_, i) => `fz${i}`);
    const objects = (name: string, i: number): { svc: V1Service; slices: V1EndpointSlice[] } => {
      const protocol = random.pick(['TCP', 'UDP', 'SCTP'] as const);
      const type = random.pick(['ClusterIP', 'NodePort', 'LoadBalancer'] as const);
      const ports = [{ name: 'p', port: 1 + random.int(65535), protocol, ...(type !== 'ClusterIP' ? { nodePort: 30000 + i * 10 + random.int(10) } : {}) }];
      const spec: Partial<NonNullable<V1Service['spec']>> = { type };
      if (random.int(3) === 0) spec.externalIPs = [`10.97.${i}.${1 + random.int(200)}`];
      if (random.int(3) === 0) Object.assign(spec, { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 1 + random.int(3600) } } });
      if (type !== 'ClusterIP' && random.int(2) === 0) spec.externalTrafficPolicy = 'Local';
      if (random.int(4) === 0) spec.internalTrafficPolicy = 'Local';
      if (type === 'LoadBalancer' && random.int(2) === 0) spec.loadBalancerSourceRanges = [`192.168.${random.int(255)}.0/24`, `10.${random.int(255)}.0.0/${8 + random.int(17)}`];
      const svc = { ...service(name, `10.96.${i}.${1 + random.int(250)}`, ports, spec), ...(type === 'LoadBalancer' ? { status: { loadBalancer: { ingress: [{ ip: `10.98.${i}.1` }] } } } : {}) };
      const endpoints = Array.from({ length: random.int(5) }, (_, e) => ({ ip: `10.244.${i}.${e + 2}`, node: random.pick(['node-a', 'node-b']), ready: random.int(5) !== 0, serving: true, terminating: random.int(4) === 0 }));
      return { svc, slices: [slice(name, [{ name: 'p', port: 1000 + random.int(60000), protocol }], endpoints)] };
    };
    for (let round = 0; round < 12; round++) {
      for (const [i, name] of names.entries()) {
        const roll = random.int(4);
        if (round > 0 && roll > 1) continue;
        if (round > 0 && roll === 1) {
          tracker.deleteService(service(name, '10.96.0.1', []));
          continue;
        }
        const { svc, slices } = objects(name, i);
        tracker.upsertService(svc);
        for (const s of slices) tracker.upsertSlice(s);
      }
      await proxier.sync();
      proxier.requestFullSync();
      const report = await proxier.sync();
      expect(report.messages, `round ${round}`).toBe(0);
    }
    const json = await listJson();
    expect(json.nftables.some((entry) => entry.rule)).toBe(true);
  });

  it('--cleanup deletes the table; a second cleanup finds nothing', async () => {
    expect(await cleanupNftables(transport)).toBe(true);
    expect(await cleanupNftables(transport)).toBe(false);
    await expect(listText()).rejects.toThrow(/No such file|does not exist/);
  });
});

function seeded(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  return {
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
  };
}

describe.skipIf(env.skip)('nftables proxier: a sync larger than one write', () => {
  const ns = `knt-nftbig-${randomBytes(3).toString('hex')}`;
  let transport: NetnsNft;

  beforeAll(async () => {
    await run(['ip', 'netns', 'add', ns]);
    transport = await NetnsNft.start(ns, { maxBatchBytes: 64 * 1024 });
  });

  afterAll(async () => {
    transport?.close();
    await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  });

  it('is cut into transactions at consistent points; the kernel ends equal to the wanted ruleset', async () => {
    const tracker = new ChangeTracker();
    const proxier = new NftablesProxier({ nft: transport, conntrack: new FakeConntrack(), tracker, nodeName: 'node-a', rules, syncPeriodMs: 3_600_000, metrics: new ProxyMetrics(), log });
    // 300 Services × 8 endpoints ≈ 1 MiB of messages; one Service with 300 endpoints (a
    // chain of 300 numgen rules, one unit of ~45 KiB between two cuts)
    for (let i = 0; i < 300; i++) {
      tracker.upsertService(service(`s${i}`, `172.30.${i >> 8}.${i & 255}`, [{ name: 'p', port: 80 }]));
      tracker.upsertSlice(slice(`s${i}`, [{ name: 'p', port: 80 }], Array.from({ length: i === 7 ? 300 : 8 }, (_, e) => ({ ip: `10.180.${e >> 8}.${(e & 255) + (i === 7 ? 0 : i % 200)}` }))));
    }
    const report = await proxier.sync();
    expect(report.full).toBe(true);
    expect(report.transactions).toBeGreaterThan(10);
    const text = await nft(ns, ['list', 'table', 'ip', 'kube-proxy']);
    expect(text.match(/numgen random mod \d+ 0 goto endpoint-/g)?.length).toBe(299 * 7 + 299);
    proxier.requestFullSync();
    expect((await proxier.sync()).messages).toBe(0);
    await cleanupNftables(transport);
  });
});

describe.skipIf(env.skip)('nftables proxier with nodePortAddresses', () => {
  const ns = `knt-nftnp-${randomBytes(3).toString('hex')}`;
  let transport: NetnsNft;

  beforeAll(async () => {
    await run(['ip', 'netns', 'add', ns]);
    transport = await NetnsNft.start(ns);
  });

  afterAll(async () => {
    transport?.close();
    await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  });

  it('NodePorts answer only on @nodeport-ips, which follows the node\'s addresses', async () => {
    const tracker = new ChangeTracker();
    let nodeIPs = ['192.168.7.2', '10.0.0.5'];
    const proxier = new NftablesProxier({
      nft: transport, conntrack: new FakeConntrack(), tracker, nodeName: 'node-a', rules: { ...rules, nodePortIPsOnly: true },
      nodePortIPs: () => nodeIPs, syncPeriodMs: 3_600_000, metrics: new ProxyMetrics(), log,
    });
    tracker.upsertService(service('web', '172.30.0.50', [{ name: 'http', port: 80, nodePort: 30090 }], { type: 'NodePort' }));
    tracker.upsertSlice(slice('web', [{ name: 'http', port: 80 }], [{ ip: '10.180.0.7', node: 'node-a' }]));
    await proxier.sync();
    let text = await nft(ns, ['list', 'table', 'ip', 'kube-proxy']);
    expect(text).toContain('ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports');
    expect(text).toContain('ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports');
    expect(text).not.toContain('fib daddr type local');
    expect(await nft(ns, ['list', 'set', 'ip', 'kube-proxy', 'nodeport-ips'])).toMatch(/elements = \{ (10\.0\.0\.5, 192\.168\.7\.2|192\.168\.7\.2, 10\.0\.0\.5) \}/);
    nodeIPs = ['10.0.0.5'];
    const partial = await proxier.sync();
    expect(partial.full).toBe(false);
    expect(partial.messages).toBe(1);
    text = await nft(ns, ['list', 'set', 'ip', 'kube-proxy', 'nodeport-ips']);
    expect(text).toContain('elements = { 10.0.0.5 }');
    proxier.requestFullSync();
    expect((await proxier.sync()).messages).toBe(0);
    await cleanupNftables(transport);
  });
});
