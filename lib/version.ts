/**
 * The Kubernetes version knode implements: one constant for the kubelet version in node status,
 * the probe User-Agent, the control plane's /version and OpenAPI info, and `knode version`.
 * (v1.32: the kubectl on the build machine and the API surface the tests check against.)
 */
export const kubernetesMajor = '1';
export const kubernetesMinor = '32';
export const kubernetesVersion = `v${kubernetesMajor}.${kubernetesMinor}.0`;
/** As the Kubernetes components report it (gitVersion), with knode's build suffix. */
export const knodeGitVersion = `${kubernetesVersion}-knode`;
