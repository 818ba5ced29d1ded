/**
 * The CNI protocol's data, one definition for both sides of it: the knode plugin (cni/) and the
 * runtime that executes plugins (cri/cni/). Follows SPEC.md of containernetworking/cni
 * (https://github.com/containernetworking/cni/blob/main/SPEC.md): error codes and error JSON,
 * results with interfaces, IP configs, routes and DNS, and the runtime's attachment. Pure.
 */

export type JsonObject = { [key: string]: unknown };

/** Versions knode speaks, plugin and runtime alike; results are converted between them (version.ts). */
export const supportedVersions = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof supportedVersions)[number];

export function isSupportedVersion(version: unknown): version is CniVersion {
  return typeof version === 'string' && (supportedVersions as readonly string[]).includes(version);
}

/** Compares CNI versions ("0.3.1" < "1.0.0"); non-numeric parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((part) => Number(part) || 0);
  const pb = b.split('.').map((part) => Number(part) || 0);
  for (let i = 0; i < 3; i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

/** Well-known error codes (SPEC.md "Error"). */
export const ErrorCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  containerUnknown: 3,
  invalidConfig: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidEnv: 7,
  tryAgainLater: 11,
  pluginNotAvailable: 50,
  limitedConnectivity: 51,
  internal: 999,
} as const;

/** A CNI error: the plugin prints it as error JSON (and exits non-zero); the runtime reads one back. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CniError';
  }
}

/** A plugin run by the runtime failed: which plugin, which verb, and the code it reported (if any). */
export class CniPluginError extends CniError {
  constructor(
    message: string,
    readonly plugin: string,
    readonly command: string,
    /** The code from the plugin's error JSON; undefined when it printed none. */
    readonly cniCode?: number,
    details?: string,
    options?: { cause?: unknown },
  ) {
    super(cniCode ?? ErrorCode.internal, message, details, options);
    this.name = 'CniPluginError';
  }
}

interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** The error JSON for any thrown value: a CniError keeps its code, anything else is 999. */
export function errorJson(error: unknown, cniVersion: string): CniErrorJson {
  const version = isSupportedVersion(cniVersion) ? cniVersion : '1.1.0';
  const code = error instanceof CniError ? error.code : ErrorCode.internal;
  const message = error instanceof Error ? error.message : String(error);
  const json: CniErrorJson = { cniVersion: version, code, msg: message };
  const own = error instanceof CniError ? error.details : undefined;
  const details = own ?? (error instanceof Error ? causeText(error.cause) : undefined);
  if (details) json.details = details;
  return json;
}

function causeText(cause: unknown): string | undefined {
  if (cause === undefined) return undefined;
  return cause instanceof Error ? cause.message : String(cause);
}

interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}
export interface IPConfig {
  /** CIDR form, e.g. "10.22.0.5/24". */
  address: string;
  gateway?: string;
  interface?: number;
}
interface Route {
  dst: string;
  gw?: string;
}
interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the current (1.x) shape; version.ts converts from and to older versions. */
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

/** A result as the runtime keeps it: the 1.x fields plus whatever else the plugin printed. */
export type CniResult = Result & JsonObject;

/** One plugin entry of a conflist ("type" names the binary). */
export interface PluginConf extends JsonObject {
  type: string;
  capabilities?: Record<string, boolean>;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  disableGC?: boolean;
  plugins: PluginConf[];
  /** The file it was loaded from. */
  source: string;
}

/** What one pod attachment is: the runtime's view (libcni RuntimeConf). */
export interface Attachment {
  containerId: string;
  /** Path of the pod network namespace; '' on DEL when it is gone. */
  netns: string;
  ifName: string;
  /** CNI_ARGS, e.g. K8S_POD_NAMESPACE/K8S_POD_NAME/K8S_POD_INFRA_CONTAINER_ID/K8S_POD_UID. */
  args: [string, string][];
  /** Capability arguments offered to plugins that declare the capability (e.g. portMappings). */
  capabilityArgs: JsonObject;
}

/** An entry of GC's "cni.dev/valid-attachments" (SPEC.md, "GC"). */
export interface ValidAttachment {
  containerID: string;
  ifname: string;
}

/** Primary and additional pod IPs (addresses without prefix) from a result. */
export function resultIPs(result: Result | undefined): string[] {
  return (result?.ips ?? []).map((ip) => ip.address.split('/')[0] ?? '').filter((ip) => ip !== '');
}
