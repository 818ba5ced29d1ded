/**
 * Per-pod masquerade as the bridge plugin does with `ipMasq: true` (plugins/pkg/ip/ipmasq_linux.go):
 * a chain per attachment in the nat table that accepts traffic to the cluster network and
 * masquerades the rest (not multicast), jumped to from POSTROUTING for the pod's source address.
 * Runs in the current netns (the node's).
 */
import { createHash } from 'node:crypto';
import { run } from '../lib/exec.js';

export function masqChain(containerId: string, ifname: string): string {
  return `KNODE-MASQ-${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 16).toUpperCase()}`;
}

export async function setupMasq(chain: string, podIp: string, network: string, comment: string): Promise<void> {
  const payload = [
    '*nat',
    `:${chain} - [0:0]`,
    `-A ${chain} -d ${network} -j ACCEPT`,
    `-A ${chain} ! -d 224.0.0.0/4 -j MASQUERADE`,
    `-A POSTROUTING -s ${podIp}/32 -m comment --comment "${comment.replace(/"/g, '')}" -j ${chain}`,
    'COMMIT',
    '',
  ].join('\n');
  await teardownMasq(chain);
  await run(['iptables-restore', '-w', '5', '--noflush'], { input: payload, timeoutMs: 20_000 });
}

/** Removes the POSTROUTING jumps and the chain. Missing is success. */
export async function teardownMasq(chain: string): Promise<void> {
  const listed = await run(['iptables', '-w', '5', '-t', 'nat', '-S', 'POSTROUTING'], { allowFailure: true, timeoutMs: 20_000 });
  const jumps = listed.stdout.split('\n').filter((line) => line.startsWith('-A POSTROUTING ') && line.endsWith(`-j ${chain}`));
  const chainListed = await run(['iptables', '-w', '5', '-t', 'nat', '-S', chain], { allowFailure: true, timeoutMs: 20_000 });
  if (jumps.length === 0 && chainListed.code !== 0) return;
  const payload = ['*nat', ...jumps.map((line) => line.replace(/^-A /, '-D ')), ...(chainListed.code === 0 ? [`-F ${chain}`, `-X ${chain}`] : []), 'COMMIT', ''].join('\n');
  await run(['iptables-restore', '-w', '5', '--noflush'], { input: payload, timeoutMs: 20_000 });
}
