import type { Runner } from './cli.js';
import { NotImplementedError } from '../lib/errors.js';

/** `knode up` (issue: one node for real). */
export const run: Runner = async () => {
  throw new NotImplementedError();
};
