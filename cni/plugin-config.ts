/**
 * Inputs of one plugin call: the network config on stdin, the CNI_* environment and the
 * overlay's subnet.env. Keys follow flannel's CNI plugin where they overlap
 * (https://github.com/flannel-io/cni-plugin#network-configuration-reference): subnetFile,
 * dataDir, ipMasq, mtu, bridge (from the bridge plugin it delegates to), ipam. Pure parsing:
 * every failure is a CniError with the spec's code.
 */
import { readFileSync } from 'node:fs';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { CniError, ErrorCode, isSupportedVersion, supportedVersions, type CniVersion } from '../lib/cni/types.js';
import { assertNetconfBounds } from '../lib/cni/limits.js';
import { cidrContains, isValidCIDR, isValidIP } from '../lib/net.js';

/** flannel's default subnet file (flanneld --subnet-file). */
export const defaultSubnetFile = '/run/flannel/subnet.env';
const defaultDataDir = '/var/lib/cni/knode';

const ipamSchema = z
  .object({
    type: z.string().min(1),
    rangeStart: z.string().refine(isValidIP, 'must be an IP address').optional(),
    rangeEnd: z.string().refine(isValidIP, 'must be an IP address').optional(),
  })
  .loose();

const attachmentSchema = z.object({ containerID: z.string(), ifname: z.string() });

const confSchema = z
  .object({
    cniVersion: z.string(),
    name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'must be a valid network name'),
    type: z.string(),
    subnetFile: z.string().min(1).default(defaultSubnetFile),
    dataDir: z.string().min(1).default(defaultDataDir),
    ipMasq: z.boolean().optional(),
    mtu: z.number().int().min(68).max(65535).optional(),
    bridge: z
      .string()
      .min(1)
      .max(15)
      .regex(/^[^\s/:]+$/, 'must be an interface name')
      .refine((name) => name !== 'lo' && name !== '.' && name !== '..', 'must name a bridge, not the loopback device')
      .default('cni0'),
    hairpinMode: z.boolean().default(true),
    ipam: ipamSchema.optional(),
    prevResult: z.unknown().optional(),
    'cni.dev/valid-attachments': z.array(attachmentSchema).optional(),
  })
  .loose();

export type PluginConf = z.output<typeof confSchema> & { cniVersion: CniVersion; raw: Record<string, unknown> };

/** Parses stdin. Too large or deep → 4, invalid JSON → 6, unsupported cniVersion → 1, bad fields → 4. */
export function parsePluginConf(stdin: string): PluginConf {
  assertNetconfBounds(stdin);
  let data: unknown;
  try {
    data = JSON.parse(stdin);
  } catch (error) {
    throw new CniError(ErrorCode.decodeFailure, 'failed to decode network configuration: invalid JSON', (error as Error).message);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new CniError(ErrorCode.decodeFailure, 'network configuration must be a JSON object');
  }
  const raw = data as Record<string, unknown>;
  const version = raw.cniVersion;
  if (typeof version !== 'string' || !isSupportedVersion(version)) {
    throw new CniError(ErrorCode.incompatibleVersion, `unsupported cniVersion ${JSON.stringify(version)}`, `supported: ${supportedVersions.join(', ')}`);
  }
  const parsed = confSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CniError(ErrorCode.invalidConfig, `invalid network configuration: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return { ...parsed.data, cniVersion: version, raw };
}

export interface CniEnv {
  command: string;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
  path: string[];
}

const verbs = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

/** Which variables each verb needs (SPEC.md, "Parameters"). */
const required: Record<string, (keyof CniEnv)[]> = {
  ADD: ['containerId', 'netns', 'ifname'],
  CHECK: ['containerId', 'netns', 'ifname'],
  DEL: ['containerId', 'ifname'],
};

/** Validates an interface name as the kernel and libcni do: 1–15 bytes, no '/', ':' or whitespace, not . or .. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name) > 15) return 'is longer than 15 characters';
  if (name === '.' || name === '..') return 'is "." or ".."';
  if (/[/:\s]/.test(name)) return 'contains "/", ":" or whitespace';
  return undefined;
}

/** Reads CNI_* variables; missing or malformed ones → code 7. */
export function parseCniEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND ?? '';
  if (!verbs.includes(command)) {
    throw new CniError(ErrorCode.invalidEnv, command ? `unknown CNI_COMMAND "${command}"` : 'CNI_COMMAND is not set');
  }
  // VERSION needs nothing else (SPEC.md "VERSION"): libcni fills the rest with placeholders.
  if (command === 'VERSION') return { command, containerId: '', netns: '', ifname: '', args: '', path: [] };
  const result: CniEnv = {
    command,
    containerId: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
    args: env.CNI_ARGS ?? '',
    path: (env.CNI_PATH ?? '').split(':').filter(Boolean),
  };
  const names: Record<string, string> = { containerId: 'CNI_CONTAINERID', netns: 'CNI_NETNS', ifname: 'CNI_IFNAME' };
  for (const key of required[command] ?? []) {
    if (!result[key]) throw new CniError(ErrorCode.invalidEnv, `${names[key]} is required for ${command}`);
  }
  if (result.containerId && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(result.containerId)) {
    throw new CniError(ErrorCode.invalidEnv, `invalid CNI_CONTAINERID "${result.containerId}"`);
  }
  if (result.ifname) {
    const problem = interfaceNameProblem(result.ifname);
    if (problem) throw new CniError(ErrorCode.invalidEnv, `invalid CNI_IFNAME "${result.ifname}": ${problem}`);
  }
  if (result.netns && !result.netns.startsWith('/')) {
    throw new CniError(ErrorCode.invalidEnv, `CNI_NETNS must be an absolute path, got "${result.netns}"`);
  }
  return result;
}

/** The lease written by the overlay daemon (flannel's subnet.env). */
export interface SubnetLease {
  network: string;
  /** The node's pod subnet, canonical (10.244.1.0/24). */
  subnet: string;
  /** The bridge's address: the subnet's first host (10.244.1.1). */
  gateway: string;
  prefixLength: number;
  mtu?: number;
  ipMasq?: boolean;
}

/** Parses subnet.env text. A subnet outside FLANNEL_NETWORK → code 4. */
export function parseSubnetEnv(text: string, file: string): SubnetLease {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) values.set(match[1]!, match[2]!.trim());
  }
  const network = values.get('FLANNEL_NETWORK');
  const subnet = values.get('FLANNEL_SUBNET');
  if (!network || !isValidCIDR(network)) throw new CniError(ErrorCode.invalidConfig, `${file}: FLANNEL_NETWORK missing or not a CIDR`);
  if (!subnet || !isValidCIDR(subnet)) throw new CniError(ErrorCode.invalidConfig, `${file}: FLANNEL_SUBNET missing or not a CIDR`);
  const [address, bits] = ipaddr.parseCIDR(subnet);
  if (address.kind() !== 'ipv4') throw new CniError(ErrorCode.invalidConfig, `${file}: only IPv4 subnets are supported`);
  if (!cidrContains(network, subnet)) {
    throw new CniError(ErrorCode.invalidConfig, `${file}: FLANNEL_SUBNET ${subnet} is not inside FLANNEL_NETWORK ${network}`);
  }
  const base = ipaddr.IPv4.networkAddressFromCIDR(subnet);
  const gateway = ipaddr.fromByteArray(nextBytes(base.toByteArray())).toString();
  const mtuText = values.get('FLANNEL_MTU');
  const mtu = mtuText === undefined ? undefined : Number(mtuText);
  if (mtu !== undefined && (!Number.isInteger(mtu) || mtu < 68)) throw new CniError(ErrorCode.invalidConfig, `${file}: bad FLANNEL_MTU "${mtuText}"`);
  const ipMasqText = values.get('FLANNEL_IPMASQ');
  return {
    network,
    subnet: `${base.toString()}/${bits}`,
    gateway,
    prefixLength: bits,
    mtu,
    ipMasq: ipMasqText === undefined ? undefined : ipMasqText === 'true',
  };
}

function nextBytes(bytes: number[]): number[] {
  const out = [...bytes];
  for (let i = out.length - 1; i >= 0; i--) {
    out[i] = (out[i]! + 1) & 0xff;
    if (out[i] !== 0) break;
  }
  return out;
}

/** Reads subnetFile. Missing file → code 11: the overlay daemon has not written its lease yet. */
export function loadSubnetLease(file: string): SubnetLease {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CniError(ErrorCode.tryAgainLater, `cannot read ${file}: is the overlay daemon (knode overlay) running?`, (error as Error).message, { cause: error });
  }
  return parseSubnetEnv(text, file);
}
