import type { Runner } from '../bin/cli.js';
import { requireKubeconfig, optionalString } from '../lib/command-options.js';
import { loadNetConf } from '../lib/config/netconf.js';
import { NotImplementedError } from '../lib/errors.js';

/** `knode overlay` (issue: pod networking). Validates its flags and config, then says it is not there yet. */
export const run: Runner = async (options) => {
  requireKubeconfig(options);
  const netConf = optionalString(options, 'netConf');
  if (netConf) loadNetConf(netConf);
  throw new NotImplementedError();
};
