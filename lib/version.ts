/**
 * The Kubernetes version knode implements: one constant for the kubelet version in node status,
 * the probe User-Agent, the control plane's /version and OpenAPI info, and `knode version`.
 * (v1.32: the kubectl on the build machine and the API surface the tests check against.)
 */
import { readFileSync } from 'node:fs';

export const kubernetesMajor = '1';
export const kubernetesMinor = '32';
export const kubernetesVersion = `v${kubernetesMajor}.${kubernetesMinor}.0`;
/** As the Kubernetes components report it (gitVersion), with knode's build suffix. */
export const knodeGitVersion = `${kubernetesVersion}-knode`;

/** knode's own version, from package.json (dist/lib/ or lib/ under the repository). */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    // Run from source (lib/version.ts): package.json is one level up.
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  }
}
