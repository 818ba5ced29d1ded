/**
 * Loading the network configuration the way libcni/containerd do: the files of the conf dir
 * with extension .conflist, .conf or .json, sorted by name; the first valid one wins. A single
 * plugin .conf/.json is wrapped into a list of one (libcni ConfListFromConf).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NetworkConfigList, PluginConf } from '../../lib/cni/types.js';

const extensions = ['.conflist', '.conf', '.json'];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkPlugin(plugin: unknown, source: string, index: number): PluginConf {
  if (!isObject(plugin) || typeof plugin.type !== 'string' || plugin.type === '') {
    throw new Error(`${source}: plugin ${index} has no "type"`);
  }
  if (plugin.type.includes('/')) throw new Error(`${source}: plugin type "${plugin.type}" must be a bare name`);
  return plugin as PluginConf;
}

/** Parses the text of one conf file; throws with the file name on anything invalid. */
export function parseNetworkConfig(text: string, source: string): NetworkConfigList {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source}: invalid JSON`, { cause: error });
  }
  if (!isObject(value)) throw new Error(`${source}: not a JSON object`);
  if (typeof value.name !== 'string' || value.name === '') throw new Error(`${source}: no network "name"`);
  const cniVersion = typeof value.cniVersion === 'string' && value.cniVersion !== '' ? value.cniVersion : '0.2.0';
  if (source.endsWith('.conflist') || Array.isArray(value.plugins)) {
    if (!Array.isArray(value.plugins) || value.plugins.length === 0) throw new Error(`${source}: "plugins" must be a non-empty list`);
    return {
      cniVersion,
      name: value.name,
      disableCheck: value.disableCheck === true,
      disableGC: value.disableGC === true,
      plugins: value.plugins.map((plugin, index) => checkPlugin(plugin, source, index)),
      source,
    };
  }
  const plugin = checkPlugin(value, source, 0);
  return { cniVersion, name: value.name, plugins: [plugin], source };
}

/** The first valid network config in `confDir`; throws when there is none. */
export async function loadNetworkConfig(confDir: string): Promise<NetworkConfigList> {
  let files: string[];
  try {
    files = (await readdir(confDir)).filter((file) => extensions.some((ext) => file.endsWith(ext))).sort();
  } catch (error) {
    throw new Error(`cannot read CNI conf dir "${confDir}"`, { cause: error });
  }
  const problems: string[] = [];
  for (const file of files) {
    const source = join(confDir, file);
    try {
      return parseNetworkConfig(await readFile(source, 'utf8'), source);
    } catch (error) {
      problems.push(error instanceof Error ? error.message : String(error));
    }
  }
  const detail = problems.length ? `: ${problems.join('; ')}` : '';
  throw new Error(`no valid CNI network config in "${confDir}"${detail}`);
}
