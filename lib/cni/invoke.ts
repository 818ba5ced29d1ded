/**
 * Finding and executing one CNI plugin (SPEC.md "Execution protocol"), shared by the runtime
 * (cri/cni/) and by the knode plugin when it delegates IPAM ("Delegated plugins (IPAM)"): the
 * binary named by "type" is looked up in the bin dirs (CNI_PATH), run with CNI_COMMAND,
 * CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH in its environment and the
 * network config on stdin; on failure it exits non-zero and prints error JSON
 * ({code, msg, details}) on stdout, which becomes a CniPluginError carrying that code.
 *
 * `hostNetns` runs the plugin inside another network namespace (`nsenter --net=PATH`): the
 * bridge and the host end of the veth then land there. Unset in production (plugins run where
 * the runtime runs, as containerd does); tests and nodes-in-a-netns set it to the node's netns.
 */
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { run, type ExecResult } from '../exec.js';
import { CniPluginError, ErrorCode, type JsonObject } from './types.js';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';

/** The per-attachment variables (unset for GC, STATUS and VERSION). */
interface PluginEnv {
  containerId?: string;
  netns?: string;
  ifName?: string;
  args?: [string, string][];
}

/** The environment libcni gives a plugin: ours plus CNI_COMMAND, CNI_PATH and the attachment's variables. */
function pluginEnvironment(command: CniCommand, binDirs: string[], env: PluginEnv = {}, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...base, CNI_COMMAND: command, CNI_PATH: binDirs.join(':') };
  if (command !== 'STATUS' && command !== 'GC' && command !== 'VERSION') {
    out.CNI_CONTAINERID = env.containerId ?? '';
    out.CNI_NETNS = env.netns ?? '';
    out.CNI_IFNAME = env.ifName ?? '';
    out.CNI_ARGS = (env.args ?? []).map(([key, value]) => `${key}=${value}`).join(';');
  }
  return out;
}

/** The binary for a plugin type: first executable match in the bin dirs; a name with "/" is refused (as libcni's FindInPath). */
async function findPlugin(type: string, binDirs: readonly string[]): Promise<string> {
  if (type === '' || type.includes('/') || type === '.' || type === '..') {
    throw new CniPluginError(`invalid CNI plugin type ${JSON.stringify(type)}`, type, 'find', ErrorCode.invalidConfig);
  }
  for (const dir of binDirs) {
    const path = join(dir, type);
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      // next dir
    }
  }
  throw new CniPluginError(`CNI plugin "${type}" not found in ${binDirs.join(':') || '(empty CNI_PATH)'}`, type, 'find', ErrorCode.invalidConfig);
}

interface InvokeOptions {
  binDirs: readonly string[];
  /** The complete environment (see pluginEnvironment); CNI_COMMAND is set to `command`. */
  env: NodeJS.ProcessEnv;
  /** Path of the network namespace to run the plugin in; unset: ours. */
  hostNetns?: string;
  /** Default 60 s. */
  timeoutMs?: number;
}

/** Runs the plugin; returns its stdout, or throws CniPluginError with the plugin's code and message. */
export async function invokePlugin(command: CniCommand, type: string, netconf: JsonObject, options: InvokeOptions): Promise<string> {
  const binary = await findPlugin(type, options.binDirs);
  const argv = options.hostNetns ? ['nsenter', `--net=${options.hostNetns}`, '--', binary] : [binary];
  let result: ExecResult;
  try {
    result = await run(argv, { input: JSON.stringify(netconf), env: { ...options.env, CNI_COMMAND: command }, timeoutMs: options.timeoutMs ?? 60_000, allowFailure: true });
  } catch (error) {
    throw new CniPluginError(`cannot run CNI plugin "${type}" (${command})`, type, command, undefined, undefined, { cause: error });
  }
  if (result.code === 0) return result.stdout;
  throw pluginFailure(type, command, result);
}

/** The plugin's error JSON as a CniPluginError; anything else it printed, quoted briefly. */
function pluginFailure(type: string, command: string, result: ExecResult): CniPluginError {
  try {
    const error = JSON.parse(result.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof error.msg === 'string') {
      const code = typeof error.code === 'number' ? error.code : undefined;
      const details = typeof error.details === 'string' && error.details ? error.details : undefined;
      return new CniPluginError(`CNI plugin "${type}" failed (${command}, code ${code ?? '?'}): ${error.msg}${details ? `; ${details}` : ''}`, type, command, code, details);
    }
  } catch {
    // not a JSON error: report what it printed
  }
  const text = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-3).join(' | ').slice(0, 400);
  return new CniPluginError(`CNI plugin "${type}" failed (${command}, exit code ${result.code}): ${text || '(no output)'}`, type, command);
}

export interface PluginRunnerOptions {
  binDirs: string[];
  /** Path of the network namespace to run plugins in (e.g. /var/run/netns/NAME); unset: ours. */
  hostNetns?: string;
  /** Per plugin invocation; default 60 s. */
  timeoutMs?: number;
}

/** The runtime's invoker: its bin dirs and netns fixed, one call per plugin and verb. */
export class PluginRunner {
  constructor(private readonly options: PluginRunnerOptions) {}

  find(type: string): Promise<string> {
    return findPlugin(type, this.options.binDirs);
  }

  exec(command: CniCommand, type: string, netconf: JsonObject, env: PluginEnv = {}): Promise<string> {
    const { binDirs, hostNetns, timeoutMs } = this.options;
    return invokePlugin(command, type, netconf, { binDirs, hostNetns, timeoutMs, env: pluginEnvironment(command, binDirs, env) });
  }

  /**
   * The versions a plugin supports, asked as libcni's GetVersionInfo asks (pkg/invoke: CNI_NETNS,
   * CNI_IFNAME and CNI_PATH set to "dummy", stdin {"cniVersion": <ours>}); a plugin must answer regardless.
   */
  async versions(type: string): Promise<string[]> {
    const { binDirs, hostNetns, timeoutMs } = this.options;
    const env = { ...process.env, CNI_CONTAINERID: '', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_ARGS: '', CNI_PATH: 'dummy' };
    const stdout = await invokePlugin('VERSION', type, { cniVersion: '1.1.0' }, { binDirs, hostNetns, timeoutMs, env });
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch (error) {
      throw new CniPluginError(`CNI plugin "${type}" printed invalid JSON on VERSION`, type, 'VERSION', undefined, stdout.slice(0, 200), { cause: error });
    }
    const list = (parsed as { supportedVersions?: unknown }).supportedVersions;
    if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) throw new CniPluginError(`CNI plugin "${type}" printed no supportedVersions on VERSION`, type, 'VERSION');
    return list as string[];
  }
}
