/**
 * The kubelet flags operators use besides the config file, applied over the KubeletConfiguration
 * (flags win, as the kubelet's): --node-labels, --register-with-taints, --node-ip (--v is
 * lib/log.ts klogLevel). Bad values are a ConfigError naming the flag.
 */
import { isIP } from 'node:net';
import { ConfigError } from '../lib/errors.js';
import type { KubeletConfiguration } from '../lib/config/kubelet.js';
import { checkLabels } from '../controlplane/validation.js';

type Taint = KubeletConfiguration['registerWithTaints'][number];
const effects: readonly string[] = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] satisfies Taint['effect'][];
const maxFlagLength = 16_384;

/**
 * Labels the kubelet may set on its own Node in the kubernetes.io / k8s.io namespaces
 * (k8s.io/kubelet/pkg/apis/well_known_labels.go KubeletLabels, KubeletLabelNamespaces); any other
 * label there is refused at start ("unknown 'kubernetes.io' or 'k8s.io' labels specified with
 * --node-labels"), as the NodeRestriction admission plugin would refuse it.
 */
const kubeletLabels = new Set([
  'kubernetes.io/hostname',
  'kubernetes.io/os',
  'kubernetes.io/arch',
  'beta.kubernetes.io/os',
  'beta.kubernetes.io/arch',
  'beta.kubernetes.io/instance-type',
  'node.kubernetes.io/instance-type',
  'topology.kubernetes.io/zone',
  'topology.kubernetes.io/region',
  'failure-domain.beta.kubernetes.io/zone',
  'failure-domain.beta.kubernetes.io/region',
]);
const kubeletLabelNamespaces = ['kubelet.kubernetes.io', 'node.kubernetes.io'];

function isRestricted(key: string): boolean {
  const prefix = key.includes('/') ? key.slice(0, key.indexOf('/')) : '';
  const inK8s = ['kubernetes.io', 'k8s.io'].some((ns) => prefix === ns || prefix.endsWith(`.${ns}`));
  if (!inK8s || kubeletLabels.has(key)) return false;
  return !kubeletLabelNamespaces.some((ns) => prefix === ns || prefix.endsWith(`.${ns}`));
}

function pairs(text: string, flag: string): string[] {
  if (text.length > maxFlagLength) throw new ConfigError(`flag ${flag}: longer than ${maxFlagLength} characters`);
  return text.split(',').map((part) => part.trim()).filter(Boolean);
}

/** "k1=v1,k2=v2" → labels (kubelet --node-labels). */
export function parseNodeLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of pairs(text, '--node-labels')) {
    const index = part.indexOf('=');
    if (index <= 0) throw new ConfigError(`flag --node-labels: "${part}" is not key=value`);
    labels[part.slice(0, index)] = part.slice(index + 1);
  }
  const causes = checkLabels('--node-labels', labels);
  if (causes.length > 0) throw new ConfigError(`flag --node-labels: invalid label ${JSON.stringify(causes[0]!.message ?? '')}`);
  const restricted = Object.keys(labels).filter(isRestricted);
  if (restricted.length > 0) {
    throw new ConfigError(`flag --node-labels: unknown 'kubernetes.io' or 'k8s.io' labels specified: ${restricted.join(', ')} (allowed: ${[...kubeletLabels].join(', ')}, and the ${kubeletLabelNamespaces.join(' and ')} namespaces)`);
  }
  return labels;
}

/** "key=value:Effect,key:Effect" → taints (kubelet --register-with-taints, kubectl taint syntax). */
export function parseTaints(text: string): Taint[] {
  return pairs(text, '--register-with-taints').map((part) => {
    const match = /^([^=:]+)(?:=([^:]*))?:([A-Za-z]+)$/.exec(part);
    if (!match) throw new ConfigError(`flag --register-with-taints: "${part}" is not key[=value]:Effect`);
    const [, key, value, effect] = match;
    if (!effects.includes(effect!)) throw new ConfigError(`flag --register-with-taints: effect "${effect}" of "${part}" is not one of ${effects.join(', ')}`);
    const causes = checkLabels('--register-with-taints', { [key!]: value ?? '' });
    if (causes.length > 0) throw new ConfigError(`flag --register-with-taints: invalid taint "${part}": ${causes[0]!.message ?? ''}`);
    return { key: key!, ...(value ? { value } : {}), effect: effect as Taint['effect'] };
  });
}

/** A node IP from --node-ip: one IPv4 or IPv6 address (dual-stack pairs are not supported). */
export function parseNodeIP(text: string): string {
  if (isIP(text) === 0) throw new ConfigError(`flag --node-ip: "${text}" is not an IP address`);
  return text;
}

/** The config with the flags applied: flag labels/taints add to (and override) the file's. */
export function applyAgentFlags(config: KubeletConfiguration, flags: { nodeLabels?: string | undefined; registerWithTaints?: string | undefined }): KubeletConfiguration {
  const labels = flags.nodeLabels !== undefined ? parseNodeLabels(flags.nodeLabels) : {};
  const taints = flags.registerWithTaints !== undefined ? parseTaints(flags.registerWithTaints) : undefined;
  return {
    ...config,
    nodeLabels: { ...config.nodeLabels, ...labels },
    // As the kubelet: the flag replaces the file's list.
    registerWithTaints: taints ?? config.registerWithTaints,
  };
}
