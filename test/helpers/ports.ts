// Free loopback ports for tests and benches that start servers which must be told their port.
import { createServer } from 'node:net';

/** A free TCP port on 127.0.0.1 right now (for servers that must be told their port). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
