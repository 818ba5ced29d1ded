/**
 * `knode overlay --cleanup` in a node netns: the overlay's masquerade chain and jump, the VXLAN
 * device, the CNI bridge, the plugin's per-pod masquerade chains, subnet.env and the fast-path
 * socket are removed; a second run finds nothing and still succeeds; `knode proxy --cleanup` and
 * `knode agent --cleanup` exist as flags of their components.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'command:ip', 'command:iptables-nft');
const knode = join(import.meta.dirname, '..', '..', 'bin', 'knode');

describe.skipIf(env.skip)('knode overlay --cleanup (netns)', () => {
  const net = new TestNetwork();
  let node: Netns;
  let dir: string;

  beforeAll(async () => {
    node = await net.node('ovcl');
    dir = mkdtempSync(join(tmpdir(), 'knt-overlay-cleanup-'));
  });

  afterAll(async () => {
    await net.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('removes the VXLAN device, the bridge, both kinds of masquerade chains and the files; twice is fine', async () => {
    const ok = async (command: string[]) => expect((await node.exec(command, { allowFailure: true })).code).toBe(0);
    await ok(['ip', 'link', 'add', 'flannel.7', 'type', 'vxlan', 'id', '7', 'dstport', '8472', 'nolearning']);
    await ok(['ip', 'link', 'add', 'cni0', 'type', 'bridge']);
    await ok(['ip', 'addr', 'add', '10.244.3.1/24', 'dev', 'cni0']);
    const nat = (...args: string[]) => ok(['iptables-nft', '-w', '-t', 'nat', ...args]);
    await nat('-N', 'KNODE-OVERLAY-POSTRTG');
    await nat('-A', 'KNODE-OVERLAY-POSTRTG', '-s', '10.244.0.0/16', '-j', 'MASQUERADE');
    await nat('-A', 'POSTROUTING', '-m', 'comment', '--comment', 'knode overlay masquerade', '-j', 'KNODE-OVERLAY-POSTRTG');
    await nat('-N', 'KNODE-MASQ-0123456789ABCDEF');
    await nat('-A', 'POSTROUTING', '-s', '10.244.3.5/32', '-j', 'KNODE-MASQ-0123456789ABCDEF');
    const subnetFile = join(dir, 'subnet.env');
    const netConf = join(dir, 'net-conf.json');
    writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\n');
    writeFileSync(join(dir, 'knode-cni.sock'), '');
    writeFileSync(netConf, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', VNI: 7 } }));

    const first = await node.exec([process.execPath, knode, 'overlay', '--cleanup', '--net-conf', netConf, '--subnet-file', subnetFile], { allowFailure: true, timeoutMs: 60_000 });
    expect(first.code, first.stderr).toBe(0);
    const links = (await node.ip('-o', 'link')).stdout;
    expect(links).not.toMatch(/\b(cni0|flannel\.7)\b/);
    expect((await node.exec(['iptables-nft-save', '-t', 'nat'])).stdout).not.toMatch(/KNODE-/);
    expect(existsSync(subnetFile)).toBe(false);
    expect(existsSync(join(dir, 'knode-cni.sock'))).toBe(false);

    const again = await node.exec([process.execPath, knode, 'overlay', '--cleanup', '--net-conf', join(dir, 'absent.json'), '--subnet-file', subnetFile], { allowFailure: true, timeoutMs: 60_000 });
    expect(again.code, again.stderr).toBe(0);
  });

  it('leaves a device named like the bridge alone when it is not a bridge', async () => {
    await node.exec(['ip', 'link', 'add', 'cni0', 'type', 'veth', 'peer', 'name', 'cni0p']);
    const result = await node.exec([process.execPath, knode, 'overlay', '--cleanup', '--subnet-file', join(dir, 'subnet.env')], { allowFailure: true, timeoutMs: 60_000 });
    expect(result.code, result.stderr).toBe(0);
    expect((await node.ip('-o', 'link', 'show', 'dev', 'cni0')).code).toBe(0);
  });

  it('every component has its own --cleanup flag', async () => {
    for (const component of ['agent', 'proxy', 'overlay']) {
      const help = await node.exec([process.execPath, knode, component, '--help'], { allowFailure: true, timeoutMs: 60_000 });
      expect(help.stdout).toContain('--cleanup');
    }
  });
});
