/**
 * The launcher finds the daemon from the netconf (issue 24): with `subnetFile` in some directory
 * it connects to knode-cni.sock beside it — where `knode overlay --subnet-file` serves it
 * (cni/plugin-server.ts cniSocketFor) — rather than only at the socket baked in at install.
 * KNODE_CNI_SOCKET still wins, and a missing socket is said on stderr (the runtime's log).
 * The launcher under test can only succeed through the daemon: its in-process fallback is
 * /bin/false, so an answer proves the daemon served the call.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/prereq.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { buildPluginKit, invoke, startPluginDaemon, writeSubnetEnv, type PluginKit } from '../helpers/cni-harness.js';
import { writeLauncher } from '../../cni/launcher.js';
import { cniSocketFor } from '../../cni/plugin-server.js';

const env = await prerequisites('root', 'command:ip', 'command:nsenter', 'command:perl');

describe.skipIf(env.skip)('knode CNI launcher: daemon socket derived from the netconf (netns)', () => {
  const net = new TestNetwork();
  let kit: PluginKit;
  let node: Netns;
  let pod: Netns;
  let subnetFile: string;
  let conf: Record<string, unknown>;
  /** A launcher whose fallback cannot succeed, with a baked-in socket that is never served. */
  let daemonOnly: string;

  const call = (command: string, extra: Record<string, string> = {}) =>
    invoke({ nodeNs: node.name, plugin: daemonOnly, conf, env: { CNI_COMMAND: command, CNI_CONTAINERID: 'c-sock', CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: kit.binDir, ...extra } });

  beforeAll(async () => {
    kit = await buildPluginKit('knt-cnisock-');
    node = await net.node('n');
    pod = await net.namespace('p');
    // Not the kit's directory: the subnet file (and so the daemon) lives somewhere of its own.
    const elsewhere = mkdtempSync(join(kit.dir, 'flannel-'));
    subnetFile = join(elsewhere, 'subnet.env');
    writeSubnetEnv(subnetFile, { network: '10.244.0.0/16', subnet: '10.244.9.1/24', ipMasq: true });
    conf = { cniVersion: '1.0.0', name: 'knt', type: 'knode', subnetFile, dataDir: join(kit.dir, 'data') };
    daemonOnly = join(kit.dir, 'daemon-only');
    writeLauncher(daemonOnly, { node: '/bin/false', entry: 'unused', socket: join(kit.dir, 'never.sock') });
  }, 120_000);
  afterAll(async () => {
    await net.cleanup();
    kit?.cleanup();
  });

  it('reaches the daemon serving beside the netconf subnetFile, with no KNODE_CNI_SOCKET', async () => {
    const daemon = await startPluginDaemon(kit, node.name, cniSocketFor(subnetFile));
    try {
      const add = await call('ADD');
      expect(add.code, add.stdout + add.stderr).toBe(0);
      expect(add.stderr).toBe('');
      expect((add.json.ips as { address: string }[])[0]!.address).toMatch(/^10\.244\.9\.\d+\/24$/);
      const del = await call('DEL');
      expect(del.code, del.stdout + del.stderr).toBe(0);
      // KNODE_CNI_SOCKET still wins over the netconf: pointed elsewhere, the daemon is not used.
      const overridden = await call('DEL', { KNODE_CNI_SOCKET: join(kit.dir, 'missing.sock') });
      expect(overridden.code).not.toBe(0);
      expect(overridden.stderr).toContain(`no overlay daemon socket at ${join(kit.dir, 'missing.sock')} (from KNODE_CNI_SOCKET): absent; running in-process`);
    } finally {
      await daemon.stop();
    }
  }, 120_000);

  it('says on stderr why the fast path is off when no daemon serves beside subnetFile', async () => {
    const result = await call('DEL');
    expect(result.code).not.toBe(0); // the fallback here is /bin/false
    expect(result.stderr).toContain(`no overlay daemon socket at ${cniSocketFor(subnetFile)} (beside subnetFile ${subnetFile}): absent; running in-process`);
  });
});
