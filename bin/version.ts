/** `knode version`: knode's own version (package.json) and the Kubernetes version it implements (lib/version.ts). */
import type { Runner } from '../lib/command-options.js';
import { knodeGitVersion, kubernetesVersion, packageVersion } from '../lib/version.js';

export const run: Runner = async () => {
  process.stdout.write(`knode version ${packageVersion()}\nKubernetes version ${kubernetesVersion} (kubelet and API server report ${knodeGitVersion})\n`);
};
