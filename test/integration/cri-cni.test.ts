/**
 * The runtime side of CNI against real plugin processes: small shell-script plugins that record
 * their environment and stdin, so the protocol (env, netconf, runtimeConfig, prevResult
 * chaining, cache, DEL order, CHECK, GC 1.1, STATUS 1.1) is checked from the plugin's side.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CniNetwork } from '../../cri/cni/network.js';
import type { Attachment } from '../../lib/cni/types.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('command:sh');

interface Call {
  plugin: string;
  command: string;
  env: Record<string, string>;
  input: Record<string, unknown>;
}

/** A plugin that logs each call to <log>/<seq>-<name>.{env,json}; ADD prints prevResult + its IP. */
function recorder(name: string, log: string, ip: string): string {
  return `#!/bin/sh
seq=$(date +%s%N)
env | grep '^CNI_' > "${log}/$seq-${name}.env"
cat > "${log}/$seq-${name}.json"
case "$CNI_COMMAND" in
  ADD) printf '{"cniVersion":"1.1.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"address":"${ip}/24","interface":0}]}' "$CNI_IFNAME" "$CNI_NETNS" ;;
  STATUS) if [ -e "${log}/../notready" ]; then echo '{"cniVersion":"1.1.0","code":50,"msg":"plugin not ready"}'; exit 1; fi ;;
esac
exit 0
`;
}

async function calls(log: string): Promise<Call[]> {
  const files = (await readdir(log)).filter((file) => file.endsWith('.json')).sort();
  const result: Call[] = [];
  for (const file of files) {
    const base = file.slice(0, -'.json'.length);
    const envText = await readFile(join(log, `${base}.env`), 'utf8');
    const envVars = Object.fromEntries(envText.trim().split('\n').filter(Boolean).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    const input = (await readFile(join(log, file), 'utf8')).trim();
    result.push({ plugin: base.split('-').slice(1).join('-'), command: envVars.CNI_COMMAND ?? '', env: envVars, input: input ? (JSON.parse(input) as Record<string, unknown>) : {} });
  }
  return result;
}

describe.skipIf(env.skip)('cri CNI runtime side with recording plugins', () => {
  let dir: string;
  let log: string;
  let network: CniNetwork;
  const attachment: Attachment = {
    containerId: 'c0ffee',
    netns: '/proc/1/ns/net',
    ifName: 'eth0',
    args: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'web'], ['K8S_POD_NAMESPACE', 'default']],
    capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
  };

  async function writeConf(version: string, extra: Record<string, unknown> = {}): Promise<void> {
    await writeFile(
      join(dir, 'net.d', '20-rec.conflist'),
      JSON.stringify({ cniVersion: version, name: 'rec', plugins: [{ type: 'first', x: 1 }, { type: 'second', capabilities: { portMappings: true } }], ...extra }),
    );
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'knode-cri-cni-'));
    log = join(dir, 'log');
    await mkdir(log);
    await mkdir(join(dir, 'bin'));
    await mkdir(join(dir, 'net.d'));
    await writeFile(join(dir, 'bin', 'first'), recorder('first', log, '10.9.0.5'), { mode: 0o755 });
    await writeFile(join(dir, 'bin', 'second'), recorder('second', log, '10.9.0.6'), { mode: 0o755 });
    // a broken file sorted first is skipped; a .conf sorted later is not used
    await writeFile(join(dir, 'net.d', '10-broken.conflist'), '{ not json');
    await writeFile(join(dir, 'net.d', '30-single.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'single', type: 'first' }));
    network = new CniNetwork({ confDir: join(dir, 'net.d'), binDirs: [join(dir, 'nothing-here'), join(dir, 'bin')], cacheDir: join(dir, 'cache') });
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('ADD chains prevResult, passes env and runtimeConfig only to capable plugins, caches the result; DEL runs in reverse with it', async () => {
    await writeConf('1.1.0');
    await rm(log, { recursive: true, force: true });
    await mkdir(log);
    const result = await network.setUp(attachment);
    expect(result.ips?.[0]?.address).toBe('10.9.0.6/24');
    const adds = await calls(log);
    expect(adds.map((c) => [c.plugin, c.command])).toEqual([['first', 'ADD'], ['second', 'ADD']]);
    expect(adds[0]!.env).toMatchObject({ CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/proc/1/ns/net', CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=default' });
    expect(adds[0]!.env.CNI_PATH).toBe(`${join(dir, 'nothing-here')}:${join(dir, 'bin')}`);
    expect(adds[0]!.input).toEqual({ type: 'first', x: 1, name: 'rec', cniVersion: '1.1.0' });
    expect(adds[1]!.input.runtimeConfig).toEqual({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
    expect((adds[1]!.input.prevResult as { ips: Array<{ address: string }> }).ips[0]!.address).toBe('10.9.0.5/24');
    expect((await network.result('c0ffee', 'eth0'))?.ips?.[0]?.address).toBe('10.9.0.6/24');

    await network.check(attachment);
    // the conf dir changes: DEL still uses what ADD was given
    await writeFile(join(dir, 'net.d', '20-rec.conflist'), JSON.stringify({ cniVersion: '1.1.0', name: 'rec', plugins: [{ type: 'second' }] }));
    await rm(log, { recursive: true, force: true });
    await mkdir(log);
    await network.tearDown({ ...attachment, args: [], capabilityArgs: {} });
    const dels = await calls(log);
    expect(dels.map((c) => [c.plugin, c.command])).toEqual([['second', 'DEL'], ['first', 'DEL']]);
    expect(dels[0]!.env.CNI_ARGS).toContain('K8S_POD_NAME=web');
    expect((dels[1]!.input.prevResult as { ips: Array<{ address: string }> }).ips[0]!.address).toBe('10.9.0.6/24');
    expect(await network.result('c0ffee', 'eth0')).toBeUndefined();
    // idempotent: a second DEL without a cache entry and without a netns does nothing
    await network.tearDown({ ...attachment, netns: '' });
    expect((await calls(log)).length).toBe(2);
  });

  it('GC deletes stale cached attachments and passes valid-attachments (1.1.0); STATUS reports a plugin error', async () => {
    await writeConf('1.1.0');
    await network.setUp({ ...attachment, containerId: 'keep' });
    await network.setUp({ ...attachment, containerId: 'stale' });
    await rm(log, { recursive: true, force: true });
    await mkdir(log);
    await network.gc([{ containerID: 'keep', ifname: 'eth0' }]);
    const gcCalls = await calls(log);
    expect(gcCalls.filter((c) => c.command === 'DEL').map((c) => c.env.CNI_CONTAINERID)).toEqual(['stale', 'stale']);
    const gcs = gcCalls.filter((c) => c.command === 'GC');
    expect(gcs.map((c) => c.plugin)).toEqual(['first', 'second']);
    expect(gcs[0]!.input['cni.dev/valid-attachments']).toEqual([{ containerID: 'keep', ifname: 'eth0' }]);
    expect(gcs[0]!.env.CNI_CONTAINERID).toBeUndefined();
    expect(await network.result('keep', 'eth0')).toBeDefined();
    expect(await network.result('stale', 'eth0')).toBeUndefined();

    await network.status();
    await writeFile(join(dir, 'notready'), '');
    await expect(network.status()).rejects.toThrow(/plugin not ready/);
    await rm(join(dir, 'notready'));
    await network.tearDown({ ...attachment, containerId: 'keep' });
  });

  it('reports missing plugins and failed ADDs with the plugin name, rolling back', async () => {
    await writeFile(join(dir, 'net.d', '20-rec.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'rec', plugins: [{ type: 'first' }, { type: 'absent' }] }));
    await rm(log, { recursive: true, force: true });
    await mkdir(log);
    await expect(network.setUp(attachment)).rejects.toThrow(/CNI plugin "absent" not found/);
    expect((await calls(log)).map((c) => [c.plugin, c.command])).toEqual([['first', 'ADD'], ['first', 'DEL']]);
    expect(await network.result('c0ffee', 'eth0')).toBeUndefined();
    await expect(network.status()).rejects.toThrow(/"absent" not found/);
  });
});
