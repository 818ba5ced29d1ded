/**
 * The non-conntrack sysctl kube-proxy's iptables mode sets (pkg/proxy/iptables/proxier.go
 * NewProxier): net.ipv4.conf.all.route_localnet = 1 when localhostNodePorts is true, so that a
 * NodePort reached on 127.0.0.1 can be DNATed to a pod (the kernel otherwise drops the packet as
 * martian). It is a sysctl of the network namespace the proxy runs in. The rules that keep
 * outside packets to 127.0.0.0/8 out are in proxy/iptables/rules.ts. In ipvs mode with
 * ipvs.strictARP (pkg/proxy/ipvs/proxier.go NewProxier): arp_ignore=1 and arp_announce=2 on all
 * interfaces, so that service IPs bound to kube-ipvs0 are not answered for by other interfaces.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Logger } from '../lib/log.js';

async function ensureSysctl(name: string, value: string, log: Logger, why: string): Promise<boolean> {
  const file = `/proc/sys/${name.replace(/\./g, '/')}`;
  const current = (await readFile(file, 'utf8')).trim();
  if (current === value) return false;
  await writeFile(file, value);
  log.info({ sysctl: name, from: current, to: value }, `${why}: ${name.split('.').pop()} set`);
  return true;
}

export function ensureRouteLocalnet(log: Logger): Promise<boolean> {
  return ensureSysctl('net.ipv4.conf.all.route_localnet', '1', log, 'localhostNodePorts');
}

/** ipvs.strictARP: arp_ignore=1, arp_announce=2 (kube-proxy's values). */
export async function ensureStrictARP(log: Logger): Promise<void> {
  await ensureSysctl('net.ipv4.conf.all.arp_ignore', '1', log, 'ipvs.strictARP');
  await ensureSysctl('net.ipv4.conf.all.arp_announce', '2', log, 'ipvs.strictARP');
}
