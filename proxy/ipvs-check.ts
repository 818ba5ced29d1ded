/**
 * The IPVS mode needs the kernel's ip_vs (kube-proxy checks the same at start,
 * pkg/proxy/ipvs/util: CanUseIPVSProxier): without it `--proxy-mode ipvs` stops at start with a
 * message that says so.
 */
import { existsSync } from 'node:fs';

interface IpvsSupport {
  kernel: boolean;
  reason?: string;
}

export function ipvsKernelSupport(procNetIpVs = '/proc/net/ip_vs', sysModule = '/sys/module/ip_vs'): IpvsSupport {
  if (existsSync(procNetIpVs) || existsSync(sysModule)) return { kernel: true };
  return {
    kernel: false,
    reason: `this kernel has no IPVS (neither ${procNetIpVs} nor ${sysModule} exists: CONFIG_IP_VS is unset or the ip_vs module is not loaded — try "modprobe ip_vs")`,
  };
}

export function ipvsStartError(support: IpvsSupport): Error {
  return new Error(`--proxy-mode ipvs cannot start: ${support.reason ?? 'IPVS is unavailable'}; use --proxy-mode iptables`);
}
