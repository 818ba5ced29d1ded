/**
 * Chain names exactly as kube-proxy's iptables proxier makes them (pkg/proxy/iptables/proxier.go,
 * portProtoHash / servicePortChainName / servicePortEndpointChainName): SHA-256 of
 * servicePortName + lower-case protocol (+ endpoint "ip:port" for KUBE-SEP), base32 (standard
 * alphabet), first 16 characters. Same names mean an operator's kube-proxy knowledge carries over.
 */
import { createHash } from 'node:crypto';
import type { Protocol } from '../model.js';

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding (padding never reaches the first 16 characters). */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/**
 * Hashes are memoised: a sync of 10k services × 10 endpoints needs ~130k names, almost all the
 * same as in the previous sync (kube-proxy keeps them in its servicePortInfo/endpointInfo).
 */
const memo = new Map<string, string>();
const memoLimit = 500_000;

function hash16(text: string): string {
  let name = memo.get(text);
  if (name === undefined) {
    name = base32(createHash('sha256').update(text).digest()).slice(0, 16);
    if (memo.size >= memoLimit) memo.clear();
    memo.set(text, name);
  }
  return name;
}

function portProtoHash(servicePortName: string, protocol: Protocol): string {
  return hash16(servicePortName + protocol.toLowerCase());
}

export const serviceChainName = (name: string, protocol: Protocol) => `KUBE-SVC-${portProtoHash(name, protocol)}`;
export const externalChainName = (name: string, protocol: Protocol) => `KUBE-EXT-${portProtoHash(name, protocol)}`;
export const localChainName = (name: string, protocol: Protocol) => `KUBE-SVL-${portProtoHash(name, protocol)}`;
export const firewallChainName = (name: string, protocol: Protocol) => `KUBE-FW-${portProtoHash(name, protocol)}`;
export const endpointChainName = (name: string, protocol: Protocol, endpoint: string) =>
  `KUBE-SEP-${hash16(name + protocol.toLowerCase() + endpoint)}`;

/** The per-service chain prefixes that the proxy owns (and deletes when stale). */
const serviceChainPrefixes = ['KUBE-SVC-', 'KUBE-SEP-', 'KUBE-EXT-', 'KUBE-SVL-', 'KUBE-FW-'];
export const isServiceChain = (chain: string) => serviceChainPrefixes.some((prefix) => chain.startsWith(prefix));
