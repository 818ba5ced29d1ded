/**
 * The ipset sets and the small, fixed iptables ruleset of kube-proxy's IPVS mode
 * (https://github.com/kubernetes/kubernetes/blob/master/pkg/proxy/ipvs/README.md): IPVS does
 * the load balancing; iptables only marks for masquerade what needs it, matched through sets:
 *   KUBE-CLUSTER-IP   hash:ip,port     service VIP:port — masquerade when the source is outside clusterCIDR
 *   KUBE-EXTERNAL-IP  hash:ip,port     external/LB IP:port — always masquerade
 *   KUBE-LOOP-BACK    hash:ip,port,ip  endpoint:port,endpoint — hairpin, masquerade
 *   KUBE-NODE-PORT-TCP/UDP bitmap:port NodePorts — masquerade
 * Pure: model → sets and the restore payload.
 */
import { categorizeEndpoints, type ProxyModel } from '../model.js';
import type { IpSetSpec } from './host.js';
import type { JumpRule } from '../iptables/rules.js';

export const ipvsSetNames = ['KUBE-CLUSTER-IP', 'KUBE-EXTERNAL-IP', 'KUBE-LOOP-BACK', 'KUBE-NODE-PORT-TCP', 'KUBE-NODE-PORT-UDP'];

export function ipvsSets(model: ProxyModel): IpSetSpec[] {
  const cluster = new Set<string>();
  const external = new Set<string>();
  const loopback = new Set<string>();
  const nodePorts = { TCP: new Set<string>(), UDP: new Set<string>() } as Record<string, Set<string>>;
  for (const port of model.ports) {
    if (port.protocol === 'SCTP') continue;
    const proto = port.protocol.toLowerCase();
    cluster.add(`${port.clusterIP},${proto}:${port.port}`);
    for (const ip of [...port.externalIPs, ...port.loadBalancerIPs]) external.add(`${ip},${proto}:${port.port}`);
    for (const endpoint of categorizeEndpoints(port).cluster) loopback.add(`${endpoint.ip},${proto}:${endpoint.port},${endpoint.ip}`);
    if (port.nodePort > 0) nodePorts[port.protocol]!.add(String(port.nodePort));
  }
  return [
    { name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port', entries: [...cluster].sort() },
    { name: 'KUBE-EXTERNAL-IP', type: 'hash:ip,port', entries: [...external].sort() },
    { name: 'KUBE-LOOP-BACK', type: 'hash:ip,port,ip', entries: [...loopback].sort() },
    { name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port', entries: [...nodePorts.TCP!].sort() },
    { name: 'KUBE-NODE-PORT-UDP', type: 'bitmap:port', entries: [...nodePorts.UDP!].sort() },
  ];
}

const comment = (text: string) => ['-m', 'comment', '--comment', `"${text}"`].join(' ');

export const ipvsJumpRules: readonly JumpRule[] = [
  { table: 'nat', chain: 'PREROUTING', args: ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
  { table: 'nat', chain: 'OUTPUT', args: ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
  { table: 'nat', chain: 'POSTROUTING', args: ['-m', 'comment', '--comment', 'kubernetes postrouting rules', '-j', 'KUBE-POSTROUTING'] },
  { table: 'filter', chain: 'FORWARD', args: ['-m', 'comment', '--comment', 'kubernetes forwarding rules', '-j', 'KUBE-FORWARD'] },
];

/** The whole fixed ruleset (rewritten at every sync; it does not grow with the services). */
export function ipvsRestorePayload(options: { clusterCIDRs: string[]; masqueradeAll: boolean; masqueradeBit: number }): string {
  const mark = `0x${(1 << options.masqueradeBit >>> 0).toString(16)}`;
  const clusterMasq = options.masqueradeAll
    ? [`-A KUBE-SERVICES ${comment('Kubernetes service cluster ip + port for masquerade purpose')} -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ`]
    : options.clusterCIDRs.map((cidr) => `-A KUBE-SERVICES ${comment('Kubernetes service cluster ip + port for masquerade purpose')} -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s ${cidr} -j KUBE-MARK-MASQ`);
  return [
    '*filter',
    ':KUBE-FORWARD - [0:0]',
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    `-A KUBE-FORWARD ${comment('kubernetes forwarding rules')} -m mark --mark ${mark}/${mark} -j ACCEPT`,
    `-A KUBE-FORWARD ${comment('kubernetes forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    'COMMIT',
    '*nat',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
    ':KUBE-NODE-PORT - [0:0]',
    ...clusterMasq,
    `-A KUBE-SERVICES ${comment('Kubernetes service external ip + port for masquerade')} -m set --match-set KUBE-EXTERNAL-IP dst,dst -j KUBE-MARK-MASQ`,
    `-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT`,
    `-A KUBE-NODE-PORT -p tcp ${comment('Kubernetes nodeport TCP port for masquerade purpose')} -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ`,
    `-A KUBE-NODE-PORT -p udp ${comment('Kubernetes nodeport UDP port for masquerade purpose')} -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ`,
    `-A KUBE-POSTROUTING ${comment('Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose')} -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE`,
    `-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`,
    `-A KUBE-POSTROUTING ${comment('kubernetes service traffic requiring SNAT')} -j MASQUERADE`,
    `-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`,
    'COMMIT',
    '',
  ].join('\n');
}
