import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors.js';
import { loadKubeletConfig } from '../../lib/config/kubelet.js';
import { loadKubeProxyConfig } from '../../lib/config/kubeproxy.js';
import { loadNetConf } from '../../lib/config/netconf.js';
import { loadKubeconfig, readKubeconfig } from '../../lib/config/kubeconfig.js';

const dir = mkdtempSync(join(tmpdir(), 'knode-config-test-'));
let counter = 0;
function file(text: string, ext = 'yaml'): string {
  const path = join(dir, `config-${counter++}.${ext}`);
  writeFileSync(path, text);
  return path;
}

/** Asserts a ConfigError with one line naming the file and (when given) the field. */
function expectConfigError(load: () => unknown, path: string, field: string | undefined, pattern: RegExp): void {
  let caught: unknown;
  try {
    load();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const message = (caught as Error).message;
  expect(message).not.toContain('\n');
  expect(message).toContain(`"${path}"`);
  if (field) expect(message).toContain(`field "${field}"`);
  expect(message).toMatch(pattern);
}

const kubeletHeader = 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n';

describe('KubeletConfiguration', () => {
  it('applies the kubelet defaults', () => {
    const { config, warnings } = loadKubeletConfig(file(kubeletHeader));
    expect(warnings).toEqual([]);
    expect(config.syncFrequency).toBe(60_000);
    expect(config.fileCheckFrequency).toBe(20_000);
    expect(config.port).toBe(10250);
    expect(config.readOnlyPort).toBe(0);
    expect(config.authentication.anonymous.enabled).toBe(false);
    expect(config.authentication.webhook.enabled).toBe(true);
    expect(config.authorization.mode).toBe('Webhook');
    expect(config.maxPods).toBe(110);
    expect(config.nodeLeaseDurationSeconds).toBe(40);
    expect(config.evictionPressureTransitionPeriod).toBe(300_000);
    expect(config.evictionHard).toEqual({
      'memory.available': '100Mi',
      'nodefs.available': '10%',
      'nodefs.inodesFree': '5%',
      'imagefs.available': '15%',
    });
    expect(config.imageGCHighThresholdPercent).toBe(85);
    expect(config.imageGCLowThresholdPercent).toBe(80);
  });

  it('parses durations and replaces the whole evictionHard map when one entry is set', () => {
    const { config } = loadKubeletConfig(
      file(`${kubeletHeader}syncFrequency: 1m30s\nfileCheckFrequency: 500ms\nevictionHard:\n  memory.available: 200Mi\n`),
    );
    expect(config.syncFrequency).toBe(90_000);
    expect(config.fileCheckFrequency).toBe(500);
    expect(config.evictionHard).toEqual({ 'memory.available': '200Mi' });
  });

  it('loads JSON too, and warns about unknown fields', () => {
    const path = file(JSON.stringify({ apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration', noSuchField: 1 }), 'json');
    const { warnings } = loadKubeletConfig(path);
    expect(warnings).toEqual([`config file "${path}": unknown field "noSuchField" ignored`]);
  });

  it('gives defaults without a file', () => {
    expect(loadKubeletConfig().config.port).toBe(10250);
  });

  it.each([
    ['unknown apiVersion', 'apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n', 'apiVersion', /unknown apiVersion/],
    ['unknown kind', 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: Kubelet\n', 'kind', /unknown kind/],
    ['bad duration', `${kubeletHeader}syncFrequency: 10 seconds\n`, 'syncFrequency', /invalid duration "10 seconds"/],
    ['wrong type', `${kubeletHeader}maxPods: many\n`, 'maxPods', /number/],
    ['bad quantity', `${kubeletHeader}evictionHard:\n  memory.available: 100Mx\n`, 'evictionHard.memory.available', /invalid quantity "100Mx"/],
    ['negative quantity', `${kubeletHeader}kubeReserved:\n  memory: -1Gi\n`, 'kubeReserved.memory', /must not be negative/],
    ['unknown signal', `${kubeletHeader}evictionHard:\n  memory.free: 1Gi\n`, 'evictionHard.memory.free', /unknown eviction signal/],
    ['soft without grace', `${kubeletHeader}evictionSoft:\n  memory.available: 1Gi\n`, 'evictionSoftGracePeriod.memory.available', /no grace period/],
    ['nested wrong type', `${kubeletHeader}authentication:\n  anonymous:\n    enabled: "yes"\n`, 'authentication.anonymous.enabled', /boolean/],
  ])('reports %s naming the file and field', (_name, text, field, pattern) => {
    const path = file(text);
    expectConfigError(() => loadKubeletConfig(path), path, field, pattern);
  });

  it('reports invalid YAML and missing files in one line', () => {
    const bad = file(`${kubeletHeader}syncFrequency: [1m\n`);
    expectConfigError(() => loadKubeletConfig(bad), bad, undefined, /invalid YAML/);
    const missing = join(dir, 'missing.yaml');
    expectConfigError(() => loadKubeletConfig(missing), missing, undefined, /cannot read/);
  });
});

describe('KubeProxyConfiguration', () => {
  const header = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';

  it('applies the kube-proxy defaults', () => {
    const { config } = loadKubeProxyConfig(file(header));
    expect(config.mode).toBe('iptables');
    expect(config.iptables.syncPeriod).toBe(30_000);
    expect(config.iptables.minSyncPeriod).toBe(1_000);
    expect(config.iptables.masqueradeBit).toBe(14);
    expect(config.ipvs.scheduler).toBe('rr');
    expect(config.healthzBindAddress).toBe('0.0.0.0:10256');
    expect(config.conntrack.tcpEstablishedTimeout).toBe(24 * 3_600_000);
  });

  it('reads a full config', () => {
    const { config } = loadKubeProxyConfig(
      file(`${header}mode: ipvs\nclusterCIDR: 10.244.0.0/16\nipvs:\n  scheduler: wrr\niptables:\n  minSyncPeriod: 2s\n`),
    );
    expect(config.mode).toBe('ipvs');
    expect(config.ipvs.scheduler).toBe('wrr');
    expect(config.iptables.minSyncPeriod).toBe(2_000);
  });

  it.each([
    ['bad mode', `${header}mode: nftables-ish\n`, 'mode', /Invalid option/i],
    ['bad CIDR', `${header}clusterCIDR: 10.244.0.0/33\n`, 'clusterCIDR', /CIDR/],
    ['bad duration', `${header}iptables:\n  syncPeriod: 30\n`, 'iptables.syncPeriod', /invalid duration 30: needs a unit/],
    ['min above sync', `${header}iptables:\n  syncPeriod: 1s\n  minSyncPeriod: 5s\n`, 'iptables.minSyncPeriod', /greater/],
    ['bad healthz', `${header}healthzBindAddress: 0.0.0.0\n`, 'healthzBindAddress', /host:port/],
  ])('reports %s', (_name, text, field, pattern) => {
    const path = file(text);
    expectConfigError(() => loadKubeProxyConfig(path), path, field, pattern);
  });
});

describe('flannel net-conf.json', () => {
  it('applies flannel defaults', () => {
    const conf = loadNetConf(file('{"Network": "10.244.0.0/16"}', 'json'));
    expect(conf.SubnetLen).toBe(24);
    expect(conf.Backend).toMatchObject({ Type: 'vxlan', VNI: 1, Port: 8472, DirectRouting: false });
  });

  it('reads the usual flannel config', () => {
    const conf = loadNetConf(file('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":4096,"Port":4789,"DirectRouting":true}}', 'json'));
    expect(conf.Backend).toMatchObject({ VNI: 4096, Port: 4789, DirectRouting: true });
  });

  it.each([
    ['missing Network', '{}', 'Network', /expected string/],
    ['bad Network', '{"Network":"10.244.0.0"}', 'Network', /CIDR/],
    ['udp backend', '{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}', 'Backend.Type', /unsupported backend/],
    ['VNI out of range', '{"Network":"10.244.0.0/16","Backend":{"VNI":0}}', 'Backend.VNI', /too small|>=/],
    ['SubnetLen shorter than Network', '{"Network":"10.244.0.0/16","SubnetLen":8}', 'SubnetLen', /shorter/],
  ])('reports %s', (_name, text, field, pattern) => {
    const path = file(text, 'json');
    expectConfigError(() => loadNetConf(path), path, field, pattern);
  });
});

describe('kubeconfig', () => {
  const good = `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: http://127.0.0.1:6443
users:
- name: admin
  user:
    token: abc
contexts:
- name: local
  context:
    cluster: local
    user: admin
current-context: local
`;

  it('loads into a client-node KubeConfig', async () => {
    const kubeConfig = await loadKubeconfig(file(good));
    expect(kubeConfig.getCurrentCluster()?.server).toBe('http://127.0.0.1:6443');
    expect(kubeConfig.getCurrentUser()?.token).toBe('abc');
  });

  it('keeps credential kinds the schema does not spell out (exec plugins)', async () => {
    const exec = '    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: get-token\n';
    const kubeConfig = await loadKubeconfig(file(good.replace('    token: abc\n', exec)));
    expect(kubeConfig.getCurrentUser()?.exec).toMatchObject({ command: 'get-token' });
  });

  it('resolves relative certificate paths against the file', () => {
    const path = file(good.replace('    token: abc', '    client-certificate: certs/admin.crt\n    client-key: certs/admin.key'));
    expect(readKubeconfig(path).users[0]!.user['client-certificate']).toBe(join(dir, 'certs/admin.crt'));
  });

  it.each([
    ['no clusters', good.replace(/clusters:[\s\S]*?users:/, 'clusters: []\nusers:'), 'clusters', /at least one cluster/],
    ['bad server', good.replace('http://127.0.0.1:6443', '127.0.0.1:6443'), 'clusters[0].cluster.server', /http/],
    ['unknown context', good.replace('current-context: local', 'current-context: other'), 'current-context', /not defined/],
    ['wrong kind', good.replace('kind: Config', 'kind: Pod'), 'kind', /expected Config/],
  ])('reports %s', (_name, text, field, pattern) => {
    const path = file(text);
    expectConfigError(() => readKubeconfig(path), path, field, pattern);
  });
});
