/**
 * A test "node" for the proxy, all inside test network namespaces (network safety rule):
 *
 *   client netns 192.168.77.2 ──veth── 192.168.77.1 node netns ──veth── 10.244.K.1 | 10.244.K.2 pod K
 *
 * No default routes: the client routes only the service range and node address through the
 * node; pods route only 10.0.0.0/8 and 192.168.77.0/24 back through it. Each pod runs busybox
 * httpd serving its own name, or a UDP listener.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNetwork, type Netns } from '../helpers/netns.js';

export const nodeIP = '192.168.77.1';
export const clientIP = '192.168.77.2';

export interface Backend {
  name: string;
  ip: string;
  netns: Netns;
}

export interface Topology {
  net: TestNetwork;
  node: Netns;
  client: Netns;
  pods: Backend[];
  /** GET http://host:port/ from the client netns (or the node netns); the body, or an error text. */
  fetch(from: Netns, host: string, port: number): Promise<string>;
  stop(): Promise<void>;
}

export async function createTopology(podCount: number): Promise<Topology> {
  const net = new TestNetwork();
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'knode-proxy-test-'));
  const stop = async () => {
    for (const child of children) child.kill('SIGKILL');
    await net.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const node = await net.node('pxnode');
    await node.exec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const client = await net.namespace('pxclient');
    await net.link(node, client, { aAddress: `${nodeIP}/24`, bAddress: `${clientIP}/24` });
    await client.addRoute('10.96.0.0/12', { gateway: nodeIP });
    // The node needs a route for service IPs (a real node has its default route) so that OUTPUT
    // reaches the nat DNAT; it leads to a sink netns. (Routed back out of the interface it came
    // from, a REJECT's ICMP error is not delivered, so not via the client.)
    const sink = await net.namespace('pxsink');
    await net.link(node, sink, { aAddress: '192.168.78.1/24', bAddress: '192.168.78.2/24' });
    await node.addRoute('10.96.0.0/12', { gateway: '192.168.78.2' });
    const pods: Backend[] = [];
    for (let k = 1; k <= podCount; k++) {
      const name = `pod${k}`;
      const ip = `10.244.${k}.2`;
      const pod = await net.pod(node, `pxpod${k}`, { address: `${ip}/24`, nodeAddress: `10.244.${k}.1/24` });
      await pod.addRoute('10.0.0.0/8', { gateway: `10.244.${k}.1` });
      await pod.addRoute('192.168.77.0/24', { gateway: `10.244.${k}.1` });
      const root = join(dir, name);
      rmSync(root, { recursive: true, force: true });
      await import('node:fs/promises').then((fs) => fs.mkdir(root));
      writeFileSync(join(root, 'index.html'), name);
      const child = spawn('ip', ['netns', 'exec', pod.name, 'busybox', 'httpd', '-f', '-p', '80', '-h', root], { stdio: 'ignore' });
      children.push(child);
      pods.push({ name, ip, netns: pod });
    }
    const fetch = async (from: Netns, host: string, port: number) => {
      const result = await from.exec(['curl', '-s', '-S', '--max-time', '3', '--connect-timeout', '2', `http://${host}:${port}/`], { allowFailure: true, timeoutMs: 10_000 });
      return result.code === 0 ? result.stdout.trim() : `error: ${result.stderr.trim()}`;
    };
    // wait until every httpd answers on its pod address (from the node)
    for (const pod of pods) {
      const deadline = Date.now() + 15_000;
      while ((await fetch(node, pod.ip, 80)) !== pod.name) {
        if (Date.now() > deadline) throw new Error(`busybox httpd in ${pod.netns.name} did not answer`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return { net, node, client, pods, fetch, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** `count` GETs of host:port from `from`; how often each answer came back. */
export async function spread(topo: Topology, from: Netns, host: string, port: number, count: number): Promise<Map<string, number>> {
  const hits = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const body = await topo.fetch(from, host, port);
    hits.set(body, (hits.get(body) ?? 0) + 1);
  }
  return hits;
}

/** Polls `probe` until it returns true or the deadline passes. */
export async function eventually(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
