/**
 * `knode proxy --cleanup`, IPVS part: the virtual servers the proxy made (those on kube-ipvs0
 * addresses, and NodePort ones — ports listed in its KUBE-NODE-PORT-TCP/UDP sets), then (after
 * the iptables rules that reference them are gone) the ipset sets and kube-ipvs0 itself.
 * Without IPVS in the kernel only the sets and the interface are looked for.
 */
import { run } from '../../lib/exec.js';
import { CommandIpvsHost } from './host.js';
import { NetlinkIpvs } from './netlink-ipvs.js';
import { ipvsSetNames } from './rules.js';
import { ipvsKernelSupport } from '../ipvs-check.js';

async function setMembers(name: string): Promise<Set<string>> {
  const result = await run(['ipset', 'list', name], { allowFailure: true }).catch(() => undefined);
  if (!result || result.code !== 0) return new Set();
  return new Set(result.stdout.split('Members:')[1]?.split('\n').map((line) => line.trim()).filter(Boolean) ?? []);
}

export async function cleanupIpvs(): Promise<void> {
  const host = new CommandIpvsHost();
  const bound = new Set(await host.boundAddresses());
  const nodePorts = { TCP: await setMembers('KUBE-NODE-PORT-TCP'), UDP: await setMembers('KUBE-NODE-PORT-UDP'), SCTP: new Set<string>() };
  if (ipvsKernelSupport().kernel) {
    const ipvs = await NetlinkIpvs.open();
    try {
      for (const vs of await ipvs.listServices()) {
        if (bound.has(vs.address) || nodePorts[vs.protocol].has(String(vs.port))) await ipvs.deleteService(vs);
      }
    } finally {
      ipvs.close();
    }
  }
  await host.cleanup(ipvsSetNames);
}
