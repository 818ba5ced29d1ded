/**
 * CNI version handling for both sides (SPEC.md "Version considerations", libcni's
 * pkg/types/{020,040,100}): which verbs a version defines, the VERSION answer, results written in
 * the version asked for and results of any version (0.1.0 up to 1.1.0) read into the 1.x shape.
 * Pure.
 */
import { CniError, CniPluginError, ErrorCode, compareVersions, supportedVersions, type CniResult, type CniVersion, type IPConfig, type JsonObject, type Result } from './types.js';

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `CNI_COMMAND=VERSION` output. */
export function versionInfo(): { cniVersion: CniVersion; supportedVersions: CniVersion[] } {
  return { cniVersion: '1.1.0', supportedVersions: [...supportedVersions] };
}

/** CHECK exists since 0.4.0; GC and STATUS since 1.1.0 (SPEC.md). */
export function verbAllowed(verb: string, version: string): boolean {
  if (verb === 'CHECK') return compareVersions(version, '0.4.0') >= 0;
  if (verb === 'GC' || verb === 'STATUS') return compareVersions(version, '1.1.0') >= 0;
  return true;
}

/**
 * Writes a result in the version the runtime asked for. 1.0.0 dropped `ips[].version`; 0.3.x/0.4.0
 * require it ("4" or "6") and do not know `interfaces[].mtu`.
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

/** 0.1.0/0.2.0 results ({ip4: {ip, gateway}, ip6: …}) as 1.x IP configs. */
function legacyIps(value: JsonObject): IPConfig[] {
  const ips: IPConfig[] = [];
  for (const key of ['ip4', 'ip6']) {
    const entry = value[key];
    if (isObject(entry) && typeof entry.ip === 'string') {
      ips.push({ address: entry.ip, ...(typeof entry.gateway === 'string' ? { gateway: entry.gateway } : {}) });
    }
  }
  return ips;
}

/**
 * Reads a prevResult (any version) into the 1.x shape the plugin works with: 0.1/0.2 converted,
 * `ips[].version` dropped. Throws code 6 when it is not a result.
 */
export function parsePrevResult(value: unknown): Result | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw new CniError(ErrorCode.decodeFailure, 'prevResult must be an object');
  const cniVersion = typeof value.cniVersion === 'string' ? value.cniVersion : '0.2.0';
  if (compareVersions(cniVersion, '0.3.0') < 0) return { cniVersion, ips: legacyIps(value), interfaces: [] };
  for (const key of ['interfaces', 'ips', 'routes'] as const) {
    if (value[key] !== undefined && !Array.isArray(value[key])) throw new CniError(ErrorCode.decodeFailure, `prevResult.${key} must be a list`);
  }
  const ips = Array.isArray(value.ips)
    ? value.ips.map((ip: unknown) => {
        if (!isObject(ip) || typeof ip.address !== 'string') throw new CniError(ErrorCode.decodeFailure, 'prevResult.ips[] needs an "address"');
        const { version: _v, ...rest } = ip;
        return rest as unknown as IPConfig;
      })
    : undefined;
  return {
    cniVersion,
    interfaces: value.interfaces as Result['interfaces'],
    ips,
    routes: value.routes as Result['routes'],
    dns: isObject(value.dns) ? (value.dns as Result['dns']) : undefined,
  };
}

/**
 * Parses a plugin's ADD output (runtime side). 0.3.x/0.4.0/1.x results are kept as printed (the
 * next plugin of the list gets them as prevResult unchanged, as libcni passes them on);
 * 0.1/0.2 results are converted.
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
  if (compareVersions(version, '0.3.0') < 0) return { cniVersion: version, ips: legacyIps(value), interfaces: [] };
  if (value.ips !== undefined && !Array.isArray(value.ips)) {
    throw new CniPluginError(`CNI plugin "${plugin}" printed a result whose "ips" is not a list`, plugin, 'ADD');
  }
  return value as CniResult;
}
