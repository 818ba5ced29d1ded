/**
 * Types of the CNI runtime side (https://github.com/containernetworking/cni/blob/main/SPEC.md):
 * network configuration lists, results (1.x, with 0.3/0.4 and 0.1/0.2 converted) and errors.
 */

export type JsonObject = { [key: string]: unknown };

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

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
}

export interface CniIPConfig {
  /** CIDR form, e.g. "10.22.0.5/24". */
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniResult extends JsonObject {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIPConfig[];
  routes?: CniRoute[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

/** CNI error (the JSON a plugin prints on stdout when it fails). */
export class CniPluginError extends Error {
  constructor(
    message: string,
    readonly plugin: string,
    readonly command: string,
    readonly cniCode?: number,
    readonly details?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CniPluginError';
  }
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

export interface ValidAttachment {
  containerID: string;
  ifname: string;
}

/** Compares CNI versions ("0.3.1" < "1.0.0"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((part) => Number(part) || 0);
  const pb = b.split('.').map((part) => Number(part) || 0);
  for (let i = 0; i < 3; i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parses a plugin's ADD output into a 1.x-shaped result. 0.3.x/0.4.0 results have the same
 * shape apart from "version" on ips; 0.1/0.2 results ({ip4:{ip,gateway}}) are converted.
 */
export function parseResult(text: string, plugin: string): CniResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const excerpt = text.trim().slice(0, 200);
    throw new CniPluginError(`CNI plugin "${plugin}" printed invalid JSON on ADD: ${excerpt || '(empty output)'}`, plugin, 'ADD', undefined, undefined, { cause: error });
  }
  if (!isObject(value)) throw new CniPluginError(`CNI plugin "${plugin}" printed a result that is not a JSON object`, plugin, 'ADD');
  const version = typeof value.cniVersion === 'string' ? value.cniVersion : '0.2.0';
  if (compareVersions(version, '0.3.0') < 0) {
    const ips: CniIPConfig[] = [];
    for (const key of ['ip4', 'ip6']) {
      const entry = value[key];
      if (isObject(entry) && typeof entry.ip === 'string') {
        ips.push({ address: entry.ip, ...(typeof entry.gateway === 'string' ? { gateway: entry.gateway } : {}) });
      }
    }
    return { cniVersion: version, ips, interfaces: [] };
  }
  if (value.ips !== undefined && !Array.isArray(value.ips)) {
    throw new CniPluginError(`CNI plugin "${plugin}" printed a result whose "ips" is not a list`, plugin, 'ADD');
  }
  return value as CniResult;
}

/** Primary and additional pod IPs (addresses without prefix) from a result. */
export function resultIPs(result: CniResult | undefined): string[] {
  return (result?.ips ?? []).map((ip) => ip.address.split('/')[0] ?? '').filter((ip) => ip !== '');
}
