/**
 * On-disk cache of ADD results, like libcni's (<cacheDir>/results/<network>-<container>-<ifname>,
 * kind "cni-cacheV1"): DEL and CHECK need the result of ADD as prevResult and the exact config
 * and arguments ADD was given, also after the runtime restarted or the conf dir changed.
 * Writes are atomic (temp file + rename).
 */
import { writeFileAtomic } from '../../lib/fs.js';
import { errnoCode } from '../../lib/errors.js';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Attachment, CniResult, JsonObject, NetworkConfigList } from '../../lib/cni/types.js';

export interface CacheEntry {
  kind: 'cni-cacheV1';
  containerId: string;
  ifName: string;
  networkName: string;
  /** The conflist used for ADD (without its source path). */
  config: Omit<NetworkConfigList, 'source'>;
  netns: string;
  cniArgs: [string, string][];
  capabilityArgs: JsonObject;
  result: CniResult;
}

function safe(part: string): string {
  if (!/^[\w.-]+$/.test(part)) throw new Error(`invalid CNI cache key part "${part}"`);
  return part;
}

export class ResultCache {
  constructor(readonly cacheDir: string) {}

  private get dir(): string {
    return join(this.cacheDir, 'results');
  }

  path(networkName: string, containerId: string, ifName: string): string {
    return join(this.dir, `${safe(networkName)}-${safe(containerId)}-${safe(ifName)}`);
  }

  async write(list: NetworkConfigList, attachment: Attachment, result: CniResult): Promise<void> {
    const { source: _source, ...config } = list;
    const entry: CacheEntry = {
      kind: 'cni-cacheV1',
      containerId: attachment.containerId,
      ifName: attachment.ifName,
      networkName: list.name,
      config,
      netns: attachment.netns,
      cniArgs: attachment.args,
      capabilityArgs: attachment.capabilityArgs,
      result,
    };
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(this.path(list.name, attachment.containerId, attachment.ifName), JSON.stringify(entry), { mode: 0o600 });
  }

  async read(networkName: string, containerId: string, ifName: string): Promise<CacheEntry | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(networkName, containerId, ifName), 'utf8');
    } catch (error) {
      // Nothing cached for this attachment.
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw new Error(`cannot read the CNI cache entry of ${networkName}/${containerId.slice(0, 12)}/${ifName}`, { cause: error });
    }
    try {
      const entry = JSON.parse(text) as CacheEntry;
      return entry.kind === 'cni-cacheV1' ? entry : undefined;
    } catch {
      // A damaged entry (not JSON: written by hand, or by a crashed writer before writes were atomic) is as none.
      return undefined;
    }
  }

  async remove(networkName: string, containerId: string, ifName: string): Promise<void> {
    await rm(this.path(networkName, containerId, ifName), { force: true });
  }

  /**
   * Every cached attachment of a network; those `skip` names (by the container id and interface
   * in the file name) are not read (GC keeps most attachments: no need to read them every time).
   */
  async list(networkName: string, skip?: (containerId: string, ifName: string) => boolean): Promise<CacheEntry[]> {
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch (error) {
      // No cache directory yet: nothing cached.
      if (errnoCode(error) === 'ENOENT') return [];
      throw new Error(`cannot list the CNI cache ${this.dir}`, { cause: error });
    }
    const entries: CacheEntry[] = [];
    for (const file of files.filter((name) => name.startsWith(`${networkName}-`) && !name.endsWith('.tmp'))) {
      const key = /^([0-9a-f]{64})-([\w.-]+)$/.exec(file.slice(networkName.length + 1));
      if (skip && key && skip(key[1]!, key[2]!)) continue;
      try {
        const entry = JSON.parse(await readFile(join(this.dir, file), 'utf8')) as CacheEntry;
        if (entry.kind === 'cni-cacheV1' && entry.networkName === networkName) entries.push(entry);
      } catch {
        // A damaged entry, or one removed since the listing, is skipped; GC will not see it.
      }
    }
    return entries;
  }
}
