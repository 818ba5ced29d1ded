/**
 * Reaching a server on the root namespace's loopback (say the control-plane stub on
 * 127.0.0.1:PORT) from a process inside a test network namespace, whose loopback is its own.
 * Unix sockets are not bound to a network namespace, so the bridge is two hops:
 *
 *   netns: 127.0.0.1:LOCAL  ──(forwarder process started with `ip netns exec`)──►  unix socket
 *   root:  unix socket  ──(server in this process)──►  127.0.0.1:TARGET
 *
 * Only loopback addresses are used on both sides: no packet leaves either namespace, and no
 * network state changes (network safety rule, docs/architecture.md, "Testing").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertNamespaced } from './netns.js';

export interface LoopbackBridge {
  /** Port on 127.0.0.1 inside the netns that leads to the target. */
  port: number;
  stop(): Promise<void>;
}

const forwarderSource = `
const net = require('node:net');
const [socketPath, port] = process.argv.slice(1);
const server = net.createServer((client) => {
  const upstream = net.connect(socketPath);
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready ' + server.address().port + '\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

function unixToTcp(socketPath: string, targetPort: number): Promise<Server> {
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve(server));
  });
}

function waitForReady(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`loopback bridge forwarder did not start: ${output}`)), 15_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /ready (\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`loopback bridge forwarder exited with ${code}: ${output}`));
    });
  });
}

/**
 * Makes 127.0.0.1:targetPort of the root namespace reachable as 127.0.0.1:<port> inside the
 * named test netns. `localPort` 0 picks a free port; pass the target's port to keep URLs equal.
 */
export async function bridgeLoopbackInto(netnsName: string, targetPort: number, localPort = 0): Promise<LoopbackBridge> {
  const command = ['ip', 'netns', 'exec', netnsName, process.execPath, '-e', forwarderSource];
  assertNamespaced(command);
  const dir = mkdtempSync(join(tmpdir(), 'knode-bridge-'));
  const socketPath = join(dir, 'sock');
  const server = await unixToTcp(socketPath, targetPort);
  const child = spawn(command[0]!, [...command.slice(1), socketPath, String(localPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = async () => {
    child.kill('SIGTERM');
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await waitForReady(child);
    child.removeAllListeners('exit');
    return { port, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
