/** `knode proxy` start-up failures and --cleanup on an empty node, as processes in a test netns. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onPath, prerequisites } from '../helpers/prereq.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { ipvsKernelSupport } from '../../proxy/ipvs-check.js';

const env = await prerequisites('root', 'command:ip', 'command:iptables-nft');
const repo = join(import.meta.dirname, '..', '..');

describe.skipIf(env.skip)('knode proxy command in a node netns', () => {
  const net = new TestNetwork();
  let node: Netns;
  let dir: string;
  let kubeconfig: string;

  beforeAll(async () => {
    node = await net.node('pxcli');
    dir = mkdtempSync(join(tmpdir(), 'knode-proxy-cli-'));
    kubeconfig = join(dir, 'kubeconfig');
    // nothing listens there: the proxy must fail before it needs the API
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user: {}\ncurrent-context: c\n');
  });

  afterAll(async () => {
    await net.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(ipvsKernelSupport().kernel)('--proxy-mode ipvs on a kernel without IPVS fails at start with a clear message', async () => {
    const result = await node.exec([process.execPath, join(repo, 'bin', 'knode'), 'proxy', '--proxy-mode', 'ipvs', '--kubeconfig', kubeconfig], { allowFailure: true, timeoutMs: 60_000 });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--proxy-mode ipvs cannot start: this kernel has no IPVS.*use --proxy-mode iptables/);
  });

  it('--cleanup on a node without proxy state succeeds and leaves nothing', async () => {
    const result = await node.exec([process.execPath, join(repo, 'bin', 'knode'), 'proxy', '--cleanup'], { allowFailure: true, timeoutMs: 60_000 });
    expect(result.code, result.stderr).toBe(0);
    expect((await node.exec(['iptables-nft-save'])).stdout).not.toMatch(/KUBE-/);
  });

  it.skipIf(!onPath('nft'))('--cleanup deletes the nftables mode\'s table ip kube-proxy', async () => {
    await node.exec(['nft', 'add', 'table', 'ip', 'kube-proxy']);
    await node.exec(['nft', 'add', 'chain', 'ip', 'kube-proxy', 'services']);
    const result = await node.exec([process.execPath, join(repo, 'bin', 'knode'), 'proxy', '--cleanup'], { allowFailure: true, timeoutMs: 60_000 });
    expect(result.code, result.stderr).toBe(0);
    expect((await node.exec(['nft', 'list', 'tables'])).stdout).not.toContain('kube-proxy');
  });
});
