/**
 * Runs only the CNI fast-path server (`node dist/cni/plugin-daemon.js SOCKET`): what the overlay
 * daemon embeds, on its own for tests and benchmarks. Stops on SIGTERM/SIGINT.
 */
import { CniSocketServer } from './plugin-server.js';

const socketPath = process.argv[2];
if (!socketPath) {
  process.stderr.write('usage: plugin-daemon SOCKET\n');
  process.exit(2);
}
const server = new CniSocketServer(socketPath);
await server.start();
process.stdout.write(`ready ${socketPath}\n`);
const stop = () => void server.stop().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
