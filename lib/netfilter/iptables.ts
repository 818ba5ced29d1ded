/**
 * The one iptables runner of knode: iptables-restore / iptables-save / iptables for the backend
 * (nft or legacy) the node uses, for the proxy, the CNI plugin's masquerade, the overlay's
 * masquerade and every component's cleanup. Nothing runs a bare `iptables`, which may be the
 * other backend than the node's rules are in. Commands run in the caller's network namespace;
 * `prefix` (e.g. `ip netns exec NS`) lets tests and benchmarks aim them at a test netns.
 *
 * Backend detection follows the iptables-wrapper logic kube-proxy images use
 * (kubernetes-sigs/iptables-wrappers): whichever of iptables-legacy-save / iptables-nft-save
 * shows more rules is the one in use; with no rules anywhere, the `iptables` on the PATH decides.
 */
import { run } from '../exec.js';

export type Backend = 'nft' | 'legacy';
const backends: readonly Backend[] = ['nft', 'legacy'];

/** A rule in a built-in chain that jumps to ours; ensured with `iptables -C`/`-I` (as kube-proxy). */
export interface JumpRule {
  table: 'filter' | 'nat';
  chain: string;
  args: string[];
}

export interface Iptables {
  readonly backend: Backend;
  /** One atomic `iptables-restore --noflush` of a whole payload. */
  restore(payload: string): Promise<void>;
  /** `iptables-save -t TABLE`. */
  save(table: 'filter' | 'nat'): Promise<string>;
  /** Inserts the rule at the top of its built-in chain (or appends it) unless it is there (iptables -C / -I / -A). */
  ensureJump(rule: JumpRule, position?: 'insert' | 'append'): Promise<void>;
  /** Deletes the rule if present. */
  deleteJump(rule: JumpRule): Promise<void>;
  /** `iptables -S CHAIN` of a table: the chain's rules, or undefined when the chain does not exist. */
  listChain(table: 'filter' | 'nat', chain: string): Promise<string[] | undefined>;
}

const binaries = (backend: Backend) => ({
  iptables: `iptables-${backend}`,
  restore: `iptables-${backend}-restore`,
  save: `iptables-${backend}-save`,
});

function countRules(text: string): number {
  return text.split('\n').filter((line) => line.startsWith('-A ')).length;
}

/** Detects the backend used in the namespace the commands run in. */
export async function detectBackend(prefix: readonly string[] = []): Promise<Backend> {
  const count = async (backend: Backend) => {
    // The binary missing or timing out means this backend is not usable here (-1).
    const result = await run([...prefix, binaries(backend).save], { allowFailure: true, timeoutMs: 30_000 }).catch(() => undefined);
    return result && result.code === 0 ? countRules(result.stdout) : -1;
  };
  const [nft, legacy] = await Promise.all([count('nft'), count('legacy')]);
  if (legacy > nft) return 'legacy';
  if (nft > legacy) return 'nft';
  if (nft < 0 && legacy < 0) throw new Error('neither iptables-nft-save nor iptables-legacy-save works (install the iptables package)');
  // No plain `iptables` on the PATH: nft, the default of current distributions.
  const version = await run([...prefix, 'iptables', '--version'], { allowFailure: true }).catch(() => undefined);
  return version?.stdout.includes('legacy') ? 'legacy' : 'nft';
}

export class CommandIptables implements Iptables {
  private readonly bin: ReturnType<typeof binaries>;
  constructor(
    readonly backend: Backend,
    private readonly prefix: readonly string[] = [],
    private readonly restoreTimeoutMs = 300_000,
  ) {
    this.bin = binaries(backend);
  }

  async restore(payload: string): Promise<void> {
    try {
      await run([...this.prefix, this.bin.restore, '-w', '30', '--noflush'], { input: payload, timeoutMs: this.restoreTimeoutMs });
    } catch (error) {
      throw new Error(`${this.bin.restore} of a ${payload.split('\n').length}-line payload failed`, { cause: error });
    }
  }

  async save(table: 'filter' | 'nat'): Promise<string> {
    return (await run([...this.prefix, this.bin.save, '-t', table], { timeoutMs: 120_000 })).stdout;
  }

  async ensureJump(rule: JumpRule, position: 'insert' | 'append' = 'insert'): Promise<void> {
    const check = await run([...this.prefix, this.bin.iptables, '-w', '30', '-t', rule.table, '-C', rule.chain, ...rule.args], { allowFailure: true });
    if (check.code === 0) return;
    await run([...this.prefix, this.bin.iptables, '-w', '30', '-t', rule.table, position === 'insert' ? '-I' : '-A', rule.chain, ...rule.args]);
  }

  async listChain(table: 'filter' | 'nat', chain: string): Promise<string[] | undefined> {
    const result = await run([...this.prefix, this.bin.iptables, '-w', '30', '-t', table, '-S', chain], { allowFailure: true, timeoutMs: 30_000 });
    return result.code === 0 ? result.stdout.split('\n').filter(Boolean) : undefined;
  }

  async deleteJump(rule: JumpRule): Promise<void> {
    for (let i = 0; i < 10; i++) {
      const result = await run([...this.prefix, this.bin.iptables, '-w', '30', '-t', rule.table, '-D', rule.chain, ...rule.args], { allowFailure: true });
      if (result.code !== 0) return;
    }
  }
}

/** Chain names declared in an iptables-save output. */
export function savedChains(save: string): Set<string> {
  return new Set(save.split('\n').filter((line) => line.startsWith(':')).map((line) => line.slice(1).split(' ')[0]!));
}

/** The backends whose tools work here (iptables-<backend>-save runs): what a cleanup must sweep. */
export async function workingBackends(prefix: readonly string[] = []): Promise<Backend[]> {
  const works = await Promise.all(
    backends.map((backend) =>
      run([...prefix, binaries(backend).save, '-t', 'nat'], { allowFailure: true, timeoutMs: 30_000 }).then(
        (result) => result.code === 0,
        () => false,
      ),
    ),
  );
  return backends.filter((_backend, index) => works[index]);
}

/** A runner for the node's backend (detected now); long-lived callers keep it. */
export async function nodeIptables(prefix: readonly string[] = []): Promise<Iptables> {
  return new CommandIptables(await detectBackend(prefix), prefix);
}
