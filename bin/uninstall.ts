/**
 * `knode uninstall [--root DIR]`: removes a systemd install (systemd/install.sh, `knode join
 * --systemd`) completely, as `kubeadm reset` does for kubeadm's node: the units are stopped and
 * disabled, each component's own teardown runs (the functions behind `knode agent --cleanup`,
 * `knode proxy --cleanup` and `knode overlay --cleanup`, as `knode down --purge` uses them), then
 * every file the install wrote goes: unit files, /etc/default/knode-*, /etc/knode, the CNI plugin
 * and conflist, the state under /var/lib, the static pod manifests (kubeadm reset empties
 * /etc/kubernetes/manifests too) and last the installed program itself. Idempotent: what is
 * already gone is skipped, so a second run (or one after a half-done install) succeeds.
 * With --root DIR it removes the files of a staging root (install.sh --root) and touches neither
 * systemd nor the kernel.
 */
import { existsSync, lstatSync, readdirSync, readlinkSync, rmSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cleanupAgent } from '../agent/cleanup.js';
import { defaultConflistName } from '../cni/install-command.js';
import { optionalString, type Runner } from '../lib/command-options.js';
import { loadKubeletConfig } from '../lib/config/kubelet.js';
import { loadNetConf } from '../lib/config/netconf.js';
import { describeError } from '../lib/errors.js';
import { run as exec } from '../lib/exec.js';
import type { Logger } from '../lib/log.js';
import { cleanupOverlay } from '../overlay/cleanup.js';
import { cleanupProxy } from '../proxy/cleanup.js';

/** Stop order: the reverse of the start order (the control plane last). */
export const systemdUnits = ['knode-dns', 'knode-proxy', 'knode-agent', 'knode-overlay', 'knode-controlplane'];

/** What a systemd install puts on a machine, below root ('' for the machine itself). */
export function installLayout(root: string) {
  const at = (path: string) => join(root || '/', path);
  return {
    unitFiles: systemdUnits.map((unit) => at(`etc/systemd/system/${unit}.service`)),
    defaults: systemdUnits.map((unit) => at(`etc/default/${unit}`)),
    etc: at('etc/knode'),
    kubeletConfig: at('etc/knode/kubelet-config.yaml'),
    netConf: at('etc/knode/net-conf.json'),
    manifests: at('etc/kubernetes/manifests'),
    kubernetesDir: at('etc/kubernetes'),
    cniPlugin: at('opt/cni/bin/knode'),
    conflist: at(`etc/cni/net.d/${defaultConflistName}`),
    cniState: at('var/lib/cni/knode'),
    cniResults: at('var/lib/cni/results'),
    state: at('var/lib/knode'),
    podLogs: at('var/log/pods'),
    subnetFile: at('run/flannel/subnet.env'),
    flannelDir: at('run/flannel'),
    program: at('opt/knode'),
    link: at('usr/local/bin/knode'),
  };
}

const say = (line: string) => process.stdout.write(`${line}\n`);

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    // lstat fails only for what is not there (or cannot be reached): nothing to remove
    return false;
  }
}

async function stopUnits(log: Logger): Promise<void> {
  if (!existsSync('/run/systemd/system')) {
    say('systemd is not running here: no unit to stop');
    return;
  }
  for (const unit of systemdUnits) {
    const shown = await exec(['systemctl', 'show', '-p', 'LoadState,ActiveState', '--value', `${unit}.service`], { allowFailure: true });
    const [loadState, activeState] = shown.stdout.trim().split('\n');
    if (shown.code !== 0 || (loadState === 'not-found' && activeState === 'inactive')) continue;
    // The agent's KillMode=process leaves the pods running; its cleanup below removes them.
    const disabled = await exec(['systemctl', 'disable', '--now', `${unit}.service`], { allowFailure: true, timeoutMs: 120_000 });
    if (disabled.code === 0) say(`stopped and disabled ${unit}`);
    else log.warn({ unit, output: (disabled.stderr || disabled.stdout).trim() }, 'could not stop and disable the unit');
  }
}

/** Each component's own teardown; a part that cannot run (no Docker Engine) is said, not fatal. */
async function componentCleanups(layout: ReturnType<typeof installLayout>, log: Logger): Promise<void> {
  try {
    const { config } = existsSync(layout.kubeletConfig) ? loadKubeletConfig(layout.kubeletConfig) : loadKubeletConfig(undefined);
    const agent = await cleanupAgent({ containerRuntimeEndpoint: config.containerRuntimeEndpoint, cgroupRoot: config.cgroupRoot, log });
    say(`agent: removed ${agent.containers} container(s) and ${agent.podCgroups} pod cgroup(s)`);
  } catch (error) {
    log.warn({ err: error }, 'agent cleanup failed: pod containers may remain in the Docker Engine');
    say(`agent: containers not removed (${describeError(error)})`);
  }
  try {
    const backends = await cleanupProxy();
    say(`proxy: removed its rules (${backends.join(', ') || 'no backend'})`);
  } catch (error) {
    log.warn({ err: error }, 'proxy cleanup failed');
  }
  try {
    const vni = existsSync(layout.netConf) ? loadNetConf(layout.netConf).Backend.VNI : undefined;
    const removed = await cleanupOverlay({ vni, subnetFile: layout.subnetFile });
    say(`overlay: removed ${removed.join(', ') || 'nothing (already clean)'}`);
  } catch (error) {
    log.warn({ err: error }, 'overlay cleanup failed');
  }
}

/** The knode entry on the PATH is removed only when it is install.sh's link into /opt/knode. */
function ourLink(path: string): boolean {
  try {
    return readlinkSync(path).endsWith('opt/knode/bin/knode');
  } catch {
    // absent or not a symlink: not install.sh's link, so it is left alone
    return false;
  }
}

function removeFiles(layout: ReturnType<typeof installLayout>): string[] {
  const removed: string[] = [];
  const remove = (path: string) => {
    if (!exists(path)) return;
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  };
  [...layout.unitFiles, ...layout.defaults, layout.etc, layout.cniPlugin, layout.conflist, layout.cniState, layout.state, layout.podLogs, layout.subnetFile].forEach(remove);
  // libcni-style result cache entries of the knode network (<network>-<container>-<ifname>).
  if (existsSync(layout.cniResults)) readdirSync(layout.cniResults).filter((name) => name.startsWith('knode-')).forEach((name) => remove(join(layout.cniResults, name)));
  if (existsSync(layout.manifests)) readdirSync(layout.manifests).forEach((name) => remove(join(layout.manifests, name)));
  // Directories the install (or the agent) made, removed only when nothing else is left in them.
  for (const dir of [layout.manifests, layout.kubernetesDir, layout.flannelDir, layout.cniResults, dirname(layout.cniResults), dirname(layout.cniPlugin), dirname(dirname(layout.cniPlugin)), dirname(layout.conflist), dirname(dirname(layout.conflist))]) {
    try {
      rmdirSync(dir);
      removed.push(dir);
    } catch {
      // absent, or holds something that is not ours
    }
  }
  if (ourLink(layout.link)) remove(layout.link);
  // Last: the program that runs this (everything it needs is loaded already).
  remove(layout.program);
  return removed;
}

export const run: Runner = async (options, log) => {
  const root = optionalString(options, 'root') ?? '';
  const layout = installLayout(root);
  if (!root) {
    await stopUnits(log);
    await componentCleanups(layout, log);
  }
  const removed = removeFiles(layout);
  if (!root && existsSync('/run/systemd/system')) {
    await exec(['systemctl', 'daemon-reload'], { allowFailure: true });
    await exec(['systemctl', 'reset-failed', ...systemdUnits.map((unit) => `${unit}.service`)], { allowFailure: true });
  }
  say(removed.length > 0 ? `removed ${removed.join(' ')}` : 'nothing to remove: knode is not installed here');
  say('knode uninstalled');
};
