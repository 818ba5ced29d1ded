import type { Runner } from '../bin/cli.js';
import { NotImplementedError } from '../lib/errors.js';

/** `knode install-cni` (issue: pod networking). */
export const run: Runner = async () => {
  throw new NotImplementedError();
};
