/**
 * `knode down [--data-dir DIR] [--purge]`: stops a running `knode up` (its pid file in DATA_DIR;
 * `up` then stops its children in reverse order). If `up` itself is gone but children are left
 * (it was SIGKILLed), they are stopped here, last started first. With --purge, everything `up`
 * created is removed by each component's own teardown, the same functions as
 * `knode agent --cleanup` (containers and pod cgroups), `knode proxy --cleanup` (rules) and
 * `knode overlay --cleanup` (masquerade, VXLAN device, CNI bridge), then the data dir (CNI/IPAM
 * state included). Nothing here knows a component's devices, chains or cgroup paths.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { cleanupAgent, scopeLabels } from '../agent/cleanup.js';
import { optionalString, type Runner } from '../lib/command-options.js';
import { loadNetConf } from '../lib/config/netconf.js';
import type { Logger } from '../lib/log.js';
import { cleanupOverlay } from '../overlay/cleanup.js';
import { cleanupProxy } from '../proxy/cleanup.js';
import { runtimeScopeFor, upLayout, type UpLayout } from './up-config.js';

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

async function purge(layout: UpLayout, endpoint: string, log: Logger): Promise<void> {
  const scope = process.env.KNODE_RUNTIME_SCOPE ?? runtimeScopeFor(layout.dataDir);
  const agent = await cleanupAgent({ containerRuntimeEndpoint: endpoint, scopeLabels: scopeLabels(scope), log });
  await cleanupProxy();
  const vni = existsSync(layout.netConf) ? loadNetConf(layout.netConf).Backend.VNI : undefined;
  const overlay = await cleanupOverlay({ vni, subnetFile: layout.subnetFile, cniSocket: layout.cniSocket });
  rmSync(layout.dataDir, { recursive: true, force: true });
  log.debug({ overlay }, 'overlay cleanup');
  process.stdout.write(`purged: ${agent.containers} container(s) labelled ${scope}, proxy and overlay rules, ${overlay.filter((what) => !what.includes(' ')).join(' and ') || 'no devices'}, ${layout.dataDir}\n`);
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
  if (options.purge === true) await purge(layout, optionalString(options, 'containerRuntimeEndpoint') ?? 'unix:///var/run/docker.sock', log);
};
