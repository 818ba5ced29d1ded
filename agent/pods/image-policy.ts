/**
 * imagePullPolicy: the API server's default (SetDefaults_Container: Always when the tag is
 * ":latest" or missing, IfNotPresent otherwise, docs "Images → Image pull policy") and the
 * kubelet's pull decision (pkg/kubelet/images/image_manager.go shouldPullImage; "Never" with a
 * missing image is ErrImageNeverPull).
 */

type ImagePullPolicy = 'Always' | 'IfNotPresent' | 'Never';

/** Splits "registry:5000/repo/name:tag@sha256:..." into its tag and digest parts. */
export function imageTagAndDigest(image: string): { tag?: string; digest?: string } {
  const at = image.indexOf('@');
  const digest = at >= 0 ? image.slice(at + 1) : undefined;
  const name = at >= 0 ? image.slice(0, at) : image;
  const lastPart = name.slice(name.lastIndexOf('/') + 1);
  const colon = lastPart.lastIndexOf(':');
  const tag = colon >= 0 ? lastPart.slice(colon + 1) : undefined;
  return { ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

export function defaultImagePullPolicy(image: string): ImagePullPolicy {
  const { tag, digest } = imageTagAndDigest(image);
  if (digest) return 'IfNotPresent';
  return tag === undefined || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

type PullDecision = { pull: true } | { pull: false } | { pull: false; error: 'ErrImageNeverPull'; message: string };

export function pullDecision(policy: string | undefined, image: string, present: boolean): PullDecision {
  const effective = (policy as ImagePullPolicy | undefined) ?? defaultImagePullPolicy(image);
  if (effective === 'Always') return { pull: true };
  if (present) return { pull: false };
  if (effective === 'Never') {
    return { pull: false, error: 'ErrImageNeverPull', message: `Container image "${image}" is not present with pull policy of Never` };
  }
  return { pull: true };
}
