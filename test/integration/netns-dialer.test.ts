/**
 * Port-forward connections into a network namespace (cri/docker/port-forward.ts with the
 * per-namespace helper of cri/docker/netns-dialer.ts): the first connection goes through
 * nsenter + socat, later ones through a socket the helper connects inside the namespace and
 * passes to this process. A real server (socat) listens on the namespace's own loopback and
 * speaks first, so a byte read by the helper instead of being handed over would show.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Duplex, PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsDialer } from '../../cri/docker/netns-dialer.js';
import { portForward } from '../../cri/docker/port-forward.js';
import { createLogger } from '../../lib/log.js';
import { TestNetwork, type Netns } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'command:socat', 'command:nsenter');

/** Forwards one connection; resolves with what the pod's server sent back. */
async function forwardOnce(netns: string, port: number, send: Buffer, dialer: NetnsDialer): Promise<Buffer> {
  const input = new PassThrough();
  const output = new PassThrough();
  const stream = Duplex.from({ readable: input, writable: output });
  const chunks: Buffer[] = [];
  output.on('data', (chunk: Buffer) => chunks.push(chunk));
  input.end(send);
  await portForward(netns, 'sandbox', port, stream, dialer);
  return Buffer.concat(chunks);
}

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(env.skip)('port-forward into a netns through the per-namespace helper', () => {
  const net = new TestNetwork();
  let pod: Netns;
  let server: ChildProcess;
  const port = 9000 + (randomBytes(2).readUInt16BE(0) % 1000);
  const log = createLogger('test', 'silent');

  beforeAll(async () => {
    pod = await net.namespace('pf');
    // Greets, then echoes: a server that speaks first.
    server = spawn('nsenter', [`--net=${pod.path}`, 'socat', `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, 'SYSTEM:echo hello; exec cat'], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      const probe = await pod.exec(['socat', '-T', '1', '-', `TCP4:127.0.0.1:${port}`], { allowFailure: true, input: '' });
      if (probe.code === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  afterAll(async () => {
    server?.kill();
    await net.cleanup();
  });

  it('serves the first connection through socat, later ones through the helper, byte for byte', async () => {
    const dialer = new NetnsDialer({ log });
    try {
      const payload = randomBytes(4 * 1024 * 1024);
      const first = await forwardOnce(pod.path, port, payload, dialer);
      expect(first.subarray(0, 6).toString()).toBe('hello\n');
      expect(first.subarray(6).equals(payload)).toBe(true);
      expect(dialer.running).toBe(1);
      await until('the helper', () => dialer.ready === 1);
      for (let i = 0; i < 3; i++) {
        const again = await forwardOnce(pod.path, port, payload, dialer);
        expect(again.subarray(0, 6).toString()).toBe('hello\n');
        expect(again.subarray(6).equals(payload)).toBe(true);
      }
      // A port nobody listens on: the error socat would print.
      await expect(forwardOnce(pod.path, port + 1, Buffer.from('x'), dialer)).rejects.toThrow(/Connection refused/);
    } finally {
      dialer.close();
    }
    expect(dialer.running).toBe(0);
  });

  it('ends an idle helper', async () => {
    const dialer = new NetnsDialer({ log, idleMs: 300 });
    try {
      expect(await dialer.dial(pod.path, port)).toBeUndefined();
      expect(dialer.running).toBe(1);
      await until('the idle helper to exit', () => dialer.running === 0);
    } finally {
      dialer.close();
    }
  });
});
