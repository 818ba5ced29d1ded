/**
 * kube-proxy's conntrack section and the start-up warning, through the real `knode proxy` in a
 * test node netns: the conntrack timeouts are set in that netns only (the root netns keeps its
 * own values: /proc/sys/net/netfilter is per network namespace), nf_conntrack_max is read-only
 * outside the initial netns (a warning, nothing fails), route_localnet is set there for
 * localhostNodePorts, and the one warning names the
 * not-implemented settings the config sets; ipvs.strictARP sets arp_ignore/arp_announce there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites('root', 'command:ip', 'command:iptables-nft');
const repo = join(import.meta.dirname, '..', '..');
const sysctl = (name: string) => `/proc/sys/net/netfilter/${name}`;

describe.skipIf(env.skip)('knode proxy: conntrack sysctls in its own netns', () => {
  const net = new TestNetwork();
  let node: Netns;
  let dir: string;
  let proxy: ChildProcess | undefined;
  let log = '';

  beforeAll(async () => {
    node = await net.node('pxct');
    dir = mkdtempSync(join(tmpdir(), 'knode-proxy-ct-'));
    const kubeconfig = join(dir, 'kubeconfig');
    // Nothing listens there: the proxy keeps retrying the API after its start-up steps.
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user: {}\ncurrent-context: c\n');
    const config = join(dir, 'kube-proxy.yaml');
    writeFileSync(
      config,
      [
        'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
        'kind: KubeProxyConfiguration',
        'conntrack: {maxPerCore: 65536, min: 1, tcpEstablishedTimeout: 7321s, tcpCloseWaitTimeout: 1234s, udpTimeout: 41s, udpStreamTimeout: 151s}',
        'ipvs: {tcpTimeout: 5s}',
        'detectLocalMode: BridgeInterface',
        'healthzBindAddress: 127.0.0.1:0',
        'metricsBindAddress: 127.0.0.1:0',
        '',
      ].join('\n'),
    );
    proxy = spawn('ip', ['netns', 'exec', node.name, process.execPath, join(repo, 'bin', 'knode'), 'proxy', '--kubeconfig', kubeconfig, '--config', config, '--hostname-override', 'ct-node'], { stdio: ['ignore', 'ignore', 'pipe'] });
    proxy.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  });

  afterAll(async () => {
    if (proxy && proxy.exitCode === null) {
      const exited = new Promise((resolve) => proxy!.once('exit', resolve));
      proxy.kill('SIGTERM');
      await exited;
    }
    await net.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sets the conntrack timeouts of its own network namespace only', async () => {
    const root = ['nf_conntrack_tcp_timeout_established', 'nf_conntrack_tcp_timeout_close_wait', 'nf_conntrack_udp_timeout', 'nf_conntrack_udp_timeout_stream'].map((name) => readFileSync(sysctl(name), 'utf8').trim());
    await waitFor('the proxy to set the conntrack sysctls', () => (/nf_conntrack_udp_timeout_stream/.test(log) ? true : undefined), 30_000, 200);
    const read = async (name: string) => (await node.exec(['cat', sysctl(name)])).stdout.trim();
    expect(await read('nf_conntrack_tcp_timeout_established')).toBe('7321');
    expect(await read('nf_conntrack_tcp_timeout_close_wait')).toBe('1234');
    expect(await read('nf_conntrack_udp_timeout')).toBe('41');
    expect(await read('nf_conntrack_udp_timeout_stream')).toBe('151');
    // The root netns is untouched (unless it happened to hold these values already).
    const after = ['nf_conntrack_tcp_timeout_established', 'nf_conntrack_tcp_timeout_close_wait', 'nf_conntrack_udp_timeout', 'nf_conntrack_udp_timeout_stream'].map((name) => readFileSync(sysctl(name), 'utf8').trim());
    expect(after).toEqual(root);
  });

  it('nf_conntrack_max: set where the kernel allows it, else one warning; the proxy keeps running', async () => {
    await waitFor('the nf_conntrack_max outcome', () => (/nf_conntrack_max/.test(log) ? true : undefined), 30_000, 200);
    const max = (await node.exec(['cat', sysctl('nf_conntrack_max')])).stdout.trim();
    if (/nf_conntrack_max is read-only in this network namespace/.test(log)) expect(max).toBe(readFileSync(sysctl('nf_conntrack_max'), 'utf8').trim());
    else expect(Number(max)).toBe(65536 * Number((await node.exec(['nproc'])).stdout.trim()));
    expect(proxy!.exitCode).toBeNull();
  });

  it('localhostNodePorts (default true): route_localnet is set in its own netns only', async () => {
    const rootValue = readFileSync('/proc/sys/net/ipv4/conf/all/route_localnet', 'utf8').trim();
    await waitFor('route_localnet', () => (/route_localnet set/.test(log) ? true : undefined), 30_000, 200);
    expect((await node.exec(['cat', '/proc/sys/net/ipv4/conf/all/route_localnet'])).stdout.trim()).toBe('1');
    expect(readFileSync('/proc/sys/net/ipv4/conf/all/route_localnet', 'utf8').trim()).toBe(rootValue);
  });

  it('ipvs.strictARP sets arp_ignore/arp_announce in its own netns before the IPVS check', async () => {
    const rootValues = ['arp_ignore', 'arp_announce'].map((name) => readFileSync(`/proc/sys/net/ipv4/conf/all/${name}`, 'utf8').trim());
    const ipvsNode = await net.node('pxarp');
    const config = join(dir, 'ipvs.yaml');
    writeFileSync(config, 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs: {strictARP: true}\nhealthzBindAddress: 127.0.0.1:0\nmetricsBindAddress: 127.0.0.1:0\n');
    // On a kernel without IPVS the proxy then stops with its clear error; with IPVS it would wait
    // for the API (nothing listens): the sysctls are set either way before that.
    const result = await ipvsNode.exec([process.execPath, join(repo, 'bin', 'knode'), 'proxy', '--kubeconfig', join(dir, 'kubeconfig'), '--config', config], { allowFailure: true, timeoutMs: 20_000 }).catch(() => undefined);
    void result;
    expect((await ipvsNode.exec(['cat', '/proc/sys/net/ipv4/conf/all/arp_ignore'])).stdout.trim()).toBe('1');
    expect((await ipvsNode.exec(['cat', '/proc/sys/net/ipv4/conf/all/arp_announce'])).stdout.trim()).toBe('2');
    expect(['arp_ignore', 'arp_announce'].map((name) => readFileSync(`/proc/sys/net/ipv4/conf/all/${name}`, 'utf8').trim())).toEqual(rootValues);
  });

  it('warns once, naming every not-implemented setting the config sets', async () => {
    await waitFor('the start-up warning', () => (/accepted but not implemented/.test(log) ? true : undefined), 30_000, 200);
    const warnings = log.split('\n').filter((line) => line.includes('accepted but not implemented'));
    expect(warnings).toHaveLength(1);
    const entry = JSON.parse(warnings[0]!) as { fields: string[]; level: number };
    expect(entry.level).toBe(40);
    expect(entry.fields).toEqual(['ipvs.tcpTimeout', 'detectLocalMode']);
  });
});
