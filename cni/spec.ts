/**
 * The CNI protocol as a plugin sees it (https://github.com/containernetworking/cni/blob/main/SPEC.md):
 * error codes, version negotiation and the shape of results per cniVersion. Pure: no I/O.
 */

/** Versions this plugin speaks. Results are written in the version the config asks for. */
export const supportedVersions = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof supportedVersions)[number];

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

/** An error the plugin reports as CNI error JSON on stdout (and exits non-zero). */
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

export function isSupportedVersion(version: string): version is CniVersion {
  return (supportedVersions as readonly string[]).includes(version);
}

export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** The error JSON for any thrown value: CniError keeps its code, anything else is 999. */
export function errorJson(error: unknown, cniVersion: string): CniErrorJson {
  const version = isSupportedVersion(cniVersion) ? cniVersion : '1.1.0';
  if (error instanceof CniError) {
    const json: CniErrorJson = { cniVersion: version, code: error.code, msg: error.message };
    const details = error.details ?? causeText(error.cause);
    if (details) json.details = details;
    return json;
  }
  const message = error instanceof Error ? error.message : String(error);
  const json: CniErrorJson = { cniVersion: version, code: ErrorCode.internal, msg: message };
  const details = error instanceof Error ? causeText(error.cause) : undefined;
  if (details) json.details = details;
  return json;
}

function causeText(cause: unknown): string | undefined {
  if (cause === undefined) return undefined;
  return cause instanceof Error ? cause.message : String(cause);
}

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}
export interface IPConfig {
  address: string;
  gateway?: string;
  interface?: number;
}
export interface Route {
  dst: string;
  gw?: string;
}
export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the current (1.x) shape; converted on output for older versions. */
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

/**
 * Writes a result in the version the runtime asked for. 1.0.0 dropped `ips[].version`; 0.3.x/0.4.0
 * require it ("4" or "6") and do not know `interfaces[].mtu` (SPEC.md, "Version considerations").
 */
export function formatResult(result: Result, version: CniVersion): Record<string, unknown> {
  if (version.startsWith('1.')) return { ...result, cniVersion: version, dns: result.dns ?? {} };
  return {
    cniVersion: version,
    interfaces: (result.interfaces ?? []).map(({ mtu: _mtu, ...rest }) => rest),
    ips: (result.ips ?? []).map((ip) => ({ version: ip.address.includes(':') ? '6' : '4', ...ip })),
    routes: result.routes ?? [],
    dns: result.dns ?? {},
  };
}

/**
 * Reads a prevResult (any supported version) into the 1.x shape: drops `ips[].version`.
 */
export function parsePrevResult(value: unknown): Result | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object') throw new CniError(ErrorCode.decodeFailure, 'prevResult must be an object');
  const raw = value as Record<string, unknown>;
  const ips = Array.isArray(raw.ips)
    ? (raw.ips as Record<string, unknown>[]).map((ip) => {
        const { version: _v, ...rest } = ip;
        return rest as unknown as IPConfig;
      })
    : undefined;
  return {
    cniVersion: String(raw.cniVersion ?? ''),
    interfaces: raw.interfaces as Interface[] | undefined,
    ips,
    routes: raw.routes as Route[] | undefined,
    dns: raw.dns as DNS | undefined,
  };
}

/** `CNI_COMMAND=VERSION` output. */
export function versionInfo(): { cniVersion: CniVersion; supportedVersions: CniVersion[] } {
  return { cniVersion: '1.1.0', supportedVersions: [...supportedVersions] };
}

/** CHECK exists since 0.4.0; GC and STATUS since 1.1.0 (SPEC.md). */
export function verbAllowed(verb: string, version: CniVersion): boolean {
  const rank = supportedVersions.indexOf(version);
  if (verb === 'CHECK') return rank >= supportedVersions.indexOf('0.4.0');
  if (verb === 'GC' || verb === 'STATUS') return rank >= supportedVersions.indexOf('1.1.0');
  return true;
}
