/**
 * flanneld --ip-masq: masquerade pod traffic that leaves the cluster network, never pod↔pod,
 * in a chain of our own jumped to from nat POSTROUTING (flannel's FLANNEL-POSTRTG rules,
 * pkg/ip/iptables.go MasqRules). Applied with one `iptables-restore --noflush`, idempotent.
 */
import { run } from '../lib/exec.js';

export const masqChainName = 'KNODE-OVERLAY-POSTRTG';

/** The chain's rules for a node (pure). */
export function overlayMasqRules(network: string, subnet: string): string[] {
  return [
    `-A ${masqChainName} -s ${subnet} -d ${network} -m comment --comment "knode overlay: pod to pod" -j RETURN`,
    `-A ${masqChainName} -s ${network} -d ${subnet} -m comment --comment "knode overlay: pod to pod" -j RETURN`,
    `-A ${masqChainName} ! -s ${network} -d ${subnet} -m comment --comment "knode overlay: to local pods" -j RETURN`,
    `-A ${masqChainName} -s ${network} ! -d 224.0.0.0/4 -m comment --comment "knode overlay: pods leaving the cluster" -j MASQUERADE --random-fully`,
    `-A ${masqChainName} ! -s ${network} -d ${network} -m comment --comment "knode overlay: into the cluster from outside" -j MASQUERADE --random-fully`,
  ];
}

export async function ensureOverlayMasq(network: string, subnet: string): Promise<void> {
  const jump = ['-t', 'nat', 'POSTROUTING', '-m', 'comment', '--comment', 'knode overlay masquerade', '-j', masqChainName];
  const payload = ['*nat', `:${masqChainName} - [0:0]`, ...overlayMasqRules(network, subnet), 'COMMIT', ''].join('\n');
  await run(['iptables-restore', '-w', '5', '--noflush'], { input: payload, timeoutMs: 20_000 });
  const [table, t, chain, ...rest] = jump;
  const present = await run(['iptables', '-w', '5', table!, t!, '-C', chain!, ...rest], { allowFailure: true, timeoutMs: 20_000 });
  if (present.code !== 0) await run(['iptables', '-w', '5', table!, t!, '-A', chain!, ...rest], { timeoutMs: 20_000 });
}
