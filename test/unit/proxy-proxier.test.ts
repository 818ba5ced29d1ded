import { describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { ChangeTracker } from '../../proxy/tracker.js';
import { IptablesProxier } from '../../proxy/iptables/proxier.js';
import { jumpRules } from '../../proxy/iptables/rules.js';
import { FakeIptables } from '../helpers/fake-iptables.js';
import { FakeConntrack, staleConntrack, conntrackArgs } from '../../proxy/conntrack.js';
import { ProxyMetrics } from '../../proxy/metrics.js';
import { ProxyHealth } from '../../proxy/health.js';
import { ipvsKernelSupport, ipvsStartError } from '../../proxy/ipvs-check.js';
import { buildProxyModel } from '../../proxy/model.js';
import { serviceChainName } from '../../proxy/iptables/chain-names.js';
import { service, slice } from './proxy-fixtures.js';

function setup() {
  let now = 1_000_000;
  const iptables = new FakeIptables();
  const conntrack = new FakeConntrack();
  const tracker = new ChangeTracker(() => now);
  const metrics = new ProxyMetrics();
  const proxier = new IptablesProxier({
    iptables, conntrack, tracker, metrics, nodeName: 'a', syncPeriodMs: 30_000, now: () => now,
    rules: { clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 },
    log: createLogger('test', 'silent'),
  });
  return { iptables, conntrack, tracker, metrics, proxier, advance: (ms: number) => (now += ms) };
}

describe('iptables proxier (fake iptables)', () => {
  it('full sync first, partial syncs for changes, full again after syncPeriod and after a failure', async () => {
    const { iptables, tracker, proxier, advance, metrics } = setup();
    tracker.upsertService(service('a', '10.96.0.1', [{ port: 80 }]));
    tracker.upsertService(service('b', '10.96.0.2', [{ port: 80 }]));
    tracker.upsertSlice(slice('a', [{ port: 80 }], [{ ip: '10.244.0.1' }]));
    expect(await proxier.sync()).toMatchObject({ full: true, writtenPorts: 2 });
    // The jump rules from the built-in chains ride in the first full restore.
    const first = iptables.payloads[0]!;
    expect(first.split('\n').filter((line) => line.startsWith('-I '))).toHaveLength(jumpRules.length);
    expect(first).toContain('\n-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n');
    expect(iptables.jumps.size).toBe(0);
    advance(1000);
    expect(await proxier.sync()).toMatchObject({ full: false, writtenPorts: 0, payloadLines: 0 });
    expect(iptables.payloads).toHaveLength(1);
    tracker.upsertSlice(slice('b', [{ port: 80 }], [{ ip: '10.244.0.2' }]));
    expect(await proxier.sync()).toMatchObject({ full: false, writtenPorts: 1 });
    const partial = iptables.payloads.at(-1)!;
    expect(partial).toContain(`:${serviceChainName('ns1/b', 'TCP')} `);
    expect(partial).not.toContain(`:${serviceChainName('ns1/a', 'TCP')} `);
    tracker.upsertSlice(slice('b', [{ port: 80 }], [{ ip: '10.244.0.3' }]));
    iptables.failNext = true;
    await expect(proxier.sync()).rejects.toThrow(/partial iptables sync failed/);
    expect(await proxier.sync()).toMatchObject({ full: true, writtenPorts: 2 });
    advance(30_000);
    expect(await proxier.sync()).toMatchObject({ full: true });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/kubeproxy_sync_proxy_rules_total\{kind="partial",result="failure"\} 1/);
    expect(text).toMatch(/kubeproxy_sync_proxy_rules_total\{kind="full",result="success"\} 3/);
    expect(text).toMatch(/kubeproxy_network_programming_duration_seconds_count \d+/);
  });

  it('stale chains found in the kernel are deleted at a full sync', async () => {
    const { iptables, tracker, proxier } = setup();
    iptables.natSave = '*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:OTHER - [0:0]\nCOMMIT\n';
    tracker.upsertService(service('a', '10.96.0.1', [{ port: 80 }]));
    await proxier.sync();
    expect(iptables.payloads[0]).toContain('-X KUBE-SVC-AAAAAAAAAAAAAAAA');
    expect(iptables.payloads[0]).not.toContain('-X OTHER');
  });

  it('bad input and 1,000 churning services: syncs keep succeeding with the valid ones', async () => {
    const { iptables, tracker, proxier } = setup();
    tracker.upsertService(service('bad', '10.96.0.999', [{ port: 80 }]));
    tracker.upsertService(service('good', '10.96.0.5', [{ port: 80 }]));
    tracker.upsertSlice(slice('ghost', [{ port: 80 }], [{ ip: '10.244.0.1' }]));
    tracker.upsertSlice(slice('good', [{ port: 80 }], [{ ip: '10.244.0.7' }]));
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 1000; i++) {
        const svc = service(`churn-${i}`, `10.97.${i >> 8}.${i & 255}`, [{ port: 80 + round }]);
        if ((i + round) % 3 === 0) tracker.deleteService(svc);
        else tracker.upsertService(svc);
      }
      const report = await proxier.sync();
      expect(report.skipped).toBeGreaterThan(0);
    }
    expect(iptables.payloads.at(-1)).toContain('"ns1/good cluster IP"');
    expect(iptables.payloads.at(-1)).toContain('-X KUBE-SVC-'); // deleted churned services' chains go away
  });
});

describe('UDP conntrack cleanup decisions (kubernetes #19029, #48370)', () => {
  const dns = (ips: string[], extra = {}) => buildProxyModel([service('dns', '10.96.0.53', [{ port: 53, protocol: 'UDP', nodePort: 30053 }], { type: 'NodePort', ...extra })], [slice('dns', [{ port: 53, protocol: 'UDP' }], ips.map((ip) => ({ ip })))], 'n');
  const byName = (model: ReturnType<typeof dns>) => new Map(model.ports.map((port) => [port.name, port]));

  it('an endpoint going away deletes the entries NATed to it', () => {
    const actions = staleConntrack(byName(dns(['10.244.0.1', '10.244.0.2'])), byName(dns(['10.244.0.2'])));
    expect(actions).toEqual([
      { kind: 'nat', serviceIP: '10.96.0.53', endpointIP: '10.244.0.1' },
      { kind: 'nodeport-nat', nodePort: 30053, endpointIP: '10.244.0.1' },
    ]);
    expect(conntrackArgs(actions[0]!)).toEqual(['-D', '-p', 'udp', '--orig-dst', '10.96.0.53', '--dst-nat', '10.244.0.1']);
  });

  it('a service getting its first endpoint clears un-NATed entries; TCP is left alone', () => {
    expect(staleConntrack(byName(dns([])), byName(dns(['10.244.0.1'])))).toEqual([
      { kind: 'service-ip', serviceIP: '10.96.0.53' },
      { kind: 'nodeport', nodePort: 30053 },
    ]);
    const tcp = (ips: string[]) => byName(buildProxyModel([service('w', '10.96.0.1', [{ port: 80 }])], [slice('w', [{ port: 80 }], ips.map((ip) => ({ ip })))], 'n'));
    expect(staleConntrack(tcp(['10.244.0.1']), tcp([]))).toEqual([]);
    expect(staleConntrack(byName(dns(['10.244.0.1'])), byName(dns(['10.244.0.1'])))).toEqual([]);
  });
});

describe('healthz and ipvs check', () => {
  it('healthz: unhealthy before the first sync and when a change waits longer than the timeout', () => {
    let now = 0;
    const health = new ProxyHealth(60_000, () => now);
    expect(health.healthy()).toBe(false);
    health.updated();
    expect(health.healthy()).toBe(true);
    health.queued();
    now += 59_000;
    expect(health.healthy()).toBe(true);
    now += 2_000;
    expect(health.healthy()).toBe(false);
    health.updated();
    expect(health.healthy()).toBe(true);
  });

  it('ipvs mode without kernel IPVS fails with a clear message', () => {
    const support = ipvsKernelSupport('/nonexistent/ip_vs', '/nonexistent/module');
    expect(support.kernel).toBe(false);
    expect(ipvsStartError(support).message).toMatch(/--proxy-mode ipvs cannot start: this kernel has no IPVS.*use --proxy-mode iptables/);
  });
});

describe('hasJump (reading jumps back from iptables-save)', () => {
  it('finds a jump as iptables-save prints it, and not a different one', async () => {
    const { hasJump } = await import('../../proxy/iptables/proxier.js');
    const { jumpRules } = await import('../../proxy/iptables/rules.js');
    const save = '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\nCOMMIT\n';
    const prerouting = jumpRules.find((rule) => rule.chain === 'PREROUTING')!;
    const output = jumpRules.find((rule) => rule.table === 'nat' && rule.chain === 'OUTPUT')!;
    expect(hasJump(save, prerouting)).toBe(true);
    expect(hasJump(save, output)).toBe(false);
  });
});
