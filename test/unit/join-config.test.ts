import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { joinLayout, writeJoinConfig } from '../../bin/join-config.js';
import { stillFresh } from '../../bin/join-credentials.js';
import { loadKubeletConfig } from '../../lib/config/kubelet.js';
import { readKubeconfig } from '../../lib/config/kubeconfig.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const settings = { nodeName: 'node-a', clusterCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', clusterDns: '10.96.0.10', listen: '' };
const files = { server: 'https://10.0.0.1:6443', token: 'abcdef.0123456789abcdef', caPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' };

describe('knode join layout and files', () => {
  it('keeps everything below --data-dir, and /etc/knode + /var/lib/knode without it', () => {
    const layout = joinLayout('/d');
    for (const path of [layout.bootstrapKubeconfig, layout.nodeKubeconfig, layout.proxyKubeconfig, layout.overlayKubeconfig, layout.caFile, layout.certDir, layout.kubeletConfig, layout.logs, layout.cniConfDir]) expect(path.startsWith('/d/')).toBe(true);
    const defaults = joinLayout(undefined);
    expect(defaults.bootstrapKubeconfig).toBe('/etc/knode/bootstrap-kubelet.kubeconfig');
    expect(defaults.certDir).toBe('/var/lib/knode/kubelet/pki');
  });

  it('writes a loadable bootstrap kubeconfig, kubelet and proxy configs in one rename, and keeps the node identity on a second join', () => {
    const dir = mkdtempSync(join(tmpdir(), 'knode-joincfg-'));
    dirs.push(dir);
    const layout = joinLayout(dir);
    writeJoinConfig(layout, settings, files);
    const bootstrap = readKubeconfig(layout.bootstrapKubeconfig);
    expect(bootstrap.users[0]!.user.token).toBe(files.token);
    expect(bootstrap.clusters[0]!.cluster.server).toBe(files.server);
    const kubelet = loadKubeletConfig(layout.kubeletConfig).config;
    expect(kubelet.rotateCertificates).toBe(true);
    expect(kubelet.serverTLSBootstrap).toBe(true);
    expect(kubelet.authentication.anonymous.enabled).toBe(false);
    expect(kubelet.authentication.x509.clientCAFile).toBe(layout.caFile);
    expect((parse(readFileSync(layout.proxyConfig, 'utf8')) as { clientConnection: { kubeconfig: string } }).clientConnection.kubeconfig).toBe(layout.proxyKubeconfig);
    expect(readdirSync(dir).filter((name) => name.includes('.tmp-') || name.includes('.old-'))).toEqual([]);
    // The node's identity (written by the bootstrap) survives a new join into the same place.
    writeFileSync(layout.nodeKubeconfig, 'identity');
    writeJoinConfig(layout, settings, { ...files, token: 'ghijkl.0123456789abcdef' });
    expect(readFileSync(layout.nodeKubeconfig, 'utf8')).toBe('identity');
    expect(readKubeconfig(layout.bootstrapKubeconfig).users[0]!.user.token).toBe('ghijkl.0123456789abcdef');
  });

  it('leaves the previous configuration in place when writing fails', () => {
    const dir = mkdtempSync(join(tmpdir(), 'knode-joincfg-'));
    dirs.push(dir);
    const layout = joinLayout(dir);
    writeJoinConfig(layout, settings, files);
    const before = readFileSync(layout.bootstrapKubeconfig, 'utf8');
    // A CA path in a folder the staging directory does not have makes the write fail half-way.
    const blocked = { ...layout, caFile: join(layout.configDir, 'pki', 'sub', 'ca.crt') };
    expect(() => writeJoinConfig(blocked, settings, { ...files, token: 'zzzzzz.0123456789abcdef' })).toThrow(/cannot write the node's configuration/);
    expect(readFileSync(layout.bootstrapKubeconfig, 'utf8')).toBe(before);
    expect(existsSync(`${layout.configDir}.tmp-${process.pid}`)).toBe(false);
  });

  it('renews component certificates with less than 30 % of their lifetime left', () => {
    const from = new Date(0);
    const to = new Date(1000);
    expect(stillFresh(from, to, new Date(600))).toBe(true);
    expect(stillFresh(from, to, new Date(750))).toBe(false);
    expect(stillFresh(from, to, new Date(2000))).toBe(false);
  });
});
