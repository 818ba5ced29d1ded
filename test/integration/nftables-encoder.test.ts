/**
 * The nf_tables encoder against nft itself, inside a test netns:
 *  1. each rule's expressions, printed as libnftnl prints them, equal what
 *     `nft --debug=netlink` shows for the same rule in nft syntax;
 *  2. the same table sent by knode over netlink (one batch) lists (`nft list table`) exactly
 *     as the table nft loaded from text;
 *  3. reading the rules back over netlink (GETRULE dump) gives the canonical bytes sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { prerequisites } from '../helpers/prereq.js';
import { run } from '../../lib/exec.js';
import { NetnsNft, nft } from '../helpers/nft-netns.js';
import { Batch, parseRule, type Rule } from '../../lib/netfilter/nftables/batch.js';
import { canonicalExprs, decodeExprs } from '../../lib/netfilter/nftables/expr.js';
import { printRule } from '../../lib/netfilter/nftables/print.js';
import { Msg, RuleAttr, SetFlag, DATA_TYPE_VERDICT, strAttr } from '../../lib/netfilter/nftables/wire.js';
import * as b from '../../lib/netfilter/nftables/build.js';

const env = await prerequisites('root', 'command:ip', 'command:nft');

export interface EncoderCase {
  nft: string;
  rule: Rule;
}

const simple = (...exprs: Rule['exprs']): Rule => ({ exprs });

export const encoderCases: EncoderCase[] = [
  { nft: 'ct state new jump firewall-check', rule: simple(...b.ctStateNew(), b.verdict('jump', 'firewall-check')) },
  { nft: 'ip daddr . meta l4proto . th dport vmap @service-ips', rule: simple(...b.vmapDaddrProtoPort('service-ips')) },
  { nft: 'fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports', rule: simple(...b.fibLocal('daddr'), ...b.matchIp('daddr', '127.0.0.0/8', 'neq'), ...b.vmapProtoPort('service-nodeports')) },
  { nft: 'mark set mark or 0x4000', rule: simple(...b.setMark('or', 0x4000)) },
  { nft: 'mark and 0x4000 == 0 return', rule: simple(...b.markClear(0x4000), b.verdict('return')) },
  { nft: 'mark set mark xor 0x4000', rule: simple(...b.setMark('xor', 0x4000)) },
  { nft: 'masquerade fully-random', rule: simple(b.masqueradeFullyRandom()) },
  { nft: 'reject', rule: simple(b.reject()) },
  { nft: 'ip saddr 10.180.0.1 jump mark-for-masquerade', rule: simple(...b.matchIp('saddr', '10.180.0.1'), b.verdict('jump', 'mark-for-masquerade')) },
  { nft: 'update @aff { ip saddr }', rule: simple(...b.updateSetWithSaddr('aff')) },
  { nft: 'meta l4proto tcp dnat to 10.180.0.1:80', rule: simple(...b.dnatTo('tcp', '10.180.0.1', 80)) },
  { nft: 'meta l4proto udp dnat to 10.180.3.7:5353', rule: simple(...b.dnatTo('udp', '10.180.3.7', 5353)) },
  {
    nft: 'ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade',
    rule: simple(...b.matchIp('daddr', '172.30.0.41'), ...b.matchProtoPort('tcp', 80), ...b.matchIp('saddr', '10.0.0.0/8', 'neq'), b.verdict('jump', 'mark-for-masquerade')),
  },
  { nft: 'ip saddr != 10.244.0.0/14 jump mark-for-masquerade', rule: simple(...b.matchIp('saddr', '10.244.0.0/14', 'neq'), b.verdict('jump', 'mark-for-masquerade')) },
  { nft: 'ip saddr @aff goto ep1', rule: simple(...b.inSet('saddr', 'aff'), b.verdict('goto', 'ep1')) },
  // numgenPick's rules: the last one is a bare goto (as 'goto ep1' below)
  { nft: 'numgen random mod 3 0 goto ep1', rule: simple(...b.numgenPick([{ code: 'goto', chain: 'ep1' }, { code: 'goto', chain: 'ep2' }, { code: 'goto', chain: 'ep3' }])[0]!) },
  { nft: 'numgen random mod 2 0 goto ep2', rule: simple(...b.numgenPick([{ code: 'goto', chain: 'ep1' }, { code: 'goto', chain: 'ep2' }, { code: 'goto', chain: 'ep3' }])[1]!) },
  { nft: 'ip saddr != { 203.0.113.0/25, 10.1.0.0/16 } drop', rule: b.dropUnlessSaddrIn(['203.0.113.0/25', '10.1.0.0/16']) },
  { nft: 'fib saddr type local jump mark-for-masquerade', rule: simple(...b.fibLocal('saddr'), b.verdict('jump', 'mark-for-masquerade')) },
  { nft: 'counter', rule: simple({ kind: 'counter', packets: 0n, bytes: 0n }) },
  { nft: 'goto ep1', rule: simple(b.verdict('goto', 'ep1')) },
  { nft: 'drop', rule: simple(b.verdict('drop')) },
];

const chainName = (index: number) => `c${index}`;

function nftText(table: string): string {
  return [
    `table ip ${table} {`,
    '  comment "encoder test"',
    '  set aff { type ipv4_addr; flags dynamic,timeout; timeout 10800s; }',
    '  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"; }',
    '  map service-nodeports { type inet_proto . inet_service : verdict; comment "NodePort traffic"; }',
    '  chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }',
    '  chain firewall-check { }',
    '  chain mark-for-masquerade { }',
    '  chain ep1 { }',
    '  chain ep2 { }',
    ...encoderCases.map((c, i) => `  chain ${chainName(i)} { ${c.nft}; }`),
    '}',
    '',
  ].join('\n');
}

function knodeBatch(table: string): Batch {
  const batch = new Batch(table);
  batch.addTable('encoder test');
  batch.addSet({ name: 'aff', keyType: b.DataType.ipv4Addr, keyLen: 4, flags: SetFlag.timeout | SetFlag.eval, timeoutMs: 10_800_000n });
  const key3 = b.concatType(b.DataType.ipv4Addr, b.DataType.inetProto, b.DataType.inetService);
  batch.addSet({ name: 'service-ips', keyType: key3, keyLen: 12, flags: SetFlag.map, dataType: DATA_TYPE_VERDICT, comment: 'ClusterIP, ExternalIP and LoadBalancer IP traffic' });
  batch.addSet({ name: 'service-nodeports', keyType: b.concatType(b.DataType.inetProto, b.DataType.inetService), keyLen: 8, flags: SetFlag.map, dataType: DATA_TYPE_VERDICT, comment: 'NodePort traffic' });
  batch.addChain('nat-prerouting', { type: 'nat', hook: 'prerouting', priority: -100 });
  for (const chain of ['firewall-check', 'mark-for-masquerade', 'ep1', 'ep2']) batch.addChain(chain);
  encoderCases.forEach((c, i) => {
    batch.addChain(chainName(i));
    batch.addRule(chainName(i), c.rule);
  });
  return batch;
}

/** Rule blocks of `nft --debug=netlink` output: chain → expression lines. */
function debugBlocks(output: string, table: string): Map<string, string> {
  const blocks = new Map<string, string>();
  const lines = output.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const match = new RegExp(`^ip ${table} (\\S+)$`).exec(lines[i] ?? '');
    if (!match?.[1]) continue;
    const body: string[] = [];
    while ((lines[i + 1] ?? '').startsWith('  [')) body.push((lines[++i] ?? '').trim());
    blocks.set(match[1], body.join('\n'));
  }
  return blocks;
}

describe.skipIf(env.skip)('nf_tables encoder vs nft', () => {
  const ns = `knt-nftenc-${randomBytes(3).toString('hex')}`;
  let transport: NetnsNft;
  let debug: Map<string, string>;

  beforeAll(async () => {
    await run(['ip', 'netns', 'add', ns]);
    debug = debugBlocks(await nft(ns, ['--debug=netlink', '-f', '-'], nftText('ref')), 'ref');
    transport = await NetnsNft.start(ns);
  });

  afterAll(async () => {
    transport?.close();
    await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  });

  it.each(encoderCases.map((c, i) => [c.nft, i] as const))('%s', (_text, index) => {
    const rule = encoderCases[index]?.rule;
    expect(rule).toBeDefined();
    expect(printRule(rule?.exprs ?? [])).toBe(debug.get(chainName(index)));
  });

  it('a table sent over netlink lists exactly like the same table loaded by nft', async () => {
    const result = await transport.commit(knodeBatch('mine'));
    expect(result.transactions).toBe(1);
    const listed = (table: string) => nft(ns, ['list', 'table', 'ip', table]).then((text) => text.replace(`table ip ${table} {`, 'table ip X {'));
    expect(await listed('mine')).toBe(await listed('ref'));
    const json = JSON.parse(await nft(ns, ['-j', 'list', 'table', 'ip', 'mine'])) as { nftables: { rule?: unknown }[] };
    expect(json.nftables.filter((entry) => entry.rule).length).toBe(encoderCases.length);
  });

  it('rules read back over netlink have the canonical bytes that were sent', async () => {
    const replies = await transport.dump(Msg.getRule, [strAttr(RuleAttr.table, 'mine')]);
    const byChain = new Map(replies.map(parseRule).map((rule) => [rule.chain, canonicalExprs(decodeExprs(rule.exprs)).toString('hex')]));
    encoderCases.forEach((c, i) => expect(byChain.get(chainName(i)), c.nft).toBe(canonicalExprs(c.rule.exprs).toString('hex')));
  });

  it('a failed transaction changes nothing and names the failed message', async () => {
    const batch = new Batch('mine');
    batch.addChain('new-chain');
    batch.addRule('no-such-chain', { exprs: [b.verdict('drop')] });
    await expect(transport.commit(batch)).rejects.toThrow(/add rule to chain no-such-chain.*ENOENT/);
    expect(await nft(ns, ['list', 'chains', 'ip'])).not.toContain('new-chain');
  });

  it('a failure answering a request larger than the socket reads (the kernel echoes it) is still reported', async () => {
    // 512 map elements with long goto targets: one ~50 KiB message, echoed after its errno
    const target = `endpoint-${'x'.repeat(40)}`;
    const elements = Array.from({ length: 512 }, (_, i) => ({ key: Buffer.from([10, 96, i >> 8, i & 255]), verdict: { code: 'goto' as const, chain: target } }));
    const batch = new Batch('mine');
    batch.addElements('no-such-map', elements);
    expect(batch.bytes).toBeGreaterThan(40 * 1024);
    await expect(transport.commit(batch)).rejects.toThrow(/no-such-map.*ENOENT/);
    // the socket goes on answering afterwards
    expect((await transport.dump(Msg.getRule, [strAttr(RuleAttr.table, 'mine')])).length).toBe(encoderCases.length);
  });
});
