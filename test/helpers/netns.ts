/**
 * Network namespaces for tests, under the network safety rule of docs/architecture.md ("Testing"):
 * every interface, address and route is made inside a netns this helper created (`ip -n NS`
 * or `ip netns exec NS`), never in the root namespace, and no default route is ever added.
 * The guard below rejects any command that is not scoped to one of our own namespaces, so a
 * bug in a test fails loudly instead of touching the machine's network.
 *
 * A "node" is a netns with loopback up; a "pod" is another netns joined to its node by a veth
 * pair (as a CNI plugin would), and `link()` joins two nodes by a veth "underlay".
 */
import { randomBytes } from 'node:crypto';
import { run as realRun, type ExecOptions, type ExecResult } from '../../lib/exec.js';

export type CommandRunner = (command: string[], options?: ExecOptions) => Promise<ExecResult>;

/** Every namespace the helpers create starts with this, so stale ones are easy to find. */
export const testNetnsPrefix = 'knt-';

export class NetworkSafetyError extends Error {
  constructor(message: string) {
    super(`network safety rule: ${message}`);
    this.name = 'NetworkSafetyError';
  }
}

function assertOurNamespace(name: string): void {
  if (!name || !name.startsWith(testNetnsPrefix) || /[\s/]/.test(name)) {
    throw new NetworkSafetyError(`"${name}" is not a test network namespace (must start with "${testNetnsPrefix}")`);
  }
}

/**
 * Checks one command against the safety rule: it must be `ip netns add|del|delete <ours>`,
 * `ip -n <ours> …` or `ip netns exec <ours> …`, and must not add a default route.
 */
export function assertNamespaced(command: readonly string[]): void {
  const text = command.join(' ');
  if (/\broute\s+(add|replace|append)\s+(default|0\.0\.0\.0\/0|::\/0)\b/.test(text)) {
    throw new NetworkSafetyError(`refusing a default route: "${text}"`);
  }
  if (command[0] !== 'ip') throw new NetworkSafetyError(`only "ip" commands are run by the netns helper, not "${text}"`);
  if (command[1] === '-n') return assertOurNamespace(command[2] ?? '');
  if (command[1] === 'netns' && ['add', 'del', 'delete', 'exec'].includes(command[2] ?? '')) {
    return assertOurNamespace(command[3] ?? '');
  }
  throw new NetworkSafetyError(`command is not scoped to a test namespace: "${text}"`);
}

/** Interface names are limited to 15 characters (IFNAMSIZ - 1). */
export function shortName(prefix: string): string {
  return `${prefix}${randomBytes(4).toString('hex')}`.slice(0, 15);
}

export class Netns {
  constructor(
    readonly name: string,
    private readonly runner: CommandRunner,
  ) {}

  get path(): string {
    return `/var/run/netns/${this.name}`;
  }

  /** `ip -n NAME …` */
  ip(...args: string[]): Promise<ExecResult> {
    return this.runner(['ip', '-n', this.name, ...args]);
  }

  /** Runs any command inside the namespace (`ip netns exec NAME …`). */
  exec(command: string[], options?: ExecOptions): Promise<ExecResult> {
    return this.runner(['ip', 'netns', 'exec', this.name, ...command], options);
  }

  async addAddress(ifname: string, cidr: string): Promise<void> {
    await this.ip('addr', 'add', cidr, 'dev', ifname);
  }

  async addRoute(destination: string, via: { gateway?: string; dev?: string }): Promise<void> {
    const args = ['route', 'add', destination];
    if (via.gateway) args.push('via', via.gateway);
    if (via.dev) args.push('dev', via.dev);
    await this.ip(...args);
  }

  /** True when the namespace has no default route (IPv4 or IPv6). */
  async hasNoDefaultRoute(): Promise<boolean> {
    const v4 = await this.ip('-4', 'route', 'show', 'default');
    const v6 = await this.ip('-6', 'route', 'show', 'default');
    return v4.stdout.trim() === '' && v6.stdout.trim() === '';
  }
}

export interface PodOptions {
  /** Address with prefix for the pod's eth0, e.g. 10.244.1.5/24. */
  address?: string;
  /** Address with prefix for the node side of the veth, e.g. 10.244.1.1/24. */
  nodeAddress?: string;
}

export class TestNetwork {
  readonly id = randomBytes(3).toString('hex');
  private readonly namespaces: Netns[] = [];

  constructor(private readonly runner: CommandRunner = (command, options) => realRun(command, options)) {}

  private guarded: CommandRunner = async (command, options) => {
    assertNamespaced(command);
    return this.runner(command, options);
  };

  /** Creates a netns named knt-<id>-<role> with loopback up and nothing else. */
  async namespace(role: string): Promise<Netns> {
    const name = `${testNetnsPrefix}${this.id}-${role}`;
    await this.guarded(['ip', 'netns', 'add', name]);
    const netns = new Netns(name, this.guarded);
    this.namespaces.push(netns);
    await netns.ip('link', 'set', 'lo', 'up');
    return netns;
  }

  node(role: string): Promise<Netns> {
    return this.namespace(role);
  }

  /** A veth pair from `a` to `b`; returns the two interface names (up). */
  async link(a: Netns, b: Netns, options: { aAddress?: string; bAddress?: string; aName?: string; bName?: string } = {}): Promise<[string, string]> {
    const aName = options.aName ?? shortName('veth');
    const bName = options.bName ?? shortName('veth');
    await a.ip('link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name);
    if (options.aAddress) await a.addAddress(aName, options.aAddress);
    if (options.bAddress) await b.addAddress(bName, options.bAddress);
    await a.ip('link', 'set', aName, 'up');
    await b.ip('link', 'set', bName, 'up');
    return [aName, bName];
  }

  /** A pod netns joined to its node by a veth (pod side named eth0), with addresses if given. */
  async pod(node: Netns, role: string, options: PodOptions = {}): Promise<Netns> {
    const pod = await this.namespace(role);
    await this.link(node, pod, { bName: 'eth0', aAddress: options.nodeAddress, bAddress: options.address });
    return pod;
  }

  /** Deletes every namespace this network made (their interfaces go with them). Idempotent. */
  async cleanup(): Promise<void> {
    const namespaces = this.namespaces.splice(0).reverse();
    for (const netns of namespaces) {
      await this.guarded(['ip', 'netns', 'del', netns.name], { allowFailure: true });
    }
  }
}
