import type { Runner } from '../bin/cli.js';
import { requireKubeconfig, optionalString } from '../lib/command-options.js';
import { loadKubeletConfig } from '../lib/config/kubelet.js';
import { NotImplementedError } from '../lib/errors.js';

/** `knode agent` (issue: the agent). Validates its flags and config, then says it is not there yet. */
export const run: Runner = async (options, log) => {
  requireKubeconfig(options);
  for (const warning of loadKubeletConfig(optionalString(options, 'config')).warnings) log.warn(warning);
  throw new NotImplementedError();
};
