import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { bridgeLoopbackInto } from '../helpers/loopback-bridge.js';
import { TestNetwork } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';

const env = await prerequisites('root', 'command:ip', 'command:busybox');

describe.skipIf(env.skip)('loopback bridge into a test netns', () => {
  const network = new TestNetwork();
  afterAll(() => network.cleanup());

  it('lets a process in the netns reach a loopback server of the root namespace', async () => {
    const server = createServer((_req, res) => res.end('from root loopback'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const targetPort = (server.address() as AddressInfo).port;
    const node = await network.node('bridge');
    const bridge = await bridgeLoopbackInto(node.name, targetPort);
    try {
      const { stdout } = await node.exec(['busybox', 'wget', '-q', '-O', '-', `http://127.0.0.1:${bridge.port}/`], { timeoutMs: 10_000 });
      expect(stdout).toBe('from root loopback');
    } finally {
      await bridge.stop();
      server.close();
    }
  });
});
