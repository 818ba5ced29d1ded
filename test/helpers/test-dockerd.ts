/**
 * A dockerd of a test's own inside a test node netns: own data root, exec root, pidfile,
 * socket and containerd namespace (never the shared engine), so that a test may stop and
 * restart it. Started through nsenter, not `ip netns exec` (which remounts /sys and hides the
 * cgroup mounts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import Docker from 'dockerode';
import { run } from '../../lib/exec.js';
import type { Netns } from './netns.js';
import { waitFor } from './wait.js';

export class TestDockerd {
  readonly docker: Docker;
  private daemon?: ChildProcess;

  constructor(
    private readonly node: Netns,
    private readonly dir: string,
    private readonly runId: string,
  ) {
    this.docker = new Docker({ socketPath: join(dir, 'd.sock') });
  }

  async start(): Promise<void> {
    const { dir, runId } = this;
    const args = [
      `--net=${this.node.path}`, 'dockerd',
      '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'x'), '--pidfile', join(dir, 'docker.pid'),
      '-H', `unix://${join(dir, 'd.sock')}`, '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--ip-forward=false',
      '--storage-driver=vfs', '--containerd-namespace', `knt-${runId}`, '--containerd-plugins-namespace', `knt-${runId}-p`,
    ];
    this.daemon = spawn('nsenter', args, { stdio: 'ignore' });
    await waitFor('the test dockerd', async () => ((await this.docker.ping()) ? true : undefined), 60_000);
  }

  /** SIGTERM (SIGKILL after 30 s); its containers die with it. */
  async stop(): Promise<void> {
    const child = this.daemon;
    this.daemon = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }

  /** The CRI-style endpoint of its socket (unix://…). */
  get endpoint(): string {
    return `unix://${join(this.dir, 'd.sock')}`;
  }

  /** Stops it and unmounts what it left under its directory. */
  async cleanup(): Promise<void> {
    await this.stop();
    await this.unmount();
  }

  get running(): boolean {
    return this.daemon !== undefined;
  }

  /** Unmounts what dockerd leaves mounted under its roots (its own netns bind mount too). */
  async unmount(): Promise<void> {
    for (const sub of ['x/netns/default', 'x', 'data']) await run(['umount', '-R', '-l', join(this.dir, sub)], { allowFailure: true });
  }
}
