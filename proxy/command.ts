import type { Runner } from '../bin/cli.js';
import { requireKubeconfig, optionalString } from '../lib/command-options.js';
import { loadKubeProxyConfig } from '../lib/config/kubeproxy.js';
import { NotImplementedError } from '../lib/errors.js';

/** `knode proxy` (issue: the service proxy). Validates its flags and config, then says it is not there yet. */
export const run: Runner = async (options, log) => {
  if (!options.cleanup) requireKubeconfig(options);
  for (const warning of loadKubeProxyConfig(optionalString(options, 'config')).warnings) log.warn(warning);
  throw new NotImplementedError();
};
