/**
 * Executing one CNI plugin per the spec (SPEC.md "Execution protocol"): the binary named by
 * "type" is looked up in the bin dirs, run with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
 * CNI_IFNAME, CNI_ARGS and CNI_PATH in its environment and the network config on stdin; on
 * failure it exits non-zero and prints a JSON error ({code, msg, details}) on stdout.
 *
 * `hostNetns` runs the plugin inside another network namespace (`nsenter --net=PATH`): the
 * bridge and the host end of the veth then land in that namespace instead of the root one. In
 * production it is unset and plugins run where the runtime runs, like containerd does; tests
 * and nodes-in-a-netns set it to the node's netns.
 */
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../lib/exec.js';
import { CniPluginError, type JsonObject } from './types.js';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';

export interface PluginRunnerOptions {
  binDirs: string[];
  /** Path of the network namespace to run plugins in (e.g. /var/run/netns/NAME); unset: ours. */
  hostNetns?: string;
  /** Per plugin invocation; default 60 s. */
  timeoutMs?: number;
}

export interface PluginEnv {
  containerId?: string;
  netns?: string;
  ifName?: string;
  args?: [string, string][];
}

export class PluginRunner {
  constructor(private readonly options: PluginRunnerOptions) {}

  /** Finds the binary for a plugin type in the bin dirs (first match wins). */
  async find(type: string): Promise<string> {
    for (const dir of this.options.binDirs) {
      const path = join(dir, type);
      try {
        await access(path, constants.X_OK);
        return path;
      } catch {
        // next dir
      }
    }
    throw new CniPluginError(`CNI plugin "${type}" not found in ${this.options.binDirs.join(':')}`, type, 'find');
  }

  /** Runs the plugin; returns its stdout, or throws CniPluginError with the plugin's message. */
  async exec(command: CniCommand, type: string, netconf: JsonObject, env: PluginEnv = {}): Promise<string> {
    const binary = await this.find(type);
    const pluginEnv: NodeJS.ProcessEnv = {
      ...process.env,
      CNI_COMMAND: command,
      CNI_PATH: this.options.binDirs.join(':'),
    };
    if (command !== 'STATUS' && command !== 'GC' && command !== 'VERSION') {
      pluginEnv.CNI_CONTAINERID = env.containerId ?? '';
      pluginEnv.CNI_NETNS = env.netns ?? '';
      pluginEnv.CNI_IFNAME = env.ifName ?? '';
      pluginEnv.CNI_ARGS = (env.args ?? []).map(([key, value]) => `${key}=${value}`).join(';');
    }
    const argv = this.options.hostNetns ? ['nsenter', `--net=${this.options.hostNetns}`, '--', binary] : [binary];
    const timeoutMs = this.options.timeoutMs ?? 60_000;
    let result;
    try {
      result = await run(argv, { input: JSON.stringify(netconf), env: pluginEnv, timeoutMs, allowFailure: true });
    } catch (error) {
      throw new CniPluginError(`cannot run CNI plugin "${type}" (${command})`, type, command, undefined, undefined, { cause: error });
    }
    if (result.code === 0) return result.stdout;
    throw pluginFailure(type, command, result.stdout, result.stderr, result.code);
  }
}

function pluginFailure(type: string, command: CniCommand, stdout: string, stderr: string, exitCode: number): CniPluginError {
  try {
    const error = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof error.msg === 'string') {
      const code = typeof error.code === 'number' ? error.code : undefined;
      const details = typeof error.details === 'string' && error.details ? `; ${error.details}` : '';
      return new CniPluginError(`CNI plugin "${type}" failed (${command}, code ${code ?? '?'}): ${error.msg}${details}`, type, command, code, typeof error.details === 'string' ? error.details : undefined);
    }
  } catch {
    // not a JSON error: report what it printed
  }
  const text = (stderr.trim() || stdout.trim()).split('\n').slice(-3).join(' | ').slice(0, 400);
  return new CniPluginError(`CNI plugin "${type}" failed (${command}, exit code ${exitCode}): ${text || '(no output)'}`, type, command);
}
