/**
 * `knode overlay` for tests and benchmarks without `npm run build`: the same runner the CLI
 * calls (overlay/command.ts), bundled by test/helpers/cni-harness.ts, flags parsed by commander
 * as in bin/cli.ts. Stops on SIGTERM.
 */
import { Command } from 'commander';
import { createLogger } from '../../lib/log.js';
import { run } from '../../overlay/command.js';

const program = new Command('overlay')
  .option('--kubeconfig <file>')
  .option('--net-conf <file>')
  .option('--iface <name>')
  .option('--subnet-file <file>')
  .option('--hostname-override <name>')
  .option('--ip-masq')
  .option('--log-level <level>', '', 'info');
program.parse(process.argv);
const options = program.opts<Record<string, string | boolean>>();
const log = createLogger('overlay', String(options.logLevel));
try {
  const daemon = await run(options, log);
  process.stdout.write('overlay ready\n');
  const stop = () => {
    if (!daemon) process.exit(0);
    daemon.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (error) {
  log.error({ err: error }, 'overlay failed');
  process.exit(1);
}
