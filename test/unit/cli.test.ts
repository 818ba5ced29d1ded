import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const knode = fileURLToPath(new URL('../../bin/knode', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../../dist/bin/knode.js', import.meta.url)));
if (!built) throw new Error('dist/ is missing: run "npm run build" before the tests (npm test does)');

function cli(...args: string[]) {
  const result = spawnSync(knode, args, { encoding: 'utf8', env: { ...process.env, KNODE_LOG_LEVEL: 'silent' } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'knode-cli-test-'));
const kubeconfig = join(dir, 'kubeconfig');
writeFileSync(
  kubeconfig,
  'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "http://127.0.0.1:1"}\ncontexts:\n- name: c\n  context: {cluster: c}\n',
);

// Each case starts knode processes: on a loaded 2-core machine one start can take seconds.
describe('knode CLI', { timeout: 30_000 }, () => {
  it('prints help and version', () => {
    const help = cli('--help');
    expect(help.code).toBe(0);
    for (const name of ['controlplane', 'agent', 'proxy', 'overlay', 'up', 'install-cni']) expect(help.stdout).toContain(name);
    expect(cli('--version').stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('knode version prints knode\'s version and the Kubernetes version it implements', () => {
    const result = cli('version');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^knode version \d+\.\d+\.\d+\nKubernetes version v1\.\d+\.\d+ \(kubelet and API server report v1\.\d+\.\d+-knode\)\n$/);
  });

  it('agent --v takes a klog verbosity; a bad one exits 2', () => {
    const result = cli('agent', '--kubeconfig', kubeconfig, '--v', 'loud');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('flag --v: "loud" is not a verbosity number');
    const labels = cli('agent', '--kubeconfig', kubeconfig, '--node-labels', 'node-role.kubernetes.io/x=');
    expect(labels.code).toBe(2);
    expect(labels.stderr).toContain("unknown 'kubernetes.io' or 'k8s.io' labels specified");
  });

  it.each([
    ['controlplane', '--listen'],
    ['agent', '--kubeconfig'],
    ['agent', '--node-labels'],
    ['agent', '--register-with-taints'],
    ['proxy', '--proxy-mode'],
    ['overlay', '--net-conf'],
    ['up', '--data-dir'],
    ['install-cni', '--bin-dir'],
  ])('%s --help documents %s', (command, flag) => {
    const result = cli(command, '--help');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(flag);
  });

  it('rejects unknown commands, flags and log levels with exit code 2', () => {
    expect(cli('bogus').code).toBe(2);
    expect(cli('agent', '--bogus').code).toBe(2);
    expect(cli('proxy', '--proxy-mode', 'userspace').code).toBe(2);
    const level = cli('--log-level', 'loud', 'up');
    expect(level.code).toBe(2);
    expect(level.stderr).toContain('unknown log level "loud"');
  });

  it('reports a bad config file in one line naming file and field, exit code 2', () => {
    const config = join(dir, 'kubelet.yaml');
    writeFileSync(config, 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nsyncFrequency: soon\n');
    const result = cli('agent', '--kubeconfig', kubeconfig, '--config', config);
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`"${config}"`);
    expect(lines[0]).toContain('field "syncFrequency"');
  });

  it('reports a bad net-conf.json and kubeconfig the same way', () => {
    const netConf = join(dir, 'net-conf.json');
    writeFileSync(netConf, '{"Network": "not-a-cidr"}');
    const overlay = cli('overlay', '--kubeconfig', kubeconfig, '--net-conf', netConf);
    expect(overlay.code).toBe(2);
    expect(overlay.stderr).toContain('field "Network"');
    const proxy = cli('proxy', '--kubeconfig', join(dir, 'absent'));
    expect(proxy.code).toBe(2);
    expect(proxy.stderr).toContain('cannot read');
  });
});
