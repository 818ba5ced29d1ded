/**
 * The node-side pieces of kube-proxy's IPVS mode (pkg/proxy/ipvs): every service IP is bound
 * to the `kube-ipvs0` dummy interface (so that the node accepts packets for it and IPVS sees
 * them in LOCAL_IN), ipset sets list service IP:port pairs for the few fixed iptables rules, and
 * net.ipv4.vs.conntrack=1 keeps IPVS connections in conntrack so that MASQUERADE works.
 * Commands run in the caller's network namespace; all operations are idempotent.
 */
import { writeFile } from 'node:fs/promises';
import { run } from '../../lib/exec.js';
import { ipsetSyncScript, parseIpsetSave, type IpSetSpec } from './ipset.js';

export type { IpSetSpec } from './ipset.js';

export const dummyInterface = 'kube-ipvs0';

export interface IpvsHost {
  /** Makes kube-ipvs0 carry exactly these addresses (/32). */
  bindAddresses(addresses: string[]): Promise<void>;
  /** Creates the sets if missing and makes their content exactly `entries` (by difference, ./ipset.ts). */
  syncSets(sets: IpSetSpec[]): Promise<void>;
  /** Addresses of the node (for NodePorts), without the service addresses on kube-ipvs0. */
  nodeAddresses(): Promise<string[]>;
  prepareKernel(): Promise<void>;
  cleanup(setNames: string[]): Promise<void>;
}

export class CommandIpvsHost implements IpvsHost {
  constructor(private readonly prefix: readonly string[] = []) {}

  private ip(...args: string[]) {
    return run([...this.prefix, 'ip', ...args], { timeoutMs: 30_000 });
  }

  async prepareKernel(): Promise<void> {
    // Per-netns sysctl; kube-proxy sets the same at start (pkg/proxy/ipvs/proxier.go).
    await writeFile('/proc/sys/net/ipv4/vs/conntrack', '1').catch((error: unknown) => {
      throw new Error('cannot set net.ipv4.vs.conntrack=1', { cause: error });
    });
  }

  async bindAddresses(addresses: string[]): Promise<void> {
    const exists = await run([...this.prefix, 'ip', 'link', 'show', dummyInterface], { allowFailure: true });
    if (exists.code !== 0) await this.ip('link', 'add', dummyInterface, 'type', 'dummy');
    await this.ip('link', 'set', dummyInterface, 'up');
    const current = new Set(this.parseAddresses((await this.ip('-o', '-4', 'addr', 'show', 'dev', dummyInterface)).stdout));
    const wanted = new Set(addresses);
    // One `ip -batch` for the whole difference: a process per address takes minutes at 10k.
    const batch = [
      ...[...wanted].filter((address) => !current.has(address)).map((address) => `addr add ${address}/32 dev ${dummyInterface}`),
      ...[...current].filter((address) => !wanted.has(address)).map((address) => `addr del ${address}/32 dev ${dummyInterface}`),
    ];
    if (batch.length > 0) await run([...this.prefix, 'ip', '-batch', '-'], { input: `${batch.join('\n')}\n`, timeoutMs: 60_000 });
  }

  private parseAddresses(text: string): string[] {
    return [...text.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((match) => match[1]!);
  }

  /** Addresses on kube-ipvs0 now (none when it does not exist). */
  async boundAddresses(): Promise<string[]> {
    const result = await run([...this.prefix, 'ip', '-o', '-4', 'addr', 'show', 'dev', dummyInterface], { allowFailure: true });
    return result.code === 0 ? this.parseAddresses(result.stdout) : [];
  }

  async nodeAddresses(): Promise<string[]> {
    const lines = (await this.ip('-o', '-4', 'addr', 'show')).stdout.split('\n');
    return lines.filter((line) => !line.includes(` ${dummyInterface} `) && !/ lo /.test(line)).flatMap((line) => this.parseAddresses(line));
  }

  async syncSets(sets: IpSetSpec[]): Promise<void> {
    const current = parseIpsetSave((await run([...this.prefix, 'ipset', 'save'], { timeoutMs: 60_000 })).stdout);
    const script = ipsetSyncScript(current, sets);
    if (script) await run([...this.prefix, 'ipset', 'restore'], { input: script, timeoutMs: 60_000 });
  }

  async cleanup(setNames: string[]): Promise<void> {
    await run([...this.prefix, 'ip', 'link', 'del', dummyInterface], { allowFailure: true }).catch(() => undefined);
    for (const name of setNames) await run([...this.prefix, 'ipset', 'destroy', name], { allowFailure: true }).catch(() => undefined);
  }
}
