/**
 * The files a pod sees at /etc/resolv.conf, /etc/hostname and /etc/hosts. The runtime writes
 * them into a per-sandbox directory and bind-mounts them into the pause container and every
 * container of the pod (unless the container's own mounts cover the path, e.g. the kubelet's
 * managed etc-hosts), which is what dockershim achieved by rewriting Docker's files
 * (dockershim/docker_sandbox.go rewriteResolvFile). The DNSConfig comes from the agent, which
 * computes it from clusterDNS/clusterDomain/dnsPolicy (kubelet pkg/kubelet/network/dns).
 *
 * Rewrites keep the inode (truncate + write), because a bind mount of a file follows the inode.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DNSConfig } from '../runtime.js';

export const podFileNames = { resolvConf: 'resolv.conf', hostname: 'hostname', hosts: 'hosts' } as const;
export const podFileTargets = { resolvConf: '/etc/resolv.conf', hostname: '/etc/hostname', hosts: '/etc/hosts' } as const;

/** resolv.conf text; an empty DNSConfig means "no DNS" (the file still exists, empty). */
export function resolvConf(dns: DNSConfig | undefined): string {
  if (!dns) return '';
  const lines: string[] = [];
  if (dns.searches.length > 0) lines.push(`search ${dns.searches.join(' ')}`);
  for (const server of dns.servers) lines.push(`nameserver ${server}`);
  if (dns.options.length > 0) lines.push(`options ${dns.options.join(' ')}`);
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** /etc/hosts as the kubelet writes it for a pod (kubelet_pods.go managedHostsFileContent). */
export function hostsFile(hostname: string, podIPs: string[]): string {
  const lines = [
    '# Kubernetes-managed hosts file.',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
  ];
  for (const ip of podIPs) if (hostname) lines.push(`${ip}\t${hostname}`);
  return `${lines.join('\n')}\n`;
}

export class PodFiles {
  constructor(readonly dir: string) {}

  path(name: keyof typeof podFileNames): string {
    return join(this.dir, podFileNames[name]);
  }

  async write(hostname: string, dns: DNSConfig | undefined, podIPs: string[]): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    // Side by side: three files, each written once, before every sandbox's create.
    await Promise.all([
      writeFile(this.path('resolvConf'), resolvConf(dns), { mode: 0o644 }),
      writeFile(this.path('hostname'), hostname ? `${hostname}\n` : '', { mode: 0o644 }),
      writeFile(this.path('hosts'), hostsFile(hostname, podIPs), { mode: 0o644 }),
    ]);
  }

  /** Rewrites /etc/hosts once the pod IPs are known (same inode: writeFile truncates). */
  async setPodIPs(hostname: string, podIPs: string[]): Promise<void> {
    await writeFile(this.path('hosts'), hostsFile(hostname, podIPs));
  }

  async read(name: keyof typeof podFileNames): Promise<string> {
    return readFile(this.path(name), 'utf8');
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
