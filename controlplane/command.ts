import type { Runner } from '../bin/cli.js';
import { NotImplementedError } from '../lib/errors.js';

/** `knode controlplane` (issue: control-plane stub). */
export const run: Runner = async () => {
  throw new NotImplementedError();
};
