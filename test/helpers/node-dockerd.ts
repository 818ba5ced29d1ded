/**
 * A dockerd of a test's own, inside a test netns (never the shared engine): its own data root,
 * exec root, pidfile, socket and containerd namespace, without bridge/iptables/forwarding
 * changes (network safety rule, docs/architecture.md, "Testing"). It can be stopped and started again,
 * which is how tests restart the container runtime.
 *
 *   const runtime = nodeDockerd(netns, dir, 'abc123');
 *   await runtime.start();        // runtime.docker, runtime.endpoint (unix://…)
 *   await runtime.stop();         // SIGTERM (its containers stop with it), SIGKILL after 30 s
 *   await runtime.cleanup();      // stop + unmount what dockerd left under dir
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import Docker from 'dockerode';
import { run } from '../../lib/exec.js';
import { waitFor } from './wait.js';

export interface NodeDockerd {
  readonly docker: Docker;
  readonly endpoint: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  cleanup(): Promise<void>;
}

export function nodeDockerd(netns: { path: string }, dir: string, id: string): NodeDockerd {
  const socket = join(dir, 'd.sock');
  const docker = new Docker({ socketPath: socket });
  let daemon: ChildProcess | undefined;
  const stop = async () => {
    const child = daemon;
    daemon = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    docker,
    endpoint: `unix://${socket}`,
    start: async () => {
      // nsenter, not `ip netns exec`: the latter remounts /sys, which hides the cgroup mounts.
      const args = [
        `--net=${netns.path}`, 'dockerd',
        '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'x'), '--pidfile', join(dir, 'docker.pid'),
        '-H', `unix://${socket}`, '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--ip-forward=false',
        '--storage-driver=vfs', '--containerd-namespace', `knt-${id}`, '--containerd-plugins-namespace', `knt-${id}-p`,
      ];
      daemon = spawn('nsenter', args, { stdio: 'ignore' });
      await waitFor('the test dockerd', async () => ((await docker.ping()) ? true : undefined), 60_000, 200);
    },
    stop,
    cleanup: async () => {
      await stop();
      // dockerd leaves its own netns bind-mounted under the exec root
      for (const sub of ['x/netns/default', 'x', 'data']) await run(['umount', '-R', '-l', join(dir, sub)], { allowFailure: true });
    },
  };
}
