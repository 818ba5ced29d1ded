/**
 * `knode down [--data-dir DIR] [--purge]`: stops a running `knode up` (its pid file in DATA_DIR;
 * `up` then stops its children in reverse order). If `up` itself is gone but children are left
 * (it was SIGKILLed), they are stopped here, last started first. With --purge, everything `up`
 * created is removed: the agent's containers (by its runtime scope label) and their pod cgroups,
 * the proxy's rules (`knode proxy --cleanup`), the overlay's masquerade chain, the VXLAN device
 * and the cni0 bridge, and the data dir (CNI/IPAM state included).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import Docker from 'dockerode';
import type { Runner } from './cli.js';
import { optionalString } from '../lib/command-options.js';
import { run as exec } from '../lib/exec.js';
import type { Logger } from '../lib/log.js';
import { removePodCgroup } from '../agent/cgroups/cgroups.js';
import { masqChainName } from '../cni/overlay-masq.js';
import { runtimeScopeFor, upLayout } from './up-config.js';
import { selfCommand } from './up-supervisor.js';

interface PidFile {
  pid: number;
  alive: boolean;
  children: { component: string; pid: number | undefined }[];
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A pid from the file is ours only if its command line still matches (pids get reused). */
function ours(pid: number | undefined, match: (arg: string) => boolean): boolean {
  if (!alive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some(match);
  } catch {
    return false;
  }
}

export function readPidFile(file: string): PidFile | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { pid: number; children?: PidFile['children'] };
    return { pid: parsed.pid, alive: parsed.pid !== process.pid && alive(parsed.pid), children: parsed.children ?? [] };
  } catch {
    return undefined;
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return true;
}

async function stopProcess(pid: number, what: string, log: Logger): Promise<void> {
  process.kill(pid, 'SIGTERM');
  if (!(await waitGone(pid, 60_000))) {
    log.warn({ pid, what }, 'did not stop within 60 s: SIGKILL');
    process.kill(pid, 'SIGKILL');
    await waitGone(pid, 10_000);
  }
}

async function purge(dataDir: string, endpoint: string, log: Logger): Promise<void> {
  const scope = process.env.KNODE_RUNTIME_SCOPE ?? runtimeScopeFor(dataDir);
  const docker = new Docker({ socketPath: endpoint.replace(/^unix:\/\//, ''), timeout: 30_000 });
  const containers = await docker.listContainers({ all: true, filters: { label: [scope] } });
  const uids = new Set(containers.map((c) => c.Labels['io.kubernetes.pod.uid']).filter((uid): uid is string => Boolean(uid)));
  for (const container of containers) await docker.getContainer(container.Id).remove({ force: true }).catch(() => undefined);
  for (const uid of uids) for (const tier of ['', 'burstable/', 'besteffort/']) await removePodCgroup(`/kubepods/${tier}pod${uid}`).catch(() => undefined);
  const [command, ...prefix] = selfCommand();
  await exec([command!, ...prefix, 'proxy', '--cleanup', '--log-level', 'warn'], { allowFailure: true, timeoutMs: 60_000 });
  for (const rule of [['-D', 'POSTROUTING', '-m', 'comment', '--comment', 'knode overlay masquerade', '-j', masqChainName], ['-F', masqChainName], ['-X', masqChainName]]) {
    await exec(['iptables', '-w', '-t', 'nat', ...rule], { allowFailure: true });
  }
  for (const device of ['flannel.1', 'cni0']) await exec(['ip', 'link', 'del', device], { allowFailure: true });
  rmSync(dataDir, { recursive: true, force: true });
  process.stdout.write(`purged: ${containers.length} container(s) labelled ${scope}, proxy and overlay rules, flannel.1 and cni0, ${dataDir}\n`);
}

export const run: Runner = async (options, log) => {
  const layout = upLayout(optionalString(options, 'dataDir') ?? '/var/lib/knode');
  const state = readPidFile(layout.pidFile);
  const upRunning = state?.alive === true && ours(state.pid, (arg) => arg === 'up');
  if (upRunning) {
    await stopProcess(state!.pid, 'knode up', log);
    process.stdout.write(`stopped knode up (pid ${state!.pid})\n`);
  }
  for (const child of [...(state?.children ?? [])].reverse()) {
    // Children always get absolute paths under the data dir.
    if (!ours(child.pid, (arg) => arg.startsWith(layout.dataDir))) continue;
    await stopProcess(child.pid!, child.component, log);
    process.stdout.write(`stopped a leftover ${child.component} (pid ${child.pid})\n`);
  }
  rmSync(layout.pidFile, { force: true });
  if (!upRunning) process.stdout.write(`knode up is not running in ${layout.dataDir}\n`);
  if (options.purge === true) await purge(layout.dataDir, optionalString(options, 'containerRuntimeEndpoint') ?? 'unix:///var/run/docker.sock', log);
};
