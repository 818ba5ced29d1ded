/**
 * `knode proxy` as a process inside a test node netns, against the real control-plane stub
 * (reached through the loopback bridge): Services and EndpointSlices created through the API
 * become rules, traffic from a client netns checks them, and the proxy's HTTP endpoints, UDP
 * conntrack cleanup, self-healing of hand-deleted rules, bad input and SIGTERM are exercised.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, DiscoveryV1Api, KubeConfig, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import { prerequisites } from '../helpers/prereq.js';
import { startTestControlPlane, type TestControlPlane } from '../helpers/controlplane.js';
import { bridgeLoopbackInto, type LoopbackBridge } from '../helpers/loopback-bridge.js';
import { createTopology, eventually, nodeIP, type Topology } from './proxy-topology.js';
import { service, slice } from '../unit/proxy-fixtures.js';
import { serviceChainName } from '../../proxy/iptables/chain-names.js';
import { ipvsRestorePayload, ipvsSetNames } from '../../proxy/ipvs/rules.js';

const env = await prerequisites('root', 'command:ip', 'command:iptables-nft-restore', 'command:conntrack', 'command:busybox', 'command:curl', 'command:ipset');
const repo = join(import.meta.dirname, '..', '..');
const ns = 'default';

describe.skipIf(env.skip)('knode proxy daemon (iptables mode) in a node netns', () => {
  let cp: TestControlPlane;
  let topo: Topology;
  let bridge: LoopbackBridge;
  let proxy: ChildProcess;
  let output = '';
  let exited: Promise<number | null>;
  let dir: string;
  let core: CoreV1Api;
  let discovery: DiscoveryV1Api;

  const createService = (s: V1Service) => core.createNamespacedService({ namespace: ns, body: { ...s, metadata: { ...s.metadata, namespace: ns } } });
  const putSlice = async (s: V1EndpointSlice) => {
    const body = { ...s, metadata: { ...s.metadata, namespace: ns } };
    try {
      const current = await discovery.readNamespacedEndpointSlice({ namespace: ns, name: s.metadata!.name! });
      await discovery.replaceNamespacedEndpointSlice({ namespace: ns, name: s.metadata!.name!, body: { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata?.resourceVersion } } });
    } catch {
      await discovery.createNamespacedEndpointSlice({ namespace: ns, body });
    }
  };
  const iptablesSave = async () => (await topo.node.exec(['iptables-save', '-t', 'nat'])).stdout + (await topo.node.exec(['iptables-legacy-save', '-t', 'nat'], { allowFailure: true })).stdout;

  async function bodies(host: string, port: number, count: number): Promise<Map<string, number>> {
    const hits = new Map<string, number>();
    for (let i = 0; i < count; i++) {
      const body = await topo.fetch(topo.client, host, port);
      hits.set(body, (hits.get(body) ?? 0) + 1);
    }
    return hits;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'knode-proxy-daemon-'));
    cp = await startTestControlPlane({ controllers: false });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    discovery = kc.makeApiClient(DiscoveryV1Api);
    topo = await createTopology(3);
    bridge = await bridgeLoopbackInto(topo.node.name, cp.port);
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:${bridge.port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user: {}\ncurrent-context: c\n`);
    const config = join(dir, 'kube-proxy.yaml');
    writeFileSync(config, `apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16\nhealthzBindAddress: 0.0.0.0:10256\nmetricsBindAddress: 127.0.0.1:10249\niptables:\n  minSyncPeriod: 1s\n  syncPeriod: 5s\n`);

    await createService(service('web', '10.96.0.10', [{ name: 'http', port: 80, nodePort: 30080 }], { type: 'NodePort' }));
    await putSlice(slice('web', [{ name: 'http', port: 80 }], topo.pods.map((pod) => ({ ip: pod.ip, node: 'node-a' }))));
    await createService(service('sticky', '10.96.0.11', [{ name: 'http', port: 80 }], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } }));
    await putSlice(slice('sticky', [{ name: 'http', port: 80 }], topo.pods.map((pod) => ({ ip: pod.ip }))));

    // Leftovers of an earlier IPVS-mode run in the node netns (the mode switch test below): its
    // sets, its fixed iptables rules (which reference the sets) and kube-ipvs0 — a veth named so,
    // since this kernel has no dummy module; it is found and deleted by name like the dummy.
    await topo.node.exec(['ip', 'link', 'add', 'kube-ipvs0', 'type', 'veth', 'peer', 'name', 'knt-ipvs0peer']);
    await topo.node.exec(['ip', 'addr', 'add', '10.96.0.99/32', 'dev', 'kube-ipvs0']);
    await topo.node.exec(['ipset', 'restore'], { input: ipvsSetNames.map((name) => `create ${name} ${name.includes('NODE-PORT') ? 'bitmap:port range 0-65535' : name === 'KUBE-LOOP-BACK' ? 'hash:ip,port,ip' : 'hash:ip,port'}\n`).join('') + 'add KUBE-CLUSTER-IP 10.96.0.99,tcp:80\n' });
    await topo.node.exec(['iptables-nft-restore', '--noflush'], { input: ipvsRestorePayload({ clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, masqueradeBit: 14 }) });
    await topo.node.exec(['iptables-nft', '-t', 'nat', '-I', 'PREROUTING', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES']);

    proxy = spawn('ip', ['netns', 'exec', topo.node.name, process.execPath, join(repo, 'bin', 'knode'), 'proxy', '--kubeconfig', kubeconfig, '--config', config, '--hostname-override', 'node-a', '--log-level', 'debug'], { stdio: ['ignore', 'pipe', 'pipe'] });
    proxy.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    proxy.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-200_000)));
    exited = new Promise((resolve) => proxy.once('exit', (code) => resolve(code)));
    await eventually(async () => (await topo.fetch(topo.client, '10.96.0.10', 80)).startsWith('pod'), 30_000, `the proxy to program web (output: ${output.slice(-2000)})`);
  });

  afterAll(async () => {
    proxy?.kill('SIGKILL');
    await bridge?.stop();
    await topo?.stop();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('mode switch: the IPVS-mode leftovers (kube-ipvs0, ipsets, KUBE-NODE-PORT) were removed at start', async () => {
    expect((await topo.node.exec(['ip', 'link', 'show', 'kube-ipvs0'], { allowFailure: true })).code).not.toBe(0);
    expect((await topo.node.exec(['ip', 'link', 'show', 'knt-ipvs0peer'], { allowFailure: true })).code).not.toBe(0);
    expect((await topo.node.exec(['ipset', 'list', '-n'])).stdout.trim()).toBe('');
    const nat = await iptablesSave();
    expect(nat).not.toMatch(/KUBE-NODE-PORT\b|match-set/);
    expect(nat).toMatch(/^:KUBE-SVC-/m);
    expect(output).toContain('removing the IPVS-mode leftovers');
  });

  it('loadBalancerSourceRanges: the LB IP answers sources in the ranges only; the cluster IP is not restricted', async () => {
    await topo.client.addRoute('203.0.113.40/32', { gateway: nodeIP });
    const lb = (ranges: string[]) => service('lb', '10.96.0.40', [{ name: 'http', port: 80 }], { type: 'LoadBalancer', loadBalancerSourceRanges: ranges });
    const created = await createService(lb(['192.168.77.0/24']));
    await core.replaceNamespacedServiceStatus({ namespace: ns, name: 'lb', body: { ...created, status: { loadBalancer: { ingress: [{ ip: '203.0.113.40' }] } } } });
    await putSlice(slice('lb', [{ name: 'http', port: 80 }], topo.pods.slice(0, 2).map((pod) => ({ ip: pod.ip }))));
    await eventually(async () => (await topo.fetch(topo.client, '203.0.113.40', 80)).startsWith('pod'), 15_000, 'the LB IP to answer the client (in range)');
    expect([...(await bodies('203.0.113.40', 80, 12)).keys()].sort()).toEqual(['pod1', 'pod2']);
    // the client (192.168.77.2) is now outside the only range
    const current = await core.readNamespacedService({ namespace: ns, name: 'lb' });
    await core.replaceNamespacedService({ namespace: ns, name: 'lb', body: { ...current, spec: { ...current.spec!, loadBalancerSourceRanges: ['198.51.100.0/24'] } } });
    await eventually(async () => (await topo.fetch(topo.client, '203.0.113.40', 80)).startsWith('error'), 15_000, 'the LB IP to refuse the client (out of range)');
    const filter = (await topo.node.exec(['iptables-save', '-t', 'filter'])).stdout;
    expect(filter).toMatch(/-A KUBE-PROXY-FIREWALL .*-d 203\.0\.113\.40\/32 .*--dport 80 -j DROP/);
    expect((await topo.node.exec(['iptables-save', '-t', 'nat'])).stdout).toMatch(/-A KUBE-FW-\S+ .*-s 198\.51\.100\.0\/24 .*-j KUBE-EXT-/);
    for (let i = 0; i < 3; i++) expect(await topo.fetch(topo.client, '203.0.113.40', 80)).toMatch(/^error/);
    expect(await topo.fetch(topo.client, '10.96.0.40', 80)).toMatch(/^pod[12]$/);
  }, 60_000);

  it('ClusterIP and NodePort reach every endpoint', async () => {
    const cluster = await bodies('10.96.0.10', 80, 45);
    expect([...cluster.keys()].sort()).toEqual(['pod1', 'pod2', 'pod3']);
    for (const count of cluster.values()) expect(count).toBeGreaterThanOrEqual(3);
    const nodePort = await bodies(nodeIP, 30080, 30);
    expect([...nodePort.keys()].sort()).toEqual(['pod1', 'pod2', 'pod3']);
  });

  it('session affinity sticks', async () => {
    await eventually(async () => (await topo.fetch(topo.client, '10.96.0.11', 80)).startsWith('pod'), 10_000, 'sticky');
    expect((await bodies('10.96.0.11', 80, 12)).size).toBe(1);
  });

  it('an endpoint removed through the API stops receiving traffic within minSyncPeriod + a little', async () => {
    // The rules are the signal (web's DNAT to pod3 gone; sticky keeps its own): 10 requests that
    // miss pod3 by chance ((2/3)^10) are not.
    const webToPod3 = (line: string) => line.includes('/web:http') && line.includes(`--to-destination ${topo.pods[2]!.ip}:80`);
    expect((await iptablesSave()).split('\n').some(webToPod3)).toBe(true);
    await putSlice(slice('web', [{ name: 'http', port: 80 }], topo.pods.slice(0, 2).map((pod) => ({ ip: pod.ip, node: 'node-a' }))));
    const changed = Date.now();
    await eventually(async () => !(await iptablesSave()).split('\n').some(webToPod3) && !(await bodies('10.96.0.10', 80, 10)).has('pod3'), 8_000, 'pod3 to leave web');
    expect(Date.now() - changed).toBeLessThan(8_000);
    expect([...(await bodies('10.96.0.10', 80, 20)).keys()].sort()).toEqual(['pod1', 'pod2']);
  });

  it('rules deleted by hand come back at the next full sync (syncPeriod 5 s)', async () => {
    // a service chain is only rewritten by a full sync (or a change of that service)
    await topo.node.exec(['iptables', '-w', '-t', 'nat', '-F', serviceChainName('default/web:http', 'TCP')]);
    expect(await topo.fetch(topo.client, '10.96.0.10', 80)).toMatch(/^error/);
    await eventually(async () => (await topo.fetch(topo.client, '10.96.0.10', 80)).startsWith('pod'), 15_000, 'rules to come back');
  });

  it('UDP conntrack entries of a removed endpoint are deleted', async () => {
    await createService(service('dns', '10.96.0.53', [{ name: 'dns', port: 53, protocol: 'UDP' }]));
    await putSlice(slice('dns', [{ name: 'dns', port: 5353, protocol: 'UDP' }], [{ ip: topo.pods[2]!.ip }]));
    const entries = async () => (await topo.node.exec(['conntrack', '-L', '-p', 'udp', '--orig-dst', '10.96.0.53'], { allowFailure: true })).stdout;
    await eventually(async () => {
      await topo.client.exec(['bash', '-c', 'echo ping > /dev/udp/10.96.0.53/53'], { allowFailure: true });
      return (await entries()).includes(`src=${topo.pods[2]!.ip}`);
    }, 10_000, 'a UDP conntrack entry NATed to pod3');
    await putSlice(slice('dns', [{ name: 'dns', port: 5353, protocol: 'UDP' }], []));
    await eventually(async () => !(await entries()).includes(`src=${topo.pods[2]!.ip}`), 8_000, 'the stale UDP entry to be deleted');
  });

  it('healthz, livez, metrics and the health check node port of a Local service', async () => {
    const get = async (url: string) => (await topo.node.exec(['curl', '-s', '-w', '\\n%{http_code}', '--max-time', '3', url], { allowFailure: true })).stdout;
    expect(await get('http://127.0.0.1:10256/healthz')).toMatch(/"lastUpdated":"20.*\n200$/s);
    expect(await get('http://127.0.0.1:10256/livez')).toMatch(/200$/);
    const metrics = await get('http://127.0.0.1:10249/metrics');
    for (const name of ['kubeproxy_sync_proxy_rules_duration_seconds', 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', 'kubeproxy_network_programming_duration_seconds']) expect(metrics).toContain(name);
    expect(metrics).toMatch(/kubeproxy_sync_proxy_rules_total\{kind="partial",result="success"\} [1-9]/);
    expect(metrics).toMatch(/kubeproxy_sync_proxy_rules_total\{kind="full",result="success"\} [1-9]/);
    await createService(service('local', '10.96.0.20', [{ name: 'http', port: 80, nodePort: 30081 }], { type: 'NodePort', externalTrafficPolicy: 'Local', healthCheckNodePort: 32100 }));
    await putSlice(slice('local', [{ name: 'http', port: 80 }], [{ ip: topo.pods[0]!.ip, node: 'node-a' }, { ip: topo.pods[1]!.ip, node: 'node-b' }]));
    await eventually(async () => /"localEndpoints":1.*\n200$/s.test(await get('http://127.0.0.1:32100/')), 10_000, 'health check node port 32100');
    const viaNodePort = await bodies(nodeIP, 30081, 10);
    expect([...viaNodePort.keys()]).toEqual(['pod1']);
  });

  it('bad input (slice without service, IPv6-only service, 1,000 churning services): keeps running and programming', async () => {
    await putSlice(slice('ghost', [{ name: 'http', port: 80 }], [{ ip: topo.pods[0]!.ip }]));
    await createService(service('v6', 'fd00::10', [{ port: 80 }], { ipFamilies: ['IPv6'] })).catch(() => undefined);
    const churn = async (i: number) => {
      const s = service(`churn-${i}`, `10.97.${i >> 8}.${i & 255}`, [{ port: 80 }]);
      await createService(s);
      if (i % 2 === 0) await core.deleteNamespacedService({ namespace: ns, name: `churn-${i}` });
    };
    for (let i = 0; i < 1000; i += 25) await Promise.all(Array.from({ length: 25 }, (_, k) => churn(i + k)));
    await putSlice(slice('web', [{ name: 'http', port: 80 }], topo.pods.map((pod) => ({ ip: pod.ip, node: 'node-a' }))));
    await eventually(async () => (await bodies('10.96.0.10', 80, 15)).has('pod3'), 30_000, 'web to get pod3 back during churn');
    expect(proxy.exitCode).toBeNull();
    const filterSave = async () => (await topo.node.exec(['iptables-save', '-t', 'filter'])).stdout;
    await eventually(async () => (await filterSave()).includes('"default/churn-999 has no endpoints"'), 30_000, 'the last churned service to be programmed');
    const filter = await filterSave();
    expect(filter).toContain('default/churn-1 has no endpoints');
    expect(filter).not.toContain('default/churn-2 has no endpoints');
    expect(await iptablesSave()).not.toContain('default/ghost');
    expect(await topo.fetch(topo.client, '10.96.0.11', 80)).toMatch(/^pod/);
  }, 120_000);

  it('SIGTERM stops it cleanly; --cleanup removes every rule', async () => {
    proxy.kill('SIGTERM');
    expect(await exited).toBe(0);
    const cleanup = await topo.node.exec([process.execPath, join(repo, 'bin', 'knode'), 'proxy', '--cleanup'], { allowFailure: true });
    expect(cleanup.code, cleanup.stderr).toBe(0);
    expect(await iptablesSave()).not.toMatch(/KUBE-/);
    expect((await topo.node.exec(['iptables-save', '-t', 'filter'])).stdout).not.toMatch(/KUBE-/);
  });
});
