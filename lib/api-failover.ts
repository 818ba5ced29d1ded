/**
 * Several API servers behind one loopback address, for a component whose kubeconfig lists more
 * than one (see lib/config/kubeconfig.ts, extension `knode.io/failover`). A kubeconfig cluster
 * holds one `server`, and client libraries (client-node here, client-go in the kubelet) dial only
 * that one; HA control planes are therefore reached through a load balancer. This is the
 * node-local kind k3s and RKE2 agents run (their agent load balancer on 127.0.0.1): a TCP
 * forwarder, so TLS stays end to end between the client and the API server and every client
 * (watches, exec/port-forward upgrades) works unchanged.
 *
 * Each new connection goes to the server that last accepted one; when it refuses (or does not
 * answer within the dial timeout) the next one in the list is tried. An established connection
 * that breaks is closed on both sides, so the client re-dials (and re-lists/re-watches) through
 * the forwarder, which then picks a live server.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from './log.js';

interface ApiFailoverOptions {
  /** host:port of each API server, in order of preference. */
  targets: { host: string; port: number }[];
  dialTimeoutMs?: number;
  /** Bound on concurrently forwarded connections. */
  maxConnections?: number;
  log?: Logger;
}

interface ApiFailover {
  /** The loopback port the forwarder listens on. */
  port: number;
  /** Index in `targets` of the server new connections go to first. */
  preferred(): number;
  close(): Promise<void>;
}

function dial(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => socket.destroy(new Error(`no answer from ${host}:${port} in ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export async function startApiFailover(options: ApiFailoverOptions): Promise<ApiFailover> {
  const { targets, dialTimeoutMs = 3_000, log } = options;
  if (targets.length === 0) throw new Error('API failover needs at least one server');
  let preferred = 0;

  const forward = async (client: Socket): Promise<void> => {
    client.pause();
    client.on('error', () => client.destroy());
    for (let attempt = 0; attempt < targets.length; attempt++) {
      if (client.destroyed) return;
      const index = (preferred + attempt) % targets.length;
      const target = targets[index]!;
      let upstream: Socket;
      try {
        upstream = await dial(target.host, target.port, dialTimeoutMs);
      } catch (error) {
        log?.warn({ err: error, server: `${target.host}:${target.port}` }, 'API server unreachable; trying the next one');
        continue;
      }
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      if (index !== preferred) log?.info({ server: `${target.host}:${target.port}` }, 'API connections now go to this server');
      preferred = index;
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      return;
    }
    log?.error({ servers: targets.map((t) => `${t.host}:${t.port}`) }, 'no API server reachable');
    client.destroy();
  };

  const server: Server = createServer((client) => void forward(client));
  server.maxConnections = options.maxConnections ?? 1_024;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.unref(); // lives as long as the process that uses it, never keeps it alive
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    preferred: () => preferred,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
