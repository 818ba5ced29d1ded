/**
 * The non-conntrack sysctl kube-proxy's iptables mode sets (pkg/proxy/iptables/proxier.go
 * NewProxier): net.ipv4.conf.all.route_localnet = 1 when localhostNodePorts is true, so that a
 * NodePort reached on 127.0.0.1 can be DNATed to a pod (the kernel otherwise drops the packet as
 * martian). It is a sysctl of the network namespace the proxy runs in. The rules that keep
 * outside packets to 127.0.0.0/8 out are in proxy/iptables/rules.ts.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Logger } from '../lib/log.js';

export async function ensureRouteLocalnet(log: Logger, file = '/proc/sys/net/ipv4/conf/all/route_localnet'): Promise<boolean> {
  const current = (await readFile(file, 'utf8')).trim();
  if (current === '1') return false;
  await writeFile(file, '1');
  log.info({ sysctl: 'net.ipv4.conf.all.route_localnet', from: current, to: '1' }, 'localhostNodePorts: route_localnet set');
  return true;
}
