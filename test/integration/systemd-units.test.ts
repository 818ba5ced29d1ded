import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { loadKubeletConfig } from '../../lib/config/kubelet.js';
import { loadKubeProxyConfig } from '../../lib/config/kubeproxy.js';
import { loadNetConf } from '../../lib/config/netconf.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('command:systemd-analyze');
const repo = fileURLToPath(new URL('../..', import.meta.url));
const unitNames = ['knode-controlplane', 'knode-agent', 'knode-proxy', 'knode-overlay', 'knode-dns'];

/**
 * A staging root for `systemd-analyze verify --root`: systemd's own units (for the targets the
 * knode units name) and the real commands the units run, so verify checks every ExecStart.
 */
function stagingRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'knode-systemd-'));
  mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
  cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  for (const command of ['test', 'mkdir']) cpSync(`/usr/bin/${command}`, join(root, 'usr/bin', command));
  mkdirSync(join(root, 'sbin'), { recursive: true });
  cpSync(realpathSync('/sbin/modprobe'), join(root, 'sbin/modprobe'));
  return root;
}

describe.skipIf(env.skip)('systemd units', () => {
  const roots: string[] = [];
  afterAll(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

  it('have the kubelet/flanneld shape', () => {
    for (const name of unitNames) {
      const text = readFileSync(join(repo, 'systemd', `${name}.service`), 'utf8');
      expect(text, name).toMatch(/^Restart=always$/m);
      expect(text, name).toMatch(/^Wants=.*network-online\.target/m);
      expect(text, name).toMatch(/^After=.*network-online\.target/m);
      expect(text, name).toMatch(/^ExecStart=\/usr\/local\/bin\/knode /m);
      // Ready when the daemon serves (lib/sd-notify.ts sends READY=1 through systemd-notify, a child).
      expect(text, name).toMatch(/^Type=notify$/m);
      expect(text, name).toMatch(/^NotifyAccess=all$/m);
    }
    expect(readFileSync(join(repo, 'systemd/knode-overlay.service'), 'utf8')).toMatch(/^ExecStartPre=-\/sbin\/modprobe -a .*\bvxlan\b/m);
    const agent = readFileSync(join(repo, 'systemd/knode-agent.service'), 'utf8');
    expect(agent).toMatch(/^KillMode=process$/m);
    expect(agent).toMatch(/^Delegate=yes$/m);
    expect(agent).toMatch(/^After=.*docker\.service/m);
    expect(agent).toMatch(/^ExecStartPre=-\/sbin\/modprobe -a .*\bbr_netfilter\b.*\boverlay\b/m);
    // Debian's reference plugins (portmap is chained by the default conflist).
    expect(agent).toMatch(/^ExecStart=.* --cni-bin-dir=\/opt\/cni\/bin,\/usr\/lib\/cni /m);
    // The overlay needs the Node the agent registers: the agent pulls it in without waiting for it.
    expect(agent).toMatch(/^Wants=.*knode-overlay\.service/m);
    expect(agent).not.toMatch(/^(After|Requires)=.*knode-overlay/m);
  });

  it('install.sh stages a node and systemd-analyze verify passes on every unit, with no warning', async () => {
    const root = stagingRoot();
    roots.push(root);
    const kubeconfig = join(root, 'input.kubeconfig');
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: []\n');
    const install = await run(['bash', join(repo, 'systemd/install.sh'), '--root', root, '--kubeconfig', kubeconfig, '--node-name', 'node-a', '--with-controlplane', '--link']);
    expect(install.stdout).toContain('staged into');
    expect(readdirSync(join(root, 'etc/systemd/system')).sort()).toEqual(unitNames.map((n) => `${n}.service`).sort());
    for (const file of ['kubelet.kubeconfig', 'proxy.kubeconfig', 'overlay.kubeconfig', 'dns.kubeconfig', 'kubelet-config.yaml', 'kube-proxy-config.yaml', 'net-conf.json']) {
      expect(existsSync(join(root, 'etc/knode', file)), file).toBe(true);
    }
    expect(readFileSync(join(root, 'etc/default/knode-agent'), 'utf8')).toContain('--hostname-override=node-a');

    for (const name of unitNames) {
      const result = await run(['systemd-analyze', 'verify', `--root=${root}`, join(root, 'etc/systemd/system', `${name}.service`)], { allowFailure: true });
      expect({ name, code: result.code, output: (result.stdout + result.stderr).trim() }).toEqual({ name, code: 0, output: '' });
    }
  });

  it('the config files the units name are staged and load with knode\'s own loaders', async () => {
    const root = stagingRoot();
    roots.push(root);
    const kubeconfig = join(root, 'input.kubeconfig');
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: []\n');
    await run(['bash', join(repo, 'systemd/install.sh'), '--root', root, '--kubeconfig', kubeconfig, '--link']);
    const loaders: Record<string, (file: string) => unknown> = { '--config': (file) => (file.endsWith('kube-proxy-config.yaml') ? loadKubeProxyConfig(file) : loadKubeletConfig(file)), '--kubelet-config': loadKubeletConfig, '--net-conf': loadNetConf };
    const loaded: string[] = [];
    for (const name of ['knode-agent', 'knode-proxy', 'knode-overlay', 'knode-dns']) {
      const execStart = /^ExecStart=(.*)$/m.exec(readFileSync(join(root, 'etc/systemd/system', `${name}.service`), 'utf8'))![1]!;
      for (const [, flag, path] of execStart.matchAll(/(--[a-z-]+)=(\/etc\/knode\/\S+)/g)) {
        expect(existsSync(join(root, path!)), `${name} ${flag}=${path}`).toBe(true);
        const load = loaders[flag!];
        if (load) {
          expect(() => load(join(root, path!)), `${name} ${flag}=${path}`).not.toThrow();
          loaded.push(path!);
        }
      }
    }
    expect(loaded.sort()).toEqual(['/etc/knode/kube-proxy-config.yaml', '/etc/knode/kubelet-config.yaml', '/etc/knode/kubelet-config.yaml', '/etc/knode/net-conf.json']);
  });

  it('keeps an operator-edited config file on re-install', async () => {
    const root = stagingRoot();
    roots.push(root);
    const kubeconfig = join(root, 'input.kubeconfig');
    writeFileSync(kubeconfig, 'apiVersion: v1\n');
    mkdirSync(join(root, 'etc/knode'), { recursive: true });
    writeFileSync(join(root, 'etc/knode/kubelet-config.yaml'), 'edited\n');
    await run(['bash', join(repo, 'systemd/install.sh'), '--root', root, '--kubeconfig', kubeconfig, '--link']);
    expect(readFileSync(join(root, 'etc/knode/kubelet-config.yaml'), 'utf8')).toBe('edited\n');
  });

  it('knode uninstall --root removes every file install.sh staged, and again is a no-op', async () => {
    const root = mkdtempSync(join(tmpdir(), 'knode-uninstall-'));
    roots.push(root);
    const kubeconfig = join(root, 'input.kubeconfig');
    writeFileSync(kubeconfig, 'apiVersion: v1\n');
    // The directories every Debian machine has.
    for (const dir of ['opt', 'usr/local/bin', 'etc/systemd/system', 'etc/default', 'var/lib', 'var/log', 'run']) mkdirSync(join(root, dir), { recursive: true });
    const listing = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
    const before = listing(root);
    await run(['bash', join(repo, 'systemd/install.sh'), '--root', root, '--kubeconfig', kubeconfig, '--node-name', 'node-a', '--with-controlplane', '--link']);
    // What install-cni and the components write on a real node, staged the same way.
    for (const file of ['opt/cni/bin/knode', 'etc/cni/net.d/10-knode.conflist', 'var/lib/cni/knode/ipam', 'var/lib/cni/results/knode-abc-eth0', 'var/lib/knode/kubelet/x', 'run/flannel/subnet.env', 'etc/kubernetes/manifests/pod.yaml']) {
      mkdirSync(join(root, file, '..'), { recursive: true });
      writeFileSync(join(root, file), 'x');
    }
    const first = await run(['node', join(repo, 'bin/knode'), 'uninstall', '--root', root]);
    expect(first.stdout).toContain('knode uninstalled');
    expect(listing(root)).toEqual(before);
    const second = await run(['node', join(repo, 'bin/knode'), 'uninstall', '--root', root]);
    expect(second.stdout).toContain('nothing to remove');
  });
});
