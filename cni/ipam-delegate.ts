/**
 * Delegated IPAM: when the netconf's `ipam.type` names another plugin (say the reference
 * host-local), it is found in CNI_PATH and executed with the same CNI_* environment and the
 * network config on stdin (SPEC.md, "Delegated plugins (IPAM)"); its error JSON is passed on
 * with its code (lib/cni/invoke.ts).
 */
import { invokePlugin, type CniCommand } from '../lib/cni/invoke.js';
import { CniError, ErrorCode, type Result } from '../lib/cni/types.js';
import { parsePrevResult } from '../lib/cni/version.js';

/** Runs the delegate with `verb`; returns its parsed result for ADD, undefined otherwise. */
export async function execDelegate(verb: CniCommand, type: string, conf: Record<string, unknown>, env: NodeJS.ProcessEnv, path: string[]): Promise<Result | undefined> {
  const stdout = await invokePlugin(verb, type, conf, { binDirs: path, env });
  if (verb !== 'ADD') return undefined;
  try {
    return parsePrevResult(JSON.parse(stdout));
  } catch (error) {
    throw new CniError(ErrorCode.decodeFailure, `IPAM plugin ${type} returned an invalid result`, stdout.slice(0, 200), { cause: error });
  }
}
