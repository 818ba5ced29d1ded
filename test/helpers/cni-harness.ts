/**
 * Test and benchmark support for the CNI plugin (not used at run time): bundles this checkout's
 * plugin entry with esbuild into a temp dir so tests do not depend on `npm run build`, writes the
 * Perl launcher as `<dir>/bin/knode`, and runs verbs inside a test "node" netns exactly as a
 * runtime would (`ip netns exec NODE <bin>/knode` with CNI_* in the environment).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildOptions } from 'esbuild';
import { run, type ExecResult } from '../../lib/exec.js';
import { writeLauncher } from '../../cni/launcher.js';
import { cniSocketFor } from '../../cni/plugin-server.js';
import { TestNetwork, type Netns } from './netns.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface PluginKit {
  dir: string;
  binDir: string;
  socket: string;
  cleanup(): void;
}

/** Bundles cni/plugin-main.ts and cni/plugin-daemon.ts and writes the launcher. */
export async function buildPluginKit(prefix = 'knt-cni-', withOverlay = false): Promise<PluginKit> {
  const { build } = await import('esbuild');
  const sourceRoot = /[\/]dist(-bench)?$/.test(root) ? dirname(root) : root; // compiled into dist/ (tests) or dist-bench/ (benches)
  // Under node_modules/.cache so that the bundle's one external import (netlink, a native
  // addon that cannot be bundled) resolves to this checkout's node_modules.
  const cache = join(sourceRoot, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, prefix));
  const binDir = join(dir, 'bin');
  mkdirSync(binDir);
  const common: BuildOptions = { bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'silent', external: ['netlink'] };
  await build({ ...common, entryPoints: [join(sourceRoot, 'cni', 'plugin-main.ts')], outfile: join(dir, 'plugin-main.mjs') });
  await build({ ...common, entryPoints: [join(sourceRoot, 'cni', 'plugin-daemon.ts')], outfile: join(dir, 'plugin-daemon.mjs') });
  if (withOverlay) {
    // createRequire: some bundled CommonJS dependencies of the Kubernetes client require() Node built-ins.
    const banner = { js: "import { createRequire as __knodeCreateRequire } from 'node:module'; const require = __knodeCreateRequire(import.meta.url);" };
    await build({ ...common, banner, entryPoints: [join(sourceRoot, 'test', 'helpers', 'overlay-main.ts')], outfile: join(dir, 'overlay.mjs') });
  }
  // Where the launcher finds the daemon for the kit's netconfs (subnetFile <dir>/subnet.env, the
  // overlay daemon's rule); also baked in as the launcher's default for netconfs without one.
  const socket = cniSocketFor(join(dir, 'subnet.env'));
  writeLauncher(join(binDir, 'knode'), { node: process.execPath, entry: join(dir, 'plugin-main.mjs'), socket });
  return { dir, binDir, socket, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Invocation {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown>;
}

export interface InvokeOptions {
  nodeNs: string;
  plugin: string;
  conf: unknown;
  env: Record<string, string | undefined>;
  /** Raw stdin instead of JSON.stringify(conf). */
  stdin?: string;
}

/** Runs one plugin call inside the node netns. */
export async function invoke(options: InvokeOptions): Promise<Invocation> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
  const result: ExecResult = await run(['ip', 'netns', 'exec', options.nodeNs, options.plugin], {
    input: options.stdin ?? JSON.stringify(options.conf),
    env,
    allowFailure: true,
    timeoutMs: 120_000,
  });
  let json: Record<string, unknown> = {};
  try {
    json = result.stdout.trim() ? (JSON.parse(result.stdout) as Record<string, unknown>) : {};
  } catch {
    json = { unparsable: result.stdout };
  }
  return { code: result.code, stdout: result.stdout, stderr: result.stderr, json };
}

/** Starts the fast-path server inside the node netns; resolves once it listens. */
export async function startPluginDaemon(kit: PluginKit, nodeNs: string, socket = kit.socket): Promise<{ stop(): Promise<void> }> {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', nodeNs, process.execPath, join(kit.dir, 'plugin-daemon.mjs'), socket], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`plugin daemon did not start: ${output}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`plugin daemon exited with ${code}: ${output}`));
    });
  });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      }),
  };
}

export function writeSubnetEnv(file: string, values: { network: string; subnet: string; mtu?: number; ipMasq?: boolean }): void {
  const lines = [`FLANNEL_NETWORK=${values.network}`, `FLANNEL_SUBNET=${values.subnet}`, `FLANNEL_MTU=${values.mtu ?? 1450}`, `FLANNEL_IPMASQ=${values.ipMasq ?? true}`];
  writeFileSync(file, lines.join('\n') + '\n');
}

/** A test node for plugin tests: its netns, the bundled plugin, a subnet.env and a valid netconf. */
export interface PluginNode {
  net: TestNetwork;
  kit: PluginKit;
  node: Netns;
  /** The launcher (`<kit>/bin/knode`). */
  plugin: string;
  subnetFile: string;
  dataDir: string;
  /** A valid netconf for network `name`, using subnetFile and dataDir. */
  conf: Record<string, unknown>;
  cleanup(): Promise<void>;
}

export async function pluginNode(options: { prefix: string; role: string; name: string; subnet: string }): Promise<PluginNode> {
  const net = new TestNetwork();
  const kit = await buildPluginKit(options.prefix);
  try {
    const node = await net.node(options.role);
    const subnetFile = join(kit.dir, 'subnet.env');
    const dataDir = join(kit.dir, 'data');
    writeSubnetEnv(subnetFile, { network: '10.244.0.0/16', subnet: options.subnet });
    const conf = { cniVersion: '1.0.0', name: options.name, type: 'knode', subnetFile, dataDir };
    return { net, kit, node, plugin: join(kit.binDir, 'knode'), subnetFile, dataDir, conf, cleanup: async () => { await net.cleanup(); kit.cleanup(); } };
  } catch (error) {
    await net.cleanup();
    kit.cleanup();
    throw error;
  }
}
