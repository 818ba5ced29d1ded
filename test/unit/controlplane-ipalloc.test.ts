import { describe, expect, it } from 'vitest';
import { allocateNodePort, allocatePodCidr, allocateServiceIp, firstServiceIp, inCidr, parseCidr4 } from '../../controlplane/ipalloc.js';

describe('ip allocation', () => {
  it.each([
    ['10.96.0.0/12', '10.96.0.1'],
    ['10.0.0.0/24', '10.0.0.1'],
    ['172.20.5.7/16', '172.20.0.1'],
  ])('first service IP of %s is %s', (cidr, ip) => {
    expect(firstServiceIp(parseCidr4(cidr))).toBe(ip);
  });

  it('never hands out network, broadcast or used addresses', () => {
    const cidr = parseCidr4('10.0.0.0/30');
    expect(allocateServiceIp(cidr, new Set())).toBe('10.0.0.1');
    expect(allocateServiceIp(cidr, new Set(['10.0.0.1']))).toBe('10.0.0.2');
    expect(allocateServiceIp(cidr, new Set(['10.0.0.1', '10.0.0.2']))).toBeUndefined();
  });

  it('checks containment', () => {
    const cidr = parseCidr4('10.96.0.0/12');
    expect(inCidr(cidr, '10.111.255.255')).toBe(true);
    expect(inCidr(cidr, '10.112.0.0')).toBe(false);
    expect(inCidr(cidr, 'nonsense')).toBe(false);
  });

  it('allocates node ports from 30000-32767', () => {
    expect(allocateNodePort(new Set())).toBe(30000);
    expect(allocateNodePort(new Set([30000, 30001]))).toBe(30002);
    expect(allocateNodePort(new Set([32767]), 2767)).toBe(30000);
    const all = new Set(Array.from({ length: 2768 }, (_, i) => 30000 + i));
    expect(allocateNodePort(all)).toBeUndefined();
  });

  it('allocates /24 pod CIDRs, each once, and reuses freed ones', () => {
    const cluster = parseCidr4('10.244.0.0/16');
    const used = new Set<string>();
    const a = allocatePodCidr(cluster, used) as string;
    used.add(a);
    const b = allocatePodCidr(cluster, used) as string;
    expect([a, b]).toEqual(['10.244.0.0/24', '10.244.1.0/24']);
    used.delete(a);
    expect(allocatePodCidr(cluster, used)).toBe('10.244.0.0/24');
    const small = parseCidr4('10.0.0.0/23');
    expect(allocatePodCidr(small, new Set(['10.0.0.0/24', '10.0.1.0/24']))).toBeUndefined();
  });

  it('rejects IPv6 CIDRs with a clear error', () => {
    expect(() => parseCidr4('fd00::/64')).toThrow(/only IPv4/);
  });
});
