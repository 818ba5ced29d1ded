/**
 * A second kernel for the IPVS tests (docs/architecture.md, "Testing": a second kernel): the build
 * machine's kernel has no IPVS, Debian's cloud kernel has it as modules. This boots that kernel
 * under qemu (TCG, no network device at all) with an initramfs holding busybox, node, ipvsadm,
 * the needed modules and the built proxy code (dist/), runs a guest script and returns its
 * console output. Nothing touches the build machine's network.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const cacheDir = '/var/tmp/knode-ipvs';
/** The project root (where package.json is), also when this runs compiled from dist/. */
function projectRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
const repo = projectRoot();

function sh(command: string, args: string[], cwd?: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
}

/** Debian's cloud kernel, downloaded once with apt-get download and unpacked into the cache. */
export function cloudKernel(): { version: string; vmlinuz: string; root: string } {
  const root = join(cacheDir, 'root');
  if (!existsSync(join(root, 'boot'))) {
    // Download and unpack in a private dir, then rename: test files running in parallel may race.
    mkdirSync(cacheDir, { recursive: true });
    const work = mkdtempSync(join(cacheDir, 'download-'));
    try {
      const depends = sh('apt-cache', ['depends', 'linux-image-cloud-amd64']);
      const pkg = /Depends: (linux-image-\S+)/.exec(depends)?.[1];
      if (!pkg) throw new Error(`cannot find the cloud kernel package: ${depends}`);
      sh('apt-get', ['download', pkg], work);
      const deb = readdirSync(work).find((file) => file.startsWith(pkg) && file.endsWith('.deb'));
      if (!deb) throw new Error(`apt-get download ${pkg} left no .deb`);
      sh('dpkg', ['-x', join(work, deb), join(work, 'root')]);
      const version = readdirSync(join(work, 'root', 'lib', 'modules'))[0]!;
      sh('depmod', ['-b', join(work, 'root'), version]);
      try {
        renameSync(join(work, 'root'), root);
      } catch (error) {
        if (!existsSync(join(root, 'boot'))) throw error;
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const version = readdirSync(join(root, 'lib', 'modules'))[0]!;
  if (!existsSync(join(root, 'lib', 'modules', version, 'modules.dep'))) sh('depmod', ['-b', root, version]);
  return { version, vmlinuz: join(root, 'boot', `vmlinuz-${version}`), root };
}

/** Module files (dependencies first) for the named modules. */
function moduleFiles(kernel: { version: string; root: string }, names: string[]): string[] {
  const files: string[] = [];
  for (const name of names) {
    let listing = '';
    try {
      listing = sh('modprobe', ['-d', kernel.root, '-S', kernel.version, '--show-depends', name]);
    } catch {
      continue; // built in, or not in this kernel: the guest test reports what is missing
    }
    for (const line of listing.split('\n')) {
      const file = /^insmod (\S+)/.exec(line)?.[1];
      if (file && !files.includes(file)) files.push(file);
    }
  }
  return files;
}

/** Copies a binary (following symlinks, keeping the path name) and the libraries it links. */
function copyWithLibs(binary: string, root: string): void {
  const targets = [binary];
  for (const line of sh('ldd', [binary]).split('\n')) {
    const match = /=> (\/\S+)/.exec(line) ?? /^\s*(\/\S+)/.exec(line);
    if (match) targets.push(match[1]!);
  }
  for (const file of targets) {
    mkdirSync(join(root, dirname(file)), { recursive: true });
    copyFileSync(file, join(root, file));
  }
}

export interface Guest {
  initrd: string;
  vmlinuz: string;
  cleanup(): void;
}

/**
 * Builds the initramfs. `script` is an ES module run as /app/guest.mjs (imports from ./dist/…);
 * `setup` is shell run by /init before it (addresses, servers).
 */
export interface GuestExtras {
  /** Binaries (absolute paths, copied with their libraries under the same names). */
  binaries?: string[];
  /** Files or directories copied as they are (iptables extensions, /etc/protocols for ipset). */
  directories?: string[];
  modules?: string[];
  nodeModules?: string[];
  /**
   * Also pack the whole CLI (dist/bin/knode.js: control plane, proxy, …) as one esbuild bundle,
   * /app/dist/bin/knode.mjs, so that the guest runs the real `knode` commands without carrying
   * node_modules (≈6 MB instead of ≈160 MB). Only native addons (netlink) stay external.
   */
  bundleCli?: boolean;
}

/** esbuild (vitest's own dependency) bundles dist/bin/knode.js for the guest. */
function bundleCli(app: string): void {
  const banner = [
    "import { createRequire as __knodeRequire } from 'node:module';",
    "import { fileURLToPath as __knodePath } from 'node:url';",
    "import { dirname as __knodeDir } from 'node:path';",
    'const require = __knodeRequire(import.meta.url);',
    'const __filename = __knodePath(import.meta.url);',
    'const __dirname = __knodeDir(__filename);',
  ].join(' ');
  const args = [join(repo, 'dist', 'bin', 'knode.js'), '--bundle', '--minify', '--platform=node', '--format=esm', '--target=node20', `--outfile=${join(app, 'dist', 'bin', 'knode.mjs')}`, '--external:netlink', '--external:cpu-features', // dbus-next's optional X11 and fd-passing modules (not installed; it works without them)
    '--external:x11', '--external:usocket', '--log-level=error', `--banner:js=${banner}`];
  sh(join(repo, 'node_modules', '.bin', 'esbuild'), args);
  // etcd3 reads its .proto files next to the module at load time (here: dist/proto).
  cpSync(join(repo, 'node_modules', 'etcd3', 'proto'), join(app, 'dist', 'proto'), { recursive: true });
}

export function buildGuest(script: string, setup: string, extras: GuestExtras = {}): Guest {
  const kernel = cloudKernel();
  const dir = mkdtempSync(join(tmpdir(), 'knode-qemu-'));
  const root = join(dir, 'root');
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'mount', 'insmod', 'ip', 'httpd', 'poweroff', 'mkdir', 'cat', 'echo', 'sleep', 'wget']) symlinkSync('busybox', join(root, 'bin', applet));
  copyWithLibs(process.execPath, root);
  copyWithLibs(sh('sh', ['-c', 'command -v ipvsadm']).trim(), root);
  for (const binary of extras.binaries ?? []) copyWithLibs(binary, root);
  for (const directory of extras.directories ?? []) cpSync(directory, join(root, directory), { recursive: true });
  const modules = moduleFiles(kernel, ['ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'dummy', ...(extras.modules ?? [])]);
  mkdirSync(join(root, 'modules'));
  const insmods = modules.map((file, index) => {
    copyFileSync(file, join(root, 'modules', `${index}.ko`));
    return `insmod /modules/${index}.ko${file.endsWith('/dummy.ko') ? ' numdummies=0' : ''}`;
  });
  const app = join(root, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  writeFileSync(join(app, 'package.json'), '{"type":"module","version":"0.0.0-guest"}\n');
  for (const part of ['proxy', 'lib']) cpSync(join(repo, 'dist', part), join(app, 'dist', part), { recursive: true, filter: (source) => !source.endsWith('.map') });
  for (const module of ['netlink', 'node-gyp-build', 'ipaddr.js', ...(extras.nodeModules ?? [])]) cpSync(join(repo, 'node_modules', module), join(app, 'node_modules', module), { recursive: true });
  if (extras.bundleCli) bundleCli(app);
  writeFileSync(join(app, 'guest.mjs'), script);
  const init = [
    '#!/bin/sh',
    'export PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    'mount -t devtmpfs dev /dev; mount -t proc proc /proc; mount -t sysfs sys /sys; mkdir -p /tmp; mount -t tmpfs tmp /tmp',
    ...insmods,
    'ip link set lo up',
    setup,
    'echo KNODE-GUEST-START',
    'cd /app && node guest.mjs; echo "KNODE-GUEST-EXIT $?"',
    'echo KNODE-IPVSADM-BEGIN; ipvsadm -Ln; echo KNODE-IPVSADM-END',
    'poweroff -f',
  ].join('\n');
  mkdirSync(join(root, 'dev'));
  sh('mknod', ['-m', '600', join(root, 'dev', 'console'), 'c', '5', '1']);
  mkdirSync(join(root, 'proc'));
  mkdirSync(join(root, 'sys'));
  writeFileSync(join(root, 'init'), `${init}\n`);
  chmodSync(join(root, 'init'), 0o755);
  const initrd = join(dir, 'initrd.cpio');
  sh('sh', ['-c', `cd "${root}" && find . | cpio -o -H newc --quiet > "${initrd}"`]);
  return { initrd, vmlinuz: kernel.vmlinuz, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Boots the guest (no network device) and returns its console output.
 * `icount`: the guest's clock counts executed instructions (1 ns each, `-icount shift=0,sleep=off`)
 * instead of following the host's, so that a figure taken inside the guest does not change with
 * the host's load (on the shared build machine wall-clock TCG figures moved by up to 10× between
 * runs); it then measures work, not hardware speed. Single-vCPU only. (KVM, which /dev/kvm offers
 * here, does not work: `-cpu host` and `-cpu max` abort setting MSR 0x10a, and with `-cpu kvm64`
 * the guest printed nothing for 5 minutes.)
 */
export function runGuest(guest: Guest, timeoutMs: number, cpus = 1, options: { icount?: boolean } = {}): Promise<string> {
  if (options.icount && cpus > 1) throw new Error('icount needs a single vCPU');
  // cpus > 1: multi-threaded TCG, for guests that run several node processes at once.
  const args = [...(options.icount ? ['-icount', 'shift=0,sleep=off'] : []), '-accel', cpus > 1 ? 'tcg,thread=multi' : 'tcg', '-smp', String(cpus), '-cpu', 'max', '-m', '1536', '-nographic', '-no-reboot', '-nic', 'none', '-kernel', guest.vmlinuz, '-initrd', guest.initrd, '-append', 'console=ttyS0 quiet panic=-1'];
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`qemu guest did not finish within ${timeoutMs} ms:\n${output.slice(-3000)}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(output);
    });
  });
}
