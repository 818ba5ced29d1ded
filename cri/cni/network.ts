/**
 * Network list operations of the runtime side of CNI, in the order libcni uses
 * (libcni/api.go AddNetworkList, DelNetworkList, CheckNetworkList, GCNetworkList, GetStatusNetworkList):
 * - ADD runs the plugins in order, each getting the previous one's result as prevResult; the
 *   last result is cached on disk. If a plugin fails, the plugins are run with DEL (reverse
 *   order) so that nothing is left half set up, and the error is returned.
 * - DEL runs them in reverse, with the cached config, arguments and result when there is one.
 * - CHECK (cniVersion >= 0.4.0, unless disableCheck) runs them in order with the cached result.
 * - GC deletes cached attachments that are no longer valid and, for cniVersion >= 1.1.0, runs
 *   GC on each plugin with "cni.dev/valid-attachments".
 * - STATUS (cniVersion >= 1.1.0) runs STATUS on each plugin; older versions are ready when the
 *   config loads and the plugins are found.
 * Capability arguments go into "runtimeConfig" only for plugins that declare the capability
 * (CONVENTIONS.md "Dynamic plugin specific fields").
 */
import { readdir } from 'node:fs/promises';
import { describeError, errnoCode } from '../../lib/errors.js';
import { ResultCache, type CacheEntry } from './cache.js';
import { loadNetworkConfig } from './conflist.js';
import { PluginRunner, type CniCommand, type PluginRunnerOptions } from '../../lib/cni/invoke.js';
import { parseResult } from '../../lib/cni/version.js';
import {
  compareVersions,
  type Attachment,
  type CniResult,
  type JsonObject,
  type NetworkConfigList,
  type PluginConf,
  type ValidAttachment,
} from '../../lib/cni/types.js';

interface CniNetworkOptions extends PluginRunnerOptions {
  /** Default /etc/cni/net.d. */
  confDir: string;
  /** Default /var/lib/cni (results go to <cacheDir>/results). */
  cacheDir: string;
  /**
   * Also bring up "lo" in the pod with the `loopback` plugin (containerd runs it as its own
   * network before the pod network). Docker's "none" network already has lo up; this makes the
   * runtime independent of that.
   */
  loopback?: boolean;
}

const loopbackList: NetworkConfigList = { cniVersion: '1.0.0', name: 'cni-loopback', plugins: [{ type: 'loopback' }], source: '(builtin)' };

/** What the Docker runtime needs from pod networking (a fake can stand in, in unit tests). */
export interface PodNetwork {
  setUp(attachment: Attachment): Promise<CniResult>;
  /** Idempotent: without a cached ADD and without a netns there is nothing to do. */
  tearDown(attachment: Attachment): Promise<void>;
  check(attachment: Attachment): Promise<void>;
  /** The cached ADD result of an attachment. */
  result(containerId: string, ifName: string): Promise<CniResult | undefined>;
  /**
   * Releases cached attachments not in valid. inUse, when given, is asked again right before an
   * attachment is released (a sandbox created after valid was listed keeps its network).
   */
  gc(valid: ValidAttachment[], inUse?: (containerId: string) => Promise<boolean>): Promise<void>;
  /** Throws when the network is not ready (no config, missing plugin, STATUS error). */
  status(): Promise<void>;
}

function pluginConf(list: Pick<NetworkConfigList, 'name' | 'cniVersion'>, plugin: PluginConf, capabilityArgs: JsonObject, prevResult?: CniResult): JsonObject {
  const conf: JsonObject = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  const runtimeConfig: JsonObject = {};
  for (const [capability, enabled] of Object.entries(plugin.capabilities ?? {})) {
    if (enabled && capabilityArgs[capability] !== undefined) runtimeConfig[capability] = capabilityArgs[capability];
  }
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  if (prevResult) conf.prevResult = prevResult;
  return conf;
}

export class CniNetwork implements PodNetwork {
  private readonly runner: PluginRunner;
  readonly cache: ResultCache;

  constructor(private readonly options: CniNetworkOptions) {
    this.runner = new PluginRunner(options);
    this.cache = new ResultCache(options.cacheDir);
  }

  config(): Promise<NetworkConfigList> {
    return loadNetworkConfig(this.options.confDir);
  }

  private exec(command: CniCommand, list: Pick<NetworkConfigList, 'name' | 'cniVersion'>, plugin: PluginConf, attachment: Attachment, prevResult?: CniResult): Promise<string> {
    const conf = pluginConf(list, plugin, attachment.capabilityArgs, prevResult);
    return this.runner.exec(command, plugin.type, conf, attachment);
  }

  async setUp(attachment: Attachment): Promise<CniResult> {
    const list = await this.config();
    const lo: Attachment = { ...attachment, ifName: 'lo', capabilityArgs: {} };
    if (this.options.loopback) await this.addList(loopbackList, lo);
    try {
      return await this.addList(list, attachment);
    } catch (error) {
      // Rollback of loopback: the ADD's own error is the one that matters (and is thrown); a
      // loopback left behind is released with the sandbox's teardown.
      if (this.options.loopback) await this.tearDownCached(loopbackList.name, lo).catch(() => undefined);
      throw error;
    }
  }

  private async addList(list: NetworkConfigList, attachment: Attachment): Promise<CniResult> {
    let prev: CniResult | undefined;
    try {
      for (const plugin of list.plugins) {
        prev = parseResult(await this.exec('ADD', list, plugin, attachment, prev), plugin.type);
      }
      if (!prev) throw new Error(`network "${list.name}" produced no result`);
      await this.cache.write(list, attachment, prev);
      return prev;
    } catch (error) {
      await this.delList(list, attachment, prev, true);
      await this.cache.remove(list.name, attachment.containerId, attachment.ifName);
      throw new Error(`CNI ADD of network "${list.name}" for container ${attachment.containerId.slice(0, 12)} failed: ${describeError(error)}`, { cause: error });
    }
  }

  /** DEL in reverse order; stops at the first error unless bestEffort (rollback of a failed ADD). */
  private async delList(list: Pick<NetworkConfigList, 'name' | 'cniVersion' | 'plugins'>, attachment: Attachment, prevResult?: CniResult, bestEffort = false): Promise<void> {
    const withPrev = compareVersions(list.cniVersion, '0.4.0') >= 0 ? prevResult : undefined;
    for (const plugin of [...list.plugins].reverse()) {
      try {
        await this.exec('DEL', list, plugin, attachment, withPrev);
      } catch (error) {
        if (!bestEffort) throw error;
      }
    }
  }

  private fromCache(entry: CacheEntry, attachment: Attachment): { list: CacheEntry['config']; attachment: Attachment } {
    return {
      list: entry.config,
      attachment: { ...attachment, args: entry.cniArgs, capabilityArgs: entry.capabilityArgs },
    };
  }

  async tearDown(attachment: Attachment): Promise<void> {
    // No usable network config any more (removed or broken since ADD): the cache alone has what DEL needs.
    const list = await this.config().catch(() => undefined);
    const names = new Set([list?.name, ...(await this.cachedNetworks(attachment))].filter((name): name is string => !!name));
    let done = false;
    for (const name of names) done = (await this.tearDownCached(name, attachment)) || done;
    if (!done && list && attachment.netns) await this.delList(list, attachment);
    await this.tearDownCached(loopbackList.name, { ...attachment, ifName: 'lo', capabilityArgs: {} });
  }

  /** DEL with the cached config/args/result of one network; false when nothing is cached. */
  private async tearDownCached(name: string, attachment: Attachment): Promise<boolean> {
    const entry = await this.cache.read(name, attachment.containerId, attachment.ifName);
    if (!entry) return false;
    const cached = this.fromCache(entry, attachment);
    await this.delList(cached.list, cached.attachment, entry.result);
    await this.cache.remove(name, attachment.containerId, attachment.ifName);
    return true;
  }

  private async cachedNetworks(attachment: Attachment): Promise<string[]> {
    const suffix = `-${attachment.containerId}-${attachment.ifName}`;
    try {
      return (await readdir(`${this.options.cacheDir}/results`)).filter((file) => file.endsWith(suffix)).map((file) => file.slice(0, -suffix.length));
    } catch (error) {
      // No results directory yet: nothing cached.
      if (errnoCode(error) === 'ENOENT') return [];
      throw new Error(`cannot list the CNI cache ${this.options.cacheDir}/results`, { cause: error });
    }
  }

  async check(attachment: Attachment): Promise<void> {
    const list = await this.config();
    if (list.disableCheck || compareVersions(list.cniVersion, '0.4.0') < 0) return;
    const entry = await this.cache.read(list.name, attachment.containerId, attachment.ifName);
    if (!entry) throw new Error(`no cached CNI result of network "${list.name}" for container ${attachment.containerId.slice(0, 12)}`);
    for (const plugin of list.plugins) await this.exec('CHECK', list, plugin, attachment, entry.result);
  }

  async result(containerId: string, ifName: string): Promise<CniResult | undefined> {
    // No usable network config: the cached entries of any network still answer.
    const list = await this.config().catch(() => undefined);
    // The current network's entry first: scanning the results dir costs O(pods) per call.
    const current = list ? await this.cache.read(list.name, containerId, ifName) : undefined;
    if (current) return current.result;
    const cached = await this.cachedNetworks({ containerId, ifName, netns: '', args: [], capabilityArgs: {} });
    for (const name of cached) {
      const entry = await this.cache.read(name, containerId, ifName);
      if (entry) return entry.result;
    }
    return undefined;
  }

  async gc(valid: ValidAttachment[], inUse?: (containerId: string) => Promise<boolean>): Promise<void> {
    const list = await this.config();
    const keep = new Set(valid.map((attachment) => `${attachment.containerID}/${attachment.ifname}`));
    const errors: unknown[] = [];
    const keepContainers = new Set(valid.map((attachment) => attachment.containerID));
    const loopbacks = await this.cache.list(loopbackList.name, (containerId) => keepContainers.has(containerId));
    for (const entry of [...(await this.cache.list(list.name, (containerId, ifName) => keep.has(`${containerId}/${ifName}`))), ...loopbacks]) {
      if (keep.has(`${entry.containerId}/${entry.ifName}`)) continue;
      if (inUse && (await inUse(entry.containerId))) continue;
      const attachment: Attachment = { containerId: entry.containerId, ifName: entry.ifName, netns: '', args: entry.cniArgs, capabilityArgs: entry.capabilityArgs };
      try {
        await this.delList(entry.config, attachment, entry.result);
        await this.cache.remove(entry.networkName, entry.containerId, entry.ifName);
      } catch (error) {
        errors.push(error);
      }
    }
    if (!list.disableGC && compareVersions(list.cniVersion, '1.1.0') >= 0) {
      for (const plugin of list.plugins) {
        const conf = { ...pluginConf(list, plugin, {}), 'cni.dev/valid-attachments': valid };
        await this.runner.exec('GC', plugin.type, conf).catch((error: unknown) => errors.push(error));
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `CNI GC of network "${list.name}" had ${errors.length} error(s)`);
  }

  async status(): Promise<void> {
    const list = await this.config();
    for (const plugin of list.plugins) await this.runner.find(plugin.type);
    if (compareVersions(list.cniVersion, '1.1.0') < 0) return;
    for (const plugin of list.plugins) await this.runner.exec('STATUS', plugin.type, pluginConf(list, plugin, {}));
  }
}
