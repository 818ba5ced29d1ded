/**
 * `knode install-cni [--bin-dir /opt/cni/bin] [--conf-dir DIR]`: puts the plugin executable into a
 * CNI bin dir and, with --conf-dir, writes the default conflist (knode + portmap, as flannel's
 * kube-flannel.yml installs flannel + portmap as `10-flannel.conflist`).
 */
import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../lib/fs.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runner } from '../lib/command-options.js';
import { optionalString } from '../lib/command-options.js';
import { writeLauncher } from './launcher.js';
import { defaultCniSocket } from './plugin-server.js';

export const defaultConflistName = '10-knode.conflist';

export function defaultConflist(): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'knode',
    plugins: [
      { type: 'knode', bridge: 'cni0', hairpinMode: true },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

export interface InstallOptions {
  binDir: string;
  confDir?: string;
  /** Node plugin entry; default: plugin-main.js next to this file (dist/cni/). */
  entry?: string;
  socket?: string;
}

export function installCni(options: InstallOptions): string[] {
  const written: string[] = [];
  mkdirSync(options.binDir, { recursive: true });
  const entry = options.entry ?? join(dirname(fileURLToPath(import.meta.url)), 'plugin-main.js');
  const plugin = join(options.binDir, 'knode');
  writeLauncher(plugin, { node: process.execPath, entry, socket: options.socket ?? defaultCniSocket });
  written.push(plugin);
  if (options.confDir) {
    const file = join(options.confDir, defaultConflistName);
    writeFileAtomic(file, JSON.stringify(defaultConflist(), null, 2) + '\n', { mkdir: true });
    written.push(file);
  }
  return written;
}

export const run: Runner = async (options, log) => {
  const binDir = optionalString(options, 'binDir') ?? '/opt/cni/bin';
  const written = installCni({ binDir, confDir: optionalString(options, 'confDir') });
  log.info({ written }, 'installed the knode CNI plugin');
};
