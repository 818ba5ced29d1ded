/**
 * What `npm run bench` passes to each benchmark and how long it may take. The default sizes keep
 * the whole run under ~30 minutes on a 2-core machine; `--full` (or KNODE_BENCH_FULL=1) runs the
 * bigger sizes, KNODE_BENCH_ARGS_<NAME> (NAME upper-cased, '-' → '_') replaces a benchmark's
 * arguments, and --timeout / KNODE_BENCH_TIMEOUT (seconds) replaces every per-bench limit.
 */

export interface Plan {
  args: string[];
  /** Arguments for --full; the default ones when absent. */
  fullArgs?: string[];
  timeoutSeconds: number;
  fullTimeoutSeconds?: number;
}

export const DEFAULT_TIMEOUT_SECONDS = 900;

export const plans: Readonly<Record<string, Plan>> = {
  // 30 pods timed one by one, then RSS/CPU at 0, 50 and 100 running pods (kubelet's maxPods is 110).
  'agent-static-pods': { args: ['30', '50,100'], fullArgs: ['50', '50,100'], timeoutSeconds: 1200, fullTimeoutSeconds: 2400 },
  // Pods per round (one /24 lease: at most 250) and interleaved rounds.
  'cni-add-del': { args: ['100', '3'], fullArgs: ['200', '5'], timeoutSeconds: 900, fullTimeoutSeconds: 1800 },
  // iperf3 seconds per run × rounds, three paths per round (node pair, hand-built pod path, knode).
  'cni-vxlan-throughput': { args: ['5', '3'], fullArgs: ['20', '5'], timeoutSeconds: 600 },
  'controlplane-watch': { args: ['5000', '100', '200'], fullArgs: ['20000', '200', '500'], timeoutSeconds: 900, fullTimeoutSeconds: 2400 },
  'cri-start': { args: ['30'], fullArgs: ['100'], timeoutSeconds: 900, fullTimeoutSeconds: 2400 },
  // 10k Services; 3 interleaved rounds of 5 s QPS runs and 3 s latency runs at 2000 qps per server.
  dns: { args: ['10000', '3', '5', '2000'], fullArgs: ['10000', '5', '10', '2000'], timeoutSeconds: 900 },
  'eviction-signals': { args: ['--iterations', '2000'], fullArgs: ['--iterations', '20000'], timeoutSeconds: 300 },
  // One static pod; a 64 MiB download per path and round, then 30 small GETs per path.
  'port-forward': { args: ['64', '3', '30'], fullArgs: ['256', '5', '100'], timeoutSeconds: 600 },
  // 30 static pods of the deployed agent, httpGet + tcpSocket every 1 s and exec every 10 s; 3 rounds of 10 s windows.
  'probes-agent': { args: ['30', '1', '10'], fullArgs: ['60', '1', '10'], timeoutSeconds: 900, fullTimeoutSeconds: 1500 },
  // The ProbeManager in-process over a fake runtime (an extra row: probes-agent is the deployed agent).
  'probes-load': { args: ['--pods', '1000', '--period', '10', '--duration', '60'], fullArgs: ['--pods', '1000', '--period', '10', '--duration', '300'], timeoutSeconds: 600, fullTimeoutSeconds: 1200 },
  // iptables-nft-restore --noflush grows superlinearly: nft at 10k did not finish in 300 s here.
  'proxy-iptables': { args: ['legacy:1000,10000', 'nft:1000'], fullArgs: ['legacy:1000,10000', 'nft:1000,10000'], timeoutSeconds: 900, fullTimeoutSeconds: 7200 },
  // all inside one test netns; nft -f only at 1k (nft 1.0.6 takes minutes at 10k); 100k × 2 with --full.
  'proxy-nftables': { args: ['1000,10000'], fullArgs: ['1000,10000', '--big', '100000'], timeoutSeconds: 1200, fullTimeoutSeconds: 2400 },
  // connections/s through a ClusterIP with 10k Services installed, nftables vs iptables-legacy mode, 3 interleaved rounds of 5 s.
  'proxy-dataplane': { args: ['10000'], fullArgs: ['10000', '--rounds', '5', '--seconds', '10'], timeoutSeconds: 1200 },
  // qemu TCG, one guest per size: 10k services take ~4-5 min for knode alone, plus the ipvsadm baseline.
  // A Deployment 0 → 100 pods vs 100 bare pods on one node (maxPods 110), 3 interleaved rounds.
  'workloads-scale': { args: ['100', '3'], fullArgs: ['100', '5'], timeoutSeconds: 1800, fullTimeoutSeconds: 3000 },
  'proxy-ipvs-qemu': { args: ['1000,10000'], fullArgs: ['1000,10000,20000'], timeoutSeconds: 1500, fullTimeoutSeconds: 5400 },
};

export interface PlanOptions {
  full: boolean;
  env: Readonly<Record<string, string | undefined>>;
  /** --timeout on the command line, seconds. */
  timeoutSeconds?: number;
}

export const argsVariable = (bench: string) => `KNODE_BENCH_ARGS_${bench.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;

/** The arguments and time limit for one benchmark. */
export function resolvePlan(bench: string, options: PlanOptions): { args: string[]; timeoutSeconds: number } {
  const plan = plans[bench];
  const override = options.env[argsVariable(bench)];
  const args = override !== undefined ? override.split(/\s+/).filter(Boolean) : ((options.full ? plan?.fullArgs : undefined) ?? plan?.args ?? []);
  const fromEnv = options.env.KNODE_BENCH_TIMEOUT;
  let timeoutSeconds = (options.full ? plan?.fullTimeoutSeconds : undefined) ?? plan?.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  if (options.timeoutSeconds !== undefined) timeoutSeconds = options.timeoutSeconds;
  else if (fromEnv !== undefined && fromEnv !== '') timeoutSeconds = parseTimeout(fromEnv, 'KNODE_BENCH_TIMEOUT');
  return { args, timeoutSeconds };
}

export function parseTimeout(text: string, what: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${what} must be a positive number of seconds, got ${JSON.stringify(text)}`);
  return value;
}

export interface RunnerArgs {
  names: string[];
  full: boolean;
  timeoutSeconds?: number;
  list: boolean;
  /** Before each benchmark, wait up to this long for the load average to settle (--settle, default 120). */
  settleSeconds: number;
}

/** `npm run bench -- [--full] [--timeout S] [--list] [NAME…]` */
export function parseRunnerArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): RunnerArgs {
  const out: RunnerArgs = { names: [], full: env.KNODE_BENCH_FULL === '1' || env.KNODE_BENCH_FULL === 'true', list: false, settleSeconds: 120 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--full') out.full = true;
    else if (arg === '--list') out.list = true;
    else if (arg === '--settle' || arg.startsWith('--settle=')) {
      const text = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      if (text === undefined || !/^\d+$/.test(text)) throw new Error('--settle needs a whole number of seconds');
      out.settleSeconds = Number(text);
    }
    else if (arg === '--timeout' || arg.startsWith('--timeout=')) {
      const text = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      if (text === undefined) throw new Error('--timeout needs a number of seconds');
      out.timeoutSeconds = parseTimeout(text, '--timeout');
    } else if (arg.startsWith('-')) throw new Error(`unknown option ${arg} (usage: npm run bench -- [--full] [--timeout SECONDS] [--settle SECONDS] [--list] [NAME…])`);
    else out.names.push(arg.replace(/\.(ts|js)$/, '').replace(/^.*\//, ''));
  }
  return out;
}
