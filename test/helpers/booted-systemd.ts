/**
 * A real systemd as PID 1 for tests (docs/architecture.md "Testing"; TESTING.md "A real systemd
 * as PID 1"): a Debian bookworm root made once with debootstrap from Debian's own packages and
 * cached under /var/cache/knode-test (keyed by what goes into it, so CI builds it once per
 * machine), booted with `systemd-nspawn -b`, and driven with `nsenter -t <its systemd> -a …`.
 *
 * Why it is built the way it is:
 * - `--volatile=overlay`: the cached root stays read-only under a tmpfs overlay, so every boot
 *   starts from the same clean system and several may run at once (unique machine names).
 * - `--private-network`: the container has its own network namespace with only loopback; the
 *   test adds links inside it (`ip link add … peer …` both ends inside), nothing in the root
 *   namespace, nothing leaves the machine (the network safety rule).
 * - `--register=no --keep-unit`: this machine has no systemd of its own (no machined).
 * - Docker inside (`docker: true`): /var/lib/docker is a host directory (overlay2 cannot sit on
 *   the overlayfs root), seccomp is off and every capability kept (runc needs them). On a cgroup
 *   v1 host nspawn mounts the controllers read-only; a unit baked into the root (before
 *   containerd/docker) re-mounts each one writable onto a sub-cgroup made for this machine
 *   only, so Docker's and the agent's cgroups land below it and go away with it.
 * - Time bound: nspawn runs under `timeout`, so a container outlives a crashed test run by at
 *   most `maxLifetimeSeconds`; shutdown() powers it off (SIGTERM → orderly halt), kills it if
 *   it does not stop, and removes the cgroups and directories made for it.
 *
 * Reusable as is for other systemd features (systemd-logind and dbus run: PrepareForShutdown,
 * inhibitor locks).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type ExecOptions, type ExecResult } from '../../lib/exec.js';
import { waitFor } from './wait.js';

export const cacheDir = '/var/cache/knode-test';

/** Debian packages of the root: a booting systemd with dbus/logind, the node's tools, Docker, the reference CNI plugins. */
export const rootPackages = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'iptables', 'kmod', 'conntrack', 'busybox-static', 'docker.io', 'containernetworking-plugins'];

// Docker in the container leaves its network namespace alone too (TESTING.md; pods are wired by CNI).
const dockerDaemonJson = JSON.stringify({ bridge: 'none', iptables: false, 'ip-masq': false, 'ip-forward': false }) + '\n';
const cgroupSetupPath = '/etc/knode-test/cgroup-setup.sh';
const cgroupUnit = `[Unit]
Description=knode test: writable cgroup v1 controllers for Docker in this container
DefaultDependencies=no
Before=containerd.service docker.service
ConditionPathExists=${cgroupSetupPath}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh ${cgroupSetupPath}

[Install]
WantedBy=sysinit.target
`;

/** The cache key: changes whenever what goes into the root changes. */
export const rootVersion = createHash('sha256').update(JSON.stringify([rootPackages, dockerDaemonJson, cgroupUnit])).digest('hex').slice(0, 12);

/** The Debian mirror this machine's apt sources name (deb822 or one-line), else KNODE_TEST_DEBIAN_MIRROR or deb.debian.org. */
export function debianMirror(sources = aptSources()): string {
  if (process.env.KNODE_TEST_DEBIAN_MIRROR) return process.env.KNODE_TEST_DEBIAN_MIRROR;
  for (const text of sources) {
    for (const block of text.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(block)?.[1];
      if (uri && /^Suites:.*\bbookworm(\s|$)/m.test(block) && !uri.includes('security')) return uri;
    }
    for (const line of text.split('\n')) {
      const match = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/.exec(line.trim());
      if (match && !match[1]!.includes('security')) return match[1]!;
    }
  }
  return 'http://deb.debian.org/debian';
}

function aptSources(): string[] {
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) files.push(...readdirSync(dir).map((name) => join(dir, name)));
  return files.filter((file) => existsSync(file)).map((file) => readFileSync(file, 'utf8'));
}

/**
 * The cached bookworm root with systemd, built on first use (debootstrap, a few minutes).
 * Concurrent callers wait on one lock (flock) and one build; a half-built root never gets the
 * final name.
 */
export async function bookwormSystemdRoot(): Promise<string> {
  const root = join(cacheDir, `bookworm-systemd-${rootVersion}`);
  if (existsSync(join(root, '.complete'))) return root;
  mkdirSync(cacheDir, { recursive: true });
  const staging = `${root}.build`;
  const script = [
    'set -eu',
    `[ -e '${root}/.complete' ] && exit 0`,
    `rm -rf '${staging}' '${root}'`,
    `debootstrap --variant=minbase --include=${rootPackages.join(',')} bookworm '${staging}' '${debianMirror()}'`,
    `mkdir -p '${staging}/etc/docker' '${staging}/etc/knode-test' '${staging}/etc/systemd/system/sysinit.target.wants'`,
    `printf '%s' '${dockerDaemonJson.trim()}' > '${staging}/etc/docker/daemon.json'`,
    `cat > '${staging}/etc/systemd/system/knode-test-cgroups.service' <<'UNIT'\n${cgroupUnit}UNIT`,
    `ln -sf ../knode-test-cgroups.service '${staging}/etc/systemd/system/sysinit.target.wants/knode-test-cgroups.service'`,
    `echo knode-systemd > '${staging}/etc/hostname'`,
    `touch '${staging}/.complete'`,
    `mv '${staging}' '${root}'`,
  ].join('\n');
  await run(['flock', join(cacheDir, 'bookworm-systemd.lock'), 'sh', '-c', script], { timeoutMs: 20 * 60_000 });
  return root;
}

export interface Bind {
  host: string;
  /** Path inside; the host path when omitted. */
  inside?: string;
  readOnly?: boolean;
}

export interface BootOptions {
  root: string;
  /** Unique per test file; 'knode-sd-<random>' by default. */
  name?: string;
  binds?: Bind[];
  /** Run Docker inside (writable cgroups, a host directory for /var/lib/docker). */
  docker?: boolean;
  /** The container is killed after this long even if the test run dies (default 600 s). */
  maxLifetimeSeconds?: number;
}

interface CgroupMount {
  mountPoint: string;
  hostDir: string;
}

/** cgroup v1 controller mounts and this process's cgroup in each (none on a cgroup v2 host). */
function cgroupV1Mounts(name: string): CgroupMount[] {
  const own = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers) own.set(controllers, path ?? '/');
  }
  const mounts: CgroupMount[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n')) {
    const [left, right] = line.split(' - ');
    const [fsType, , superOptions] = (right ?? '').split(' ');
    if (fsType !== 'cgroup' || !superOptions) continue;
    const mountPoint = left!.split(' ')[4]!;
    const controllers = superOptions.split(',').filter((option) => !['rw', 'ro'].includes(option) && !option.startsWith('name=') && !option.includes('=')).join(',');
    if (!controllers) continue; // name=systemd: nspawn delegates that one itself
    const path = own.get(controllers) ?? '/';
    mounts.push({ mountPoint, hostDir: join(mountPoint, path, name) });
  }
  return mounts;
}

function setupCgroups(name: string): { mounts: CgroupMount[]; script: string } {
  const mounts = cgroupV1Mounts(name);
  for (const mount of mounts) {
    mkdirSync(mount.hostDir, { recursive: true });
    if (mount.mountPoint.includes('cpuset')) {
      // A new cpuset cgroup has no cpus/mems; its children (Docker's) copy them from it.
      for (const file of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(mount.hostDir, file), readFileSync(join(mount.hostDir, '..', file)));
    }
  }
  // The read-only mount is replaced, not covered: runc takes the first mount of a controller
  // in mountinfo to find its cgroup, so a covered one would send it to the wrong directory.
  const lines = ['set -eu', 'mkdir -p /run/knode-test-cgroup', ...mounts.flatMap((m) => [
    `d=$(find '${m.mountPoint}' -maxdepth 6 -type d -name '${name}' -print -quit)`,
    `mount -o remount,bind,rw '${m.mountPoint}'`,
    'mount --bind "$d" /run/knode-test-cgroup',
    `umount '${m.mountPoint}'`,
    `mount --bind /run/knode-test-cgroup '${m.mountPoint}'`,
    'umount /run/knode-test-cgroup',
  ]), 'rmdir /run/knode-test-cgroup'];
  return { mounts, script: lines.join('\n') + '\n' };
}

/** Removes a cgroup directory tree, children first (only empty cgroups can go). */
function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeCgroupTree(join(dir, entry.name));
  rmdirSync(dir);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class BootedSystemd {
  private stopped = false;
  private output = '';

  private constructor(
    readonly name: string,
    private readonly nspawn: ChildProcess,
    /** The host pid of the container's systemd (PID 1 inside). */
    readonly pid: number,
    private readonly workDir: string,
    private readonly cgroups: CgroupMount[],
  ) {
    nspawn.stdout?.on('data', (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-20_000)));
    nspawn.stderr?.on('data', (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-20_000)));
  }

  /** Boots the root and waits until systemd says the system is running. */
  static async boot(options: BootOptions): Promise<BootedSystemd> {
    const name = options.name ?? `knode-sd-${randomBytes(4).toString('hex')}`;
    const workDir = join('/var/tmp', name);
    mkdirSync(workDir, { recursive: true });
    const args = ['-q', '-b', '-D', options.root, '-M', name, '--volatile=overlay', '--private-network', '--register=no', '--keep-unit'];
    for (const bind of options.binds ?? []) args.push(`--bind${bind.readOnly ? '-ro' : ''}=${bind.host}:${bind.inside ?? bind.host}`);
    let cgroups: CgroupMount[] = [];
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (options.docker) {
      mkdirSync(join(workDir, 'docker'), { recursive: true });
      args.push(`--bind=${join(workDir, 'docker')}:/var/lib/docker`, '--capability=all');
      env.SYSTEMD_SECCOMP = '0';
      const setup = setupCgroups(name);
      cgroups = setup.mounts;
      if (cgroups.length > 0) {
        writeFileSync(join(workDir, 'cgroup-setup.sh'), setup.script);
        args.push(`--bind-ro=${join(workDir, 'cgroup-setup.sh')}:${cgroupSetupPath}`);
      }
    }
    const lifetime = String(options.maxLifetimeSeconds ?? 600);
    const nspawn = spawn('timeout', ['--kill-after=20', lifetime, 'systemd-nspawn', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let pid: number;
    try {
      pid = await waitFor('the container\'s systemd to start', () => (nspawn.exitCode === null ? systemdPidUnder(nspawn.pid!) : Promise.reject(new Error('systemd-nspawn exited'))), 60_000, 100);
    } catch (error) {
      nspawn.kill('SIGKILL');
      cgroups.forEach((m) => removeCgroupTree(m.hostDir));
      rmSync(workDir, { recursive: true, force: true });
      throw error;
    }
    const machine = new BootedSystemd(name, nspawn, pid, workDir, cgroups);
    try {
      // Its bus answers a moment after systemd starts; until then (and while booting) ask again.
      const state = await waitFor('the container\'s boot to finish', async () => {
        const answer = (await machine.exec(['systemctl', 'is-system-running'], { allowFailure: true, timeoutMs: 30_000 })).stdout.trim();
        return ['running', 'degraded', 'maintenance', 'stopping'].includes(answer) ? answer : undefined;
      }, 120_000, 250);
      if (state !== 'running') {
        const failed = await machine.exec(['systemctl', '--failed', '--no-legend'], { allowFailure: true });
        throw new Error(`the container's systemd is "${state}", not running; failed units: ${failed.stdout.trim()}`);
      }
    } catch (error) {
      await machine.shutdown();
      throw error;
    }
    return machine;
  }

  /** Runs a command inside the container (all its namespaces: its files, its network, its PID 1). */
  exec(command: string[], options: ExecOptions = {}): Promise<ExecResult> {
    return run(['nsenter', '-t', String(this.pid), '-a', ...command], { env: cleanEnv, timeoutMs: 120_000, ...options });
  }

  /** Runs a host command in the container's network namespace only (e.g. the host's kubectl). */
  execNet(command: string[], options: ExecOptions = {}): Promise<ExecResult> {
    return run(['nsenter', '-t', String(this.pid), '-n', ...command], { timeoutMs: 120_000, ...options });
  }

  systemctl(...args: string[]): Promise<ExecResult> {
    return this.exec(['systemctl', ...args]);
  }

  /** `systemctl show -p A,B unit` as an object. */
  async show(unit: string, properties: string[]): Promise<Record<string, string>> {
    const { stdout } = await this.exec(['systemctl', 'show', '-p', properties.join(','), unit]);
    return Object.fromEntries(stdout.trim().split('\n').filter(Boolean).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
  }

  /** A path inside the container as seen from the host (through /proc/PID/root). */
  path(inside: string): string {
    return `/proc/${this.pid}/root${inside}`;
  }

  /** What the container printed (its console), for failure messages. */
  console(): string {
    return this.output;
  }

  /** Powers the container off (orderly halt), kills it if it does not stop, removes what was made for it. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const exited = new Promise<void>((resolve) => (this.nspawn.exitCode !== null || this.nspawn.signalCode !== null ? resolve() : this.nspawn.once('exit', () => resolve())));
    // SIGTERM to systemd-nspawn makes the container's systemd halt (SIGRTMIN+3).
    this.nspawn.kill('SIGTERM');
    const stopped = await Promise.race([exited.then(() => true), sleep(45_000).then(() => false)]);
    if (!stopped) {
      try {
        process.kill(this.pid, 'SIGKILL'); // the container's PID 1: its whole PID namespace goes
      } catch {
        // already gone
      }
      this.nspawn.kill('SIGKILL');
      await Promise.race([exited, sleep(10_000)]);
    }
    for (const mount of this.cgroups) {
      await waitFor(`cgroup ${mount.hostDir} to be removed`, () => {
        removeCgroupTree(mount.hostDir);
        return true;
      }, 20_000, 250).catch(() => undefined);
    }
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

/** The environment for commands inside: the container's own PATH, none of the host's settings. */
const cleanEnv: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' };

/** The pid of the `systemd` below systemd-nspawn (nspawn forks an intermediate child that execs it). */
function systemdPidUnder(ancestor: number): number | undefined {
  const parents = new Map<number, number>();
  const comms = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      comms.set(Number(entry), stat.slice(stat.indexOf('(') + 1, close));
      parents.set(Number(entry), Number(stat.slice(close + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const descends = (pid: number): boolean => {
    for (let current = parents.get(pid), depth = 0; current !== undefined && depth < 6; current = parents.get(current), depth++) if (current === ancestor) return true;
    return false;
  };
  for (const [pid, comm] of comms) if (comm === 'systemd' && descends(pid)) return pid;
  return undefined;
}
