/** Address helpers over ipaddr.js, shared by the overlay, CNI plugin, proxy and control plane. */
import ipaddr from 'ipaddr.js';

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

/** The network address of a CIDR in canonical form ("10.244.1.7/24" → "10.244.1.0/24"). */
export function canonicalCIDR(text: string): string {
  const [address, bits] = ipaddr.parseCIDR(text);
  const family = address.kind() === 'ipv4' ? ipaddr.IPv4 : ipaddr.IPv6;
  return `${family.networkAddressFromCIDR(text).toString()}/${bits}`;
}
