import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assertNamespaced, NetworkSafetyError, TestNetwork, type CommandRunner } from '../helpers/netns.js';

/** A runner that records commands instead of running them. */
function recorder(): { runner: CommandRunner; commands: string[][] } {
  const commands: string[][] = [];
  const runner: CommandRunner = async (command) => {
    commands.push(command);
    return { stdout: '', stderr: '', code: 0 };
  };
  return { runner, commands };
}

function scopedToTestNamespace(command: string[]): boolean {
  const [ip, first, second, third] = command;
  if (ip !== 'ip') return false;
  if (first === '-n') return second!.startsWith('knt-');
  return first === 'netns' && ['add', 'del', 'exec'].includes(second!) && third!.startsWith('knt-');
}

describe('network safety guard of the netns helpers', () => {
  it('scopes every command of a whole topology to a test namespace', async () => {
    const { runner, commands } = recorder();
    const network = new TestNetwork(runner);
    const nodeA = await network.node('a');
    const nodeB = await network.node('b');
    await network.link(nodeA, nodeB, { aAddress: '192.168.50.1/24', bAddress: '192.168.50.2/24' });
    const pod = await network.pod(nodeA, 'pod1', { address: '10.244.1.2/24', nodeAddress: '10.244.1.1/24' });
    await pod.addRoute('10.244.0.0/16', { gateway: '10.244.1.1' });
    await pod.exec(['ping', '-c1', '10.244.1.1']);
    await network.cleanup();
    expect(commands.length).toBeGreaterThan(10);
    for (const command of commands) expect(scopedToTestNamespace(command), command.join(' ')).toBe(true);
    const created = commands.filter((c) => c[1] === 'netns' && c[2] === 'add').map((c) => c[3]);
    const deleted = commands.filter((c) => c[1] === 'netns' && c[2] === 'del').map((c) => c[3]);
    expect(deleted.sort()).toEqual(created.sort());
  });

  it('refuses a default route in any form', async () => {
    const { runner, commands } = recorder();
    const network = new TestNetwork(runner);
    const node = await network.node('n');
    for (const destination of ['default', '0.0.0.0/0', '::/0']) {
      await expect(node.addRoute(destination, { gateway: '10.0.0.1' })).rejects.toBeInstanceOf(NetworkSafetyError);
    }
    await expect(node.ip('route', 'replace', 'default', 'dev', 'eth0')).rejects.toBeInstanceOf(NetworkSafetyError);
    expect(commands.some((c) => c.includes('default'))).toBe(false);
  });

  it.each([
    [['ip', 'link', 'add', 'br0', 'type', 'bridge']],
    [['ip', 'route', 'add', '10.244.0.0/16', 'dev', 'eth0']],
    [['ip', 'addr', 'add', '10.0.0.1/24', 'dev', 'eth0']],
    [['ip', '-n', '', 'link', 'add', 'x', 'type', 'dummy']],
    [['ip', '-n', 'default', 'link', 'add', 'x', 'type', 'dummy']],
    [['ip', 'netns', 'exec', 'other', 'ip', 'link']],
    [['ip', 'netns', 'add', 'knt-a/../../x']],
    [['iptables', '-A', 'FORWARD', '-j', 'ACCEPT']],
    [['sh', '-c', 'ip link add x type dummy']],
  ])('refuses a command that would touch the root namespace: %j', (command) => {
    expect(() => assertNamespaced(command)).toThrow(NetworkSafetyError);
  });

  it('accepts commands scoped to a test namespace', () => {
    expect(() => assertNamespaced(['ip', '-n', 'knt-abc-node', 'link', 'set', 'lo', 'up'])).not.toThrow();
    expect(() => assertNamespaced(['ip', 'netns', 'exec', 'knt-abc-node', 'ping', '-c1', '10.0.0.1'])).not.toThrow();
  });
});

// Issue 25 item 10: dockerd turns on net.ipv4.ip_forward in the netns it runs in unless told
// not to; every place that starts one must pass --ip-forward=false (and keep its bridge,
// iptables and masquerading off).
describe('every dockerd the project starts leaves the root network namespace alone', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const files = (dir: string): string[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? (entry.name === 'node_modules' ? [] : files(join(dir, entry.name))) : /\.(ts|sh)$/.test(entry.name) ? [join(dir, entry.name)] : [],
    );
  // A line that runs dockerd: a shell command or a spawn argument.
  const starters = ['scripts', 'test', 'bench', 'bin', 'systemd']
    .flatMap(files)
    .filter((file) => /(^|\s)(setsid\s+)?(nohup\s+)?dockerd\s+-H|'dockerd',/m.test(readFileSync(join(root, file), 'utf8')));

  it('finds the places that start one', () => expect(starters).toEqual(expect.arrayContaining(['scripts/start-dockerd.sh', 'test/helpers/test-dockerd.ts'])));

  it.each(starters)('%s', (file) => {
    const text = readFileSync(join(root, file), 'utf8');
    for (const flag of ['--bridge=none', '--iptables=false', '--ip-masq=false', '--ip-forward=false']) expect(text, `${file} ${flag}`).toContain(flag);
  });
});
