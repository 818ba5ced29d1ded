/**
 * lib/sd-notify.ts against the real systemd-notify, with a receiver that speaks the sd_notify
 * protocol as systemd does (a unix datagram socket; the BARRIER=1 message carries a pipe whose
 * closing acknowledges it). Under a real systemd: test/e2e/systemd.test.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { notifyReady } from '../../lib/sd-notify.js';
import { prerequisites } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const env = await prerequisites('command:systemd-notify', 'command:python3');

// Receives datagrams, closes every passed fd (the barrier's acknowledgement), prints each message.
const receiver = `
import array, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
            for fd in fds:
                import os
                os.close(fd)
    print(repr(data.decode()), flush=True)
`;

describe.skipIf(env.skip)('sd_notify readiness through systemd-notify', () => {
  const dir = mkdtempSync(join(tmpdir(), 'knode-sd-notify-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const log = createLogger('test', 'silent');

  it('does nothing without NOTIFY_SOCKET, and sends READY=1 with STATUS= once it is set', async () => {
    await notifyReady(log, 'not under systemd', {});
    const socket = join(dir, 'notify.sock');
    const python = spawn('python3', ['-c', receiver, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    python.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitFor('the receiver to listen', () => output.includes('listening'), 10_000);
      await notifyReady(log, 'serving on 127.0.0.1:6443', { PATH: process.env.PATH, NOTIFY_SOCKET: socket });
      await waitFor('READY=1', () => output.includes('READY=1'), 10_000);
      expect(output).toContain('STATUS=serving on 127.0.0.1:6443');
      // systemd-notify waited for the acknowledgement: the barrier came after the message.
      expect(output).toContain('BARRIER=1');
      // Only the first call sends.
      const sent = output;
      await notifyReady(log, 'again', { PATH: process.env.PATH, NOTIFY_SOCKET: socket });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(output).toBe(sent);
    } finally {
      python.kill();
    }
  });
});
