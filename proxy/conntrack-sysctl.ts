/**
 * kube-proxy's conntrack settings (cmd/kube-proxy/app/server_linux.go setupConntrack,
 * conntrack.go): nf_conntrack_max = max(conntrack.maxPerCore × CPUs, conntrack.min) when
 * maxPerCore > 0; the TCP established / close-wait and UDP timeouts when > 0. Each sysctl is
 * written only when it differs (kube-proxy's setIntSysCtl). They are the sysctls of the network
 * namespace the proxy runs in (/proc/sys/net/netfilter is per netns), so a test node's proxy
 * changes only its own netns. nf_conntrack_max is read-only outside the initial netns on current
 * kernels: that is a warning, as kube-proxy's "/sys is read-only" case. The module-wide hashsize
 * (/sys/module/nf_conntrack/parameters/hashsize) is not touched: it is global to the machine.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { KubeProxyConfiguration } from '../lib/config/kubeproxy.js';
import type { Logger } from '../lib/log.js';

interface Sysctl {
  name: string;
  value: number;
}

/** The sysctls (under /proc/sys/net/netfilter) the conntrack section asks for. Pure. */
function conntrackSysctls(conntrack: KubeProxyConfiguration['conntrack'], cpus: number): Sysctl[] {
  const list: Sysctl[] = [];
  if (conntrack.maxPerCore > 0) list.push({ name: 'nf_conntrack_max', value: Math.max(conntrack.maxPerCore * cpus, conntrack.min) });
  const seconds = (ms: number) => Math.floor(ms / 1000);
  if (conntrack.tcpEstablishedTimeout > 0) list.push({ name: 'nf_conntrack_tcp_timeout_established', value: seconds(conntrack.tcpEstablishedTimeout) });
  if (conntrack.tcpCloseWaitTimeout > 0) list.push({ name: 'nf_conntrack_tcp_timeout_close_wait', value: seconds(conntrack.tcpCloseWaitTimeout) });
  if (conntrack.udpTimeout > 0) list.push({ name: 'nf_conntrack_udp_timeout', value: seconds(conntrack.udpTimeout) });
  if (conntrack.udpStreamTimeout > 0) list.push({ name: 'nf_conntrack_udp_timeout_stream', value: seconds(conntrack.udpStreamTimeout) });
  return list;
}

/** Writes the sysctls that differ; returns the ones written. A read-only nf_conntrack_max is a warning. */
export async function applyConntrackSysctls(conntrack: KubeProxyConfiguration['conntrack'], log: Logger, dir = '/proc/sys/net/netfilter', cpus = availableParallelism()): Promise<Sysctl[]> {
  const written: Sysctl[] = [];
  for (const sysctl of conntrackSysctls(conntrack, cpus)) {
    const file = join(dir, sysctl.name);
    let current: number;
    try {
      current = Number((await readFile(file, 'utf8')).trim());
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read the conntrack sysctl ${file}`, { cause: error });
      log.warn({ sysctl: sysctl.name }, 'conntrack sysctl missing (nf_conntrack not loaded?); not set');
      continue;
    }
    if (current === sysctl.value) continue;
    try {
      await writeFile(file, String(sysctl.value));
      written.push(sysctl);
      log.info({ sysctl: sysctl.name, from: current, to: sysctl.value }, 'conntrack sysctl set');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (sysctl.name === 'nf_conntrack_max' && (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')) {
        log.warn({ current, wanted: sysctl.value }, 'nf_conntrack_max is read-only in this network namespace (the kernel allows it only in the initial one); conntrack.maxPerCore/min not applied');
        continue;
      }
      throw new Error(`cannot set the conntrack sysctl ${sysctl.name} to ${sysctl.value}`, { cause: error });
    }
  }
  return written;
}
