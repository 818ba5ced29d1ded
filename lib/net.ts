/** Address helpers over ipaddr.js, shared by the overlay, CNI plugin, proxy and control plane. */
import ipaddr from 'ipaddr.js';
import { networkInterfaces } from 'node:os';

export function isValidIP(text: string): boolean {
  return ipaddr.isValid(text) && (ipaddr.IPv4.isValidFourPartDecimal(text) || ipaddr.IPv6.isValid(text));
}

export function isValidCIDR(text: string): boolean {
  try {
    const [address] = ipaddr.parseCIDR(text);
    return isValidIP(address.toString()) && text.includes('/');
  } catch {
    // ipaddr.js throws on anything that is not a CIDR: not valid.
    return false;
  }
}

/** True when the inner CIDR lies entirely inside the outer one (same family). */
export function cidrContains(outer: string, inner: string): boolean {
  const [outerAddress, outerBits] = ipaddr.parseCIDR(outer);
  const [innerAddress, innerBits] = ipaddr.parseCIDR(inner);
  if (outerAddress.kind() !== innerAddress.kind() || innerBits < outerBits) return false;
  return innerAddress.match([outerAddress, outerBits] as [typeof innerAddress, number]);
}

/**
 * The IPv4 addresses of this network namespace's interfaces that lie in one of the CIDRs
 * (kube-proxy's nodePortAddresses → GetNodeIPs); loopback included when a CIDR covers it.
 */
export function localIPv4AddressesIn(cidrs: readonly string[]): string[] {
  const ranges = cidrs.filter((cidr) => cidr.includes('.') && isValidCIDR(cidr)).map((cidr) => ipaddr.IPv4.parseCIDR(cidr));
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const address of list ?? []) {
      if (address.family !== 'IPv4') continue;
      const ip = ipaddr.IPv4.parse(address.address);
      if (ranges.some((range) => ip.match(range))) out.add(address.address);
    }
  }
  return [...out].sort();
}

/** The network address of a CIDR in canonical form ("10.244.1.7/24" → "10.244.1.0/24"). */
export function canonicalCIDR(text: string): string {
  const [address, bits] = ipaddr.parseCIDR(text);
  const family = address.kind() === 'ipv4' ? ipaddr.IPv4 : ipaddr.IPv6;
  return `${family.networkAddressFromCIDR(text).toString()}/${bits}`;
}
