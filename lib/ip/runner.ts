/**
 * The one way knode runs iproute2 and rtnetlink requests: `ip` (one exec, or a batch inside a
 * netns), `bridge` for FDB entries, and in-process rtnetlink for what the netlink package covers
 * (link lookup and delete by name). It is an object handed to whoever needs it, never a module
 * switch: the standalone CNI plugin makes a plain one (one exec per call), the overlay daemon
 * makes one with its long-lived host `ip -batch` session (session.ts) and its pool of warm
 * pod-netns shells (pool.ts), and shares it with the CNI fast path it hosts.
 *
 * Why `ip` at all: a pod netns must be configured from inside it, and a Node process cannot
 * setns(2) one thread; `nsenter --net=PATH ip -batch -` (or `ip -n NAME`) does it in one exec.
 */
import { createRtNetlink, ifla, type RtNetlinkSocket } from 'netlink';
import { run, type ExecResult } from '../exec.js';
import type { NetnsIpPool } from './pool.js';
import type { IpBatchSession } from './session.js';

interface IpRunnerOptions {
  /** A long-lived `ip -force -batch -` in our netns (host-side batches without a process start). */
  session?: IpBatchSession;
  /** Warm shells that enter a pod netns and run `ip -batch -` there. */
  pool?: NetnsIpPool;
  /** Per command; default 20 s. */
  timeoutMs?: number;
}

/** A link as rtnetlink reports it: name, kind from IFLA_LINKINFO ('bridge', 'veth', …; undefined for lo/physical). */
interface LinkKind {
  index: number;
  kind?: string;
  loopback: boolean;
}

const notFound = (message: string) => /ENODEV|No such device/.test(message);

/** "Cannot find device", "does not exist": the object is already gone. */
export const isMissing = (result: ExecResult): boolean => /Cannot find device|does not exist|No such device/.test(result.stderr);
/** "File exists", "Address already assigned": the object is already there. */
export const isExisting = (result: ExecResult): boolean => /File exists|Address already assigned/.test(result.stderr);

export class IpRunner {
  private rtnl?: RtNetlinkSocket;

  constructor(private readonly options: IpRunnerOptions = {}) {}

  /** `ip ARGS` in our netns or in `netns` (`ip -n NAME` for /run/netns, else nsenter). Never rejects on exit codes. */
  ip(args: string[], netns?: string, input?: string): Promise<ExecResult> {
    return run([...ipCommand(netns), ...args], { input, allowFailure: true, timeoutMs: this.options.timeoutMs ?? 20_000 });
  }

  /** `bridge ARGS` (FDB entries; not covered by the netlink package's typed API). */
  bridge(args: string[]): Promise<ExecResult> {
    return run(['bridge', ...args], { allowFailure: true, timeoutMs: this.options.timeoutMs ?? 20_000 });
  }

  /** `ip -force -batch -` in our netns: through the session when there is one. */
  hostBatch(lines: string[]): Promise<ExecResult> {
    return this.options.session ? this.options.session.run(lines) : this.ip(['-force', '-batch', '-'], undefined, lines.join('\n') + '\n');
  }

  /** `ip -batch -` inside a pod netns: through a warm shell when there is a pool. */
  podBatch(netns: string, lines: string[]): Promise<ExecResult> {
    return this.options.pool ? this.options.pool.run(netns, lines) : this.ip(['-batch', '-'], netns, lines.join('\n') + '\n');
  }

  /** A link of our netns by name, over rtnetlink; undefined when there is none. */
  async linkKind(name: string): Promise<LinkKind | undefined> {
    this.rtnl ??= createRtNetlink();
    try {
      const [message] = await this.rtnl.getLink({ index: 0 }, { ifname: name });
      if (!message) return undefined;
      const info = message.attrs.linkinfo ? ifla.parseInfo(message.attrs.linkinfo) : undefined;
      return { index: message.data.index ?? 0, kind: info?.kind, loopback: message.data.flags?.loopback === true };
    } catch (error) {
      if (notFound((error as Error).message)) return undefined;
      throw new Error(`cannot look up link "${name}": ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Deletes a link (both ends for a veth); missing is success. In our netns it is one
   * RTM_DELLINK by name over rtnetlink (no exec on the DEL path), elsewhere `ip link del`.
   */
  async deleteLink(name: string, netns?: string): Promise<void> {
    if (!netns) {
      this.rtnl ??= createRtNetlink();
      try {
        await this.rtnl.delLink({ index: 0 }, { ifname: name });
        return;
      } catch (error) {
        if (notFound((error as Error).message)) return;
        throw new Error(`failed to delete "${name}": ${(error as Error).message}`, { cause: error });
      }
    }
    const result = await this.ip(['link', 'del', name], netns);
    if (result.code !== 0 && !isMissing(result)) throw new Error(`failed to delete "${name}" in ${netns}: ${result.stderr.trim()}`);
  }

  /** Ends the session, the warm shells and the netlink socket. */
  close(): void {
    this.options.session?.close();
    this.options.pool?.close();
    this.rtnl?.socket.close();
    this.rtnl = undefined;
  }
}

/** `ip -n NAME` for namespaces under /run/netns (one exec less), else `nsenter --net=PATH ip`. */
function ipCommand(netns?: string): string[] {
  if (!netns) return ['ip'];
  const named = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(netns);
  return named ? ['ip', '-n', named[1]!] : ['nsenter', `--net=${netns}`, 'ip'];
}
