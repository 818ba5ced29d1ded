/**
 * The knode CNI plugin against the real kernel, per SPEC.md: every verb, error codes, version
 * negotiation, delegated IPAM and a chain knode → reference portmap. The plugin runs inside a
 * test "node" netns (`ip netns exec`), pods are test netns: nothing touches the root netns.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { buildPluginKit, invoke, writeSubnetEnv, type PluginKit } from '../helpers/cni-harness.js';

const env = await prerequisites('root', 'command:ip', 'command:nsenter', 'command:perl', 'command:iptables');
const cniPath = '/usr/lib/cni';

describe.skipIf(env.skip)('knode CNI plugin (netns)', () => {
  const net = new TestNetwork();
  let kit: PluginKit;
  let node: Netns;
  let subnetFile: string;
  let dataDir: string;
  let plugin: string;
  let conf: Record<string, unknown>;
  let podCount = 0;

  const ips = () => readdirSync(join(dataDir, 'knt')).filter((name) => /^\d+\.\d+\.\d+\.\d+$/.test(name));
  const call = (command: string, extra: Record<string, string | undefined>, body: unknown = conf, stdin?: string) =>
    invoke({ nodeNs: node.name, plugin, conf: body, stdin, env: { CNI_COMMAND: command, CNI_PATH: `${kit.binDir}:${cniPath}`, ...extra } });
  const newPod = async () => net.namespace(`p${++podCount}`);
  const podEnv = (pod: Netns, id: string) => ({ CNI_CONTAINERID: id, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0' });
  const knvLinks = async () => (await node.ip('-o', 'link', 'show')).stdout.split('\n').filter((line) => / knv[0-9a-f]+@/.test(line));

  beforeAll(async () => {
    kit = await buildPluginKit();
    plugin = join(kit.binDir, 'knode');
    node = await net.node('n');
    subnetFile = join(kit.dir, 'subnet.env');
    dataDir = join(kit.dir, 'data');
    writeSubnetEnv(subnetFile, { network: '10.244.0.0/16', subnet: '10.244.7.1/24', mtu: 1410, ipMasq: true });
    conf = { cniVersion: '1.0.0', name: 'knt', type: 'knode', subnetFile, dataDir };
  });
  afterAll(async () => {
    await net.cleanup();
    kit?.cleanup();
  });

  it('VERSION lists every supported version', async () => {
    const result = await call('VERSION', {}, { cniVersion: '1.1.0' });
    expect(result.code).toBe(0);
    expect(result.json.supportedVersions).toEqual(expect.arrayContaining(['0.3.1', '0.4.0', '1.0.0', '1.1.0']));
  });

  it('ADD wires a pod: address, default route via the gateway, MTU, hairpin; CHECK passes; DEL is idempotent', async () => {
    const pod = await newPod();
    const add = await call('ADD', podEnv(pod, 'c-basic'));
    expect(add.code, add.stdout + add.stderr).toBe(0);
    const result = add.json as { ips: { address: string; gateway: string; interface: number }[]; interfaces: { name: string; mac: string; sandbox?: string }[]; routes: unknown[] };
    expect(result.ips[0]!.address).toMatch(/^10\.244\.7\.\d+\/24$/);
    expect(result.ips[0]!.gateway).toBe('10.244.7.1');
    expect(result.interfaces[result.ips[0]!.interface]).toMatchObject({ name: 'eth0', sandbox: pod.path });
    expect(result.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.244.7.1' }]);
    expect((await pod.ip('-o', 'addr', 'show', 'dev', 'eth0')).stdout).toContain(result.ips[0]!.address);
    expect((await pod.ip('route', 'show', 'default')).stdout).toContain('via 10.244.7.1 dev eth0');
    expect((await pod.ip('link', 'show', 'eth0')).stdout).toContain('mtu 1410');
    const hostVeth = result.interfaces[1]!.name;
    expect((await node.exec(['cat', `/sys/class/net/${hostVeth}/brport/hairpin_mode`])).stdout.trim()).toBe('1');
    expect((await node.ip('-o', 'addr', 'show', 'dev', 'cni0')).stdout).toContain('10.244.7.1/24');
    const ping = await pod.exec(['ping', '-c', '1', '-W', '2', '10.244.7.1'], { allowFailure: true });
    expect(ping.code, ping.stdout).toBe(0);

    const check = await call('CHECK', podEnv(pod, 'c-basic'), { ...conf, prevResult: add.json });
    expect(check.code, check.stdout).toBe(0);
    await pod.ip('route', 'del', 'default');
    const broken = await call('CHECK', podEnv(pod, 'c-basic'), { ...conf, prevResult: add.json });
    expect(broken.code).not.toBe(0);
    expect(String(broken.json.msg)).toContain('route');

    for (let i = 0; i < 2; i++) expect((await call('DEL', podEnv(pod, 'c-basic'))).code).toBe(0);
    expect((await pod.ip('-o', 'link', 'show')).stdout).not.toContain('eth0');
    expect(await knvLinks()).toEqual([]);
    expect(ips()).toEqual([]);
    const gone = await call('DEL', { CNI_CONTAINERID: 'c-basic', CNI_NETNS: '/var/run/netns/knt-does-not-exist', CNI_IFNAME: 'eth0' });
    expect(gone.code).toBe(0);
  });

  it('two pods on the node reach each other; the IPs are distinct and round-robin', async () => {
    const [a, b] = [await newPod(), await newPod()];
    const addA = await call('ADD', podEnv(a, 'c-a'));
    const addB = await call('ADD', podEnv(b, 'c-b'));
    const ipA = (addA.json.ips as { address: string }[])[0]!.address.split('/')[0]!;
    const ipB = (addB.json.ips as { address: string }[])[0]!.address.split('/')[0]!;
    expect(ipA).not.toBe(ipB);
    expect(ipA).not.toBe('10.244.7.1');
    const ping = await a.exec(['ping', '-c', '1', '-W', '2', ipB], { allowFailure: true });
    expect(ping.code, ping.stdout).toBe(0);
    await call('DEL', podEnv(a, 'c-a'));
    await call('DEL', podEnv(b, 'c-b'));
  });

  it('writes 0.4.0 results with ips[].version and refuses CHECK on 0.3.1 and GC on 1.0.0', async () => {
    const pod = await newPod();
    const add = await call('ADD', podEnv(pod, 'c-old'), { ...conf, cniVersion: '0.4.0' });
    expect(add.code, add.stdout).toBe(0);
    expect(add.json.cniVersion).toBe('0.4.0');
    expect((add.json.ips as { version: string }[])[0]!.version).toBe('4');
    const check = await call('CHECK', podEnv(pod, 'c-old'), { ...conf, cniVersion: '0.3.1', prevResult: add.json });
    expect(check.json.code).toBe(1);
    const gc = await call('GC', {}, { ...conf, cniVersion: '1.0.0' });
    expect(gc.json.code).toBe(1);
    expect((await call('DEL', podEnv(pod, 'c-old'), { ...conf, cniVersion: '0.4.0' })).code).toBe(0);
  });

  it('GC releases what the runtime no longer has; STATUS reports readiness', async () => {
    const [keep, drop] = [await newPod(), await newPod()];
    expect((await call('ADD', podEnv(keep, 'c-keep'))).code).toBe(0);
    expect((await call('ADD', podEnv(drop, 'c-drop'))).code).toBe(0);
    const gcConf = { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'c-keep', ifname: 'eth0' }] };
    const gc = await call('GC', {}, gcConf);
    expect(gc.code, gc.stdout).toBe(0);
    expect(ips()).toHaveLength(1);
    expect(await knvLinks()).toHaveLength(1);
    expect((await drop.ip('-o', 'link', 'show')).stdout).not.toContain('eth0');
    expect((await call('STATUS', {}, { ...conf, cniVersion: '1.1.0' })).code).toBe(0);
    const notReady = await call('STATUS', {}, { ...conf, cniVersion: '1.1.0', subnetFile: join(kit.dir, 'missing.env') });
    expect(notReady.json.code).toBe(50);
    await call('DEL', podEnv(keep, 'c-keep'));
    expect(ips()).toEqual([]);
  });

  it('bad input gives the spec error code and leaves no partial state', async () => {
    const pod = await newPod();
    const outside = join(kit.dir, 'outside.env');
    writeSubnetEnv(outside, { network: '10.244.0.0/16', subnet: '10.99.1.1/24' });
    const notNetns = join(kit.dir, 'plain-file');
    writeFileSync(notNetns, '');
    const cases: [string, Promise<Awaited<ReturnType<typeof call>>>, number][] = [
      ['invalid JSON', call('ADD', podEnv(pod, 'c-bad'), undefined, '{"cniVersion":'), 6],
      ['unknown cniVersion', call('ADD', podEnv(pod, 'c-bad'), { ...conf, cniVersion: '9.9.9' }), 1],
      ['missing CNI_COMMAND', invoke({ nodeNs: node.name, plugin, conf, env: { ...podEnv(pod, 'c-bad') } }), 7],
      ['missing CNI_NETNS', call('ADD', { CNI_CONTAINERID: 'c-bad', CNI_IFNAME: 'eth0' }), 7],
      ['missing CNI_CONTAINERID', call('ADD', { CNI_NETNS: pod.path, CNI_IFNAME: 'eth0' }), 7],
      ['CNI_IFNAME with /', call('ADD', { ...podEnv(pod, 'c-bad'), CNI_IFNAME: 'eth/0' }), 7],
      ['CNI_IFNAME too long', call('ADD', { ...podEnv(pod, 'c-bad'), CNI_IFNAME: 'a-very-long-ifname' }), 7],
      ['CNI_NETNS not a netns', call('ADD', { ...podEnv(pod, 'c-bad'), CNI_NETNS: notNetns }), 7],
      ['CNI_NETNS missing', call('ADD', { ...podEnv(pod, 'c-bad'), CNI_NETNS: '/var/run/netns/knt-nope-x' }), 3],
      ['subnet outside Network', call('ADD', podEnv(pod, 'c-bad'), { ...conf, subnetFile: outside }), 4],
      ['bad field', call('ADD', podEnv(pod, 'c-bad'), { ...conf, mtu: 'big' }), 4],
      ['no subnet.env yet', call('ADD', podEnv(pod, 'c-bad'), { ...conf, subnetFile: join(kit.dir, 'nope.env') }), 11],
    ];
    for (const [name, pending, code] of cases) {
      const result = await pending;
      expect(result.code, name).not.toBe(0);
      expect(result.json.code, `${name}: ${result.stdout}`).toBe(code);
      expect(typeof result.json.msg, name).toBe('string');
    }
    expect(ips()).toEqual([]);
    expect(await knvLinks()).toEqual([]);
    expect((await pod.ip('-o', 'link', 'show')).stdout).not.toContain('eth0');
  });

  it('rolls back the reservation and veth when a later step fails', async () => {
    const pod = await newPod();
    await pod.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'blocker');
    const add = await call('ADD', podEnv(pod, 'c-rollback'));
    expect(add.code).not.toBe(0);
    expect(ips()).toEqual([]);
    expect(await knvLinks()).toEqual([]);
  });

  it('delegates IPAM to the reference host-local plugin', async () => {
    const pod = await newPod();
    const hostLocalDir = join(kit.dir, 'host-local');
    mkdirSync(hostLocalDir);
    const delegated = { ...conf, ipam: { type: 'host-local', dataDir: hostLocalDir, rangeStart: '10.244.7.100', rangeEnd: '10.244.7.110' } };
    const add = await call('ADD', podEnv(pod, 'c-hl'), delegated);
    expect(add.code, add.stdout).toBe(0);
    const address = (add.json.ips as { address: string }[])[0]!.address;
    expect(address).toMatch(/^10\.244\.7\.1(0\d|10)\/24$/);
    expect(readdirSync(join(hostLocalDir, 'knt'))).toContain(address.split('/')[0]);
    expect((await call('CHECK', podEnv(pod, 'c-hl'), { ...delegated, prevResult: add.json })).code).toBe(0);
    expect((await call('DEL', podEnv(pod, 'c-hl'), delegated)).code).toBe(0);
    expect(readdirSync(join(hostLocalDir, 'knt')).filter((n) => n.startsWith('10.'))).toEqual([]);
    expect(ips()).toEqual([]);
  });

  it('chains knode → reference portmap (iptables inside the node netns)', async () => {
    const pod = await newPod();
    const add = await call('ADD', podEnv(pod, 'c-pm'));
    expect(add.code).toBe(0);
    const portmap = { cniVersion: '1.0.0', name: 'knt', type: 'portmap', capabilities: { portMappings: true }, runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] }, prevResult: add.json };
    const pm = await invoke({ nodeNs: node.name, plugin: join(cniPath, 'portmap'), conf: portmap, env: { CNI_COMMAND: 'ADD', CNI_PATH: cniPath, ...podEnv(pod, 'c-pm') } });
    expect(pm.code, pm.stdout + pm.stderr).toBe(0);
    const ip = (add.json.ips as { address: string }[])[0]!.address.split('/')[0]!;
    const nat = await node.exec(['iptables', '-w', '-t', 'nat', '-S']);
    expect(nat.stdout).toContain(`${ip}:80`);
    const pmDel = await invoke({ nodeNs: node.name, plugin: join(cniPath, 'portmap'), conf: portmap, env: { CNI_COMMAND: 'DEL', CNI_PATH: cniPath, ...podEnv(pod, 'c-pm') } });
    expect(pmDel.code, pmDel.stdout).toBe(0);
    expect((await call('DEL', podEnv(pod, 'c-pm'))).code).toBe(0);
    expect((await node.exec(['iptables', '-w', '-t', 'nat', '-S'])).stdout).not.toContain(`${ip}:80`);
  });

  it('masquerades pod traffic leaving the cluster network with ipMasq', async () => {
    const pod = await newPod();
    const masqConf = { ...conf, ipMasq: true };
    const add = await call('ADD', podEnv(pod, 'c-masq'), masqConf);
    expect(add.code, add.stdout).toBe(0);
    const rules = (await node.exec(['iptables', '-w', '-t', 'nat', '-S'])).stdout;
    expect(rules).toMatch(/-A KNODE-MASQ-[0-9A-F]+ -d 10\.244\.0\.0\/16 -j ACCEPT/);
    expect(rules).toMatch(/-A POSTROUTING -s 10\.244\.7\.\d+\/32 .*-j KNODE-MASQ-/);
    expect((await call('DEL', podEnv(pod, 'c-masq'), masqConf)).code).toBe(0);
    expect((await node.exec(['iptables', '-w', '-t', 'nat', '-S'])).stdout).not.toContain('KNODE-MASQ');
  });
});
