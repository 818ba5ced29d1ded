/**
 * Pure allocators: ClusterIPs from --service-cidr, NodePorts from 30000-32767 and node pod
 * CIDRs (/24 blocks of --cluster-cidr). They take the set in use (derived from stored objects,
 * so a deleted Service or Node frees its share) and return the next free value; IPv4 only.
 */
import ipaddr from 'ipaddr.js';

export interface Cidr {
  base: number;
  bits: number;
}

export function parseCidr4(text: string): Cidr {
  const [address, bits] = ipaddr.parseCIDR(text);
  if (address.kind() !== 'ipv4') throw new Error(`only IPv4 CIDRs are supported, got "${text}"`);
  const value = ipToInt(address.toString());
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return { base: (value & mask) >>> 0, bits };
}

function ipToInt(ip: string): number {
  return ipaddr.IPv4.parse(ip).toByteArray().reduce((acc, byte) => acc * 256 + byte, 0);
}

function intToIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.');
}

function cidrSize(cidr: Cidr): number {
  return 2 ** (32 - cidr.bits);
}

export function inCidr(cidr: Cidr, ip: string): boolean {
  if (!ipaddr.IPv4.isValidFourPartDecimal(ip)) return false;
  const value = ipToInt(ip);
  return value >= cidr.base && value < cidr.base + cidrSize(cidr);
}

/** The first usable address (network + 1): the `kubernetes` Service's ClusterIP. */
export function firstServiceIp(cidr: Cidr): string {
  return intToIp(cidr.base + 1);
}

/** Next free service IP: network and broadcast addresses are never handed out. */
export function allocateServiceIp(cidr: Cidr, used: Set<string>, hint = 0): string | undefined {
  const size = cidrSize(cidr);
  const usable = size - 2;
  for (let i = 0; i < usable; i++) {
    const ip = intToIp(cidr.base + 1 + ((hint + i) % usable));
    if (!used.has(ip)) return ip;
  }
  return undefined;
}

const nodePortRange = { min: 30000, max: 32767 };

export function allocateNodePort(used: Set<number>, hint = 0): number | undefined {
  const count = nodePortRange.max - nodePortRange.min + 1;
  for (let i = 0; i < count; i++) {
    const port = nodePortRange.min + ((hint + i) % count);
    if (!used.has(port)) return port;
  }
  return undefined;
}

/** Next free /`size` block of the cluster CIDR (node IPAM, kube-controller-manager --node-cidr-mask-size). */
export function allocatePodCidr(cluster: Cidr, used: Set<string>, size = 24): string | undefined {
  if (size < cluster.bits) return undefined;
  const blocks = 2 ** (size - cluster.bits);
  const step = 2 ** (32 - size);
  for (let i = 0; i < blocks; i++) {
    const cidr = `${intToIp(cluster.base + i * step)}/${size}`;
    if (!used.has(cidr)) return cidr;
  }
  return undefined;
}
