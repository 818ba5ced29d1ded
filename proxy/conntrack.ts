/**
 * Stale UDP conntrack entries. UDP has no connection teardown, so an entry that was NATed to an
 * endpoint that went away (or that was made while the service had no endpoints and so was not
 * NATed at all) keeps steering a client's packets into the void until it times out — the
 * long-standing kube-proxy bug class of kubernetes #19029 and #48370. As kube-proxy
 * (pkg/proxy/conntrack/cleanup.go), after each successful sync:
 *  - an endpoint removed from a UDP service port → delete entries to each service IP (cluster,
 *    external, load balancer) that were DNATed to it, and NodePort entries DNATed to it;
 *  - a UDP service port that goes from no endpoints to some → delete entries to its service
 *    IPs and NodePort, so that clients stop hitting the cached un-NATed flow.
 * The decision is pure (`staleConntrack`); `ConntrackTool` carries it out with `conntrack -D`.
 */
import { run } from '../lib/exec.js';
import { categorizeEndpoints, type ServicePort } from './model.js';

type ConntrackAction =
  | { kind: 'nat'; serviceIP: string; endpointIP: string }
  | { kind: 'nodeport-nat'; nodePort: number; endpointIP: string }
  | { kind: 'service-ip'; serviceIP: string }
  | { kind: 'nodeport'; nodePort: number };

const serviceIPs = (port: ServicePort) => [port.clusterIP, ...port.externalIPs, ...port.loadBalancerIPs];

/** What to delete, given the service ports before and after a sync. */
export function staleConntrack(before: ReadonlyMap<string, ServicePort>, after: ReadonlyMap<string, ServicePort>): ConntrackAction[] {
  const actions: ConntrackAction[] = [];
  for (const [key, old] of before) {
    if (old.protocol !== 'UDP') continue;
    const next = after.get(key);
    const oldEndpoints = new Set(categorizeEndpoints(old).cluster.map((endpoint) => endpoint.ip));
    const newEndpoints = new Set(next ? categorizeEndpoints(next).cluster.map((endpoint) => endpoint.ip) : []);
    for (const ip of oldEndpoints) {
      if (newEndpoints.has(ip)) continue;
      for (const serviceIP of serviceIPs(old)) actions.push({ kind: 'nat', serviceIP, endpointIP: ip });
      if (old.nodePort > 0) actions.push({ kind: 'nodeport-nat', nodePort: old.nodePort, endpointIP: ip });
    }
  }
  for (const [key, next] of after) {
    if (next.protocol !== 'UDP') continue;
    const old = before.get(key);
    const hadNone = !old || categorizeEndpoints(old).cluster.length === 0;
    if (!hadNone || categorizeEndpoints(next).cluster.length === 0) continue;
    for (const serviceIP of serviceIPs(next)) actions.push({ kind: 'service-ip', serviceIP });
    if (next.nodePort > 0) actions.push({ kind: 'nodeport', nodePort: next.nodePort });
  }
  const seen = new Set<string>();
  return actions.filter((action) => {
    const id = JSON.stringify(action);
    return seen.has(id) ? false : (seen.add(id), true);
  });
}

export interface Conntrack {
  apply(action: ConntrackAction): Promise<void>;
}

export function conntrackArgs(action: ConntrackAction): string[] {
  switch (action.kind) {
    case 'nat': return ['-D', '-p', 'udp', '--orig-dst', action.serviceIP, '--dst-nat', action.endpointIP];
    case 'nodeport-nat': return ['-D', '-p', 'udp', '--orig-port-dst', String(action.nodePort), '--dst-nat', action.endpointIP];
    case 'service-ip': return ['-D', '-p', 'udp', '--orig-dst', action.serviceIP];
    case 'nodeport': return ['-D', '-p', 'udp', '--orig-port-dst', String(action.nodePort)];
  }
}

/** `conntrack -D …`; "0 flow entries" (exit 1 with that message) is success. */
export class ConntrackTool implements Conntrack {
  constructor(private readonly prefix: readonly string[] = []) {}
  async apply(action: ConntrackAction): Promise<void> {
    const command = [...this.prefix, 'conntrack', ...conntrackArgs(action)];
    const result = await run(command, { allowFailure: true, timeoutMs: 30_000 });
    if (result.code !== 0 && !/0 flow entries/.test(result.stderr)) {
      throw new Error(`"${command.join(' ')}" failed: ${result.stderr.trim()}`);
    }
  }
}

/** Carries out staleConntrack(before, after); a failed deletion is counted and logged, not thrown. */
export async function cleanStaleConntrack(conntrack: Conntrack, before: ReadonlyMap<string, ServicePort>, after: ReadonlyMap<string, ServicePort>, onError: (error: unknown, action: ConntrackAction) => void): Promise<void> {
  for (const action of staleConntrack(before, after)) {
    try {
      await conntrack.apply(action);
    } catch (error) {
      onError(error, action);
    }
  }
}

export class FakeConntrack implements Conntrack {
  readonly actions: ConntrackAction[] = [];
  async apply(action: ConntrackAction): Promise<void> {
    this.actions.push(action);
  }
}
const _conntrackCheck: Conntrack = new FakeConntrack();
void _conntrackCheck;
