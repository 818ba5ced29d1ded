/**
 * Prints expressions the way libnftnl does in `nft --debug=netlink` ("[ payload load 4b @
 * network header + 16 => reg 1 ]"), so that the encoder can be checked against nft's own
 * output for the same rule, and so that a rule read back from the kernel is readable in logs.
 */
import { FibFlag, type Expr } from './expr.js';

/** Data registers as libnftnl prints them: 32-bit host-order words of the zero-padded value. */
export function words(data: Buffer): string {
  const padded = Buffer.alloc(Math.max(4, (data.length + 3) & ~3));
  data.copy(padded);
  const out: string[] = [];
  for (let offset = 0; offset < Math.max(data.length, 1); offset += 4) out.push(`0x${padded.readUInt32LE(offset).toString(16).padStart(8, '0')}`);
  return out.join(' ');
}

const fibFlags = (flags: number) =>
  (Object.keys(FibFlag) as (keyof typeof FibFlag)[]).filter((name) => flags & FibFlag[name]).join(' . ');

function printExpr(expr: Expr): string {
  switch (expr.kind) {
    case 'payload': return `[ payload load ${expr.len}b @ ${expr.base} header + ${expr.offset} => reg ${expr.dreg} ]`;
    case 'cmp': return `[ cmp ${expr.op} reg ${expr.sreg} ${words(expr.data)} ]`;
    case 'meta': return `[ meta load ${expr.key} => reg ${expr.dreg} ]`;
    case 'metaSet': return `[ meta set ${expr.key} with reg ${expr.sreg} ]`;
    case 'ct': return `[ ct load ${expr.key} => reg ${expr.dreg} ]`;
    case 'bitwise': return `[ bitwise reg ${expr.dreg} = ( reg ${expr.sreg} & ${words(expr.mask)} ) ^ ${words(expr.xor)} ]`;
    case 'lookup':
      return `[ lookup reg ${expr.sreg} set ${expr.set}${expr.dreg !== undefined ? ` dreg ${expr.dreg}` : ''}${expr.invert ? ' 0x1' : ''} ]`;
    case 'immediate': return `[ immediate reg 0 ${expr.verdict.code}${expr.verdict.chain !== undefined ? ` -> ${expr.verdict.chain}` : ''} ]`;
    case 'immediateData': return `[ immediate reg ${expr.dreg} ${words(expr.data)} ]`;
    case 'numgen': return `[ numgen reg ${expr.dreg} = ${expr.type} mod ${expr.modulus}${expr.offset ? ` offset ${expr.offset}` : ''} ]`;
    case 'nat': {
      const parts = [`nat ${expr.type} ip`];
      if (expr.addrMin !== undefined) parts.push(`addr_min reg ${expr.addrMin}`);
      if (expr.addrMax !== undefined) parts.push(`addr_max reg ${expr.addrMax}`);
      if (expr.protoMin !== undefined) parts.push(`proto_min reg ${expr.protoMin}`);
      if (expr.protoMax !== undefined) parts.push(`proto_max reg ${expr.protoMax}`);
      if (expr.flags) parts.push(`flags 0x${expr.flags.toString(16)}`);
      return `[ ${parts.join(' ')} ]`;
    }
    case 'masq': return expr.flags ? `[ masq flags 0x${expr.flags.toString(16)} ]` : '[ masq ]';
    case 'counter': return `[ counter pkts ${expr.packets} bytes ${expr.bytes} ]`;
    case 'dynset':
      return `[ dynset ${expr.op} reg_key ${expr.sregKey} set ${expr.set}${expr.timeoutMs ? ` timeout ${expr.timeoutMs}ms` : ''} ]`;
    case 'reject': return `[ reject type ${expr.type} code ${expr.code} ]`;
    case 'fib': return `[ fib ${fibFlags(expr.flags)} ${expr.result} => reg ${expr.dreg} ]`;
    case 'unknown': return `[ ${expr.name} ? ]`;
  }
}

export const printRule = (exprs: readonly Expr[]) => exprs.map(printExpr).join('\n');
