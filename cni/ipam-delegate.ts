/**
 * Delegated IPAM: when the netconf's `ipam.type` names another plugin (say the reference
 * host-local), it is found in CNI_PATH and executed with the same CNI_* environment and the
 * network config on stdin (SPEC.md, "Delegated plugins (IPAM)"). Its error JSON is passed on.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { run } from '../lib/exec.js';
import { CniError, ErrorCode, parsePrevResult, type Result } from './spec.js';

export function findPlugin(type: string, path: string[]): string {
  if (type.includes('/')) throw new CniError(ErrorCode.invalidConfig, `invalid IPAM plugin type "${type}"`);
  for (const dir of path) {
    const file = join(dir, type);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* next dir */
    }
  }
  throw new CniError(ErrorCode.invalidConfig, `IPAM plugin "${type}" not found in CNI_PATH (${path.join(':') || 'empty'})`);
}

/** Runs the delegate with `verb`; returns its parsed result for ADD, undefined otherwise. */
export async function execDelegate(
  verb: string,
  type: string,
  conf: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  path: string[],
): Promise<Result | undefined> {
  const file = findPlugin(type, path);
  const result = await run([file], { input: JSON.stringify(conf), env: { ...env, CNI_COMMAND: verb }, allowFailure: true, timeoutMs: 60_000 });
  if (result.code !== 0) {
    let parsed: { code?: number; msg?: string; details?: string } = {};
    try {
      parsed = JSON.parse(result.stdout) as typeof parsed;
    } catch {
      /* not JSON */
    }
    throw new CniError(parsed.code ?? ErrorCode.internal, `IPAM plugin ${type} ${verb} failed: ${parsed.msg ?? (result.stderr.trim() || `exit code ${result.code}`)}`, parsed.details);
  }
  if (verb !== 'ADD') return undefined;
  try {
    return parsePrevResult(JSON.parse(result.stdout));
  } catch (error) {
    throw new CniError(ErrorCode.decodeFailure, `IPAM plugin ${type} returned an invalid result`, result.stdout.slice(0, 200), { cause: error });
  }
}
