/**
 * The node's upstream resolvers from a resolv.conf (resolv.conf(5): `nameserver` lines, at most
 * three are used by libc; we keep the order and accept up to three as well), as CoreDNS's
 * `forward . /etc/resolv.conf`. Addresses that would loop back into the cluster DNS (its own
 * Service IP or listen address) are dropped, as CoreDNS's loop plugin would otherwise stop it.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ConfigError } from '../lib/errors.js';

export interface Upstream {
  host: string;
  port: number;
}

const maxNameservers = 3;
const maxFileBytes = 64 * 1024;

/**
 * Parses resolv.conf text; `host:port` is accepted as an extension for tests. `exclude` lists
 * ourselves: a bare address excludes it on any port, `host:port` only on that port. Pure.
 */
export function parseResolvConf(text: string, exclude: readonly string[] = []): Upstream[] {
  const upstreams: Upstream[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const match = /^nameserver\s+(\S+)$/.exec(line);
    if (!match) continue;
    let host = match[1]!;
    let port = 53;
    const withPort = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(host) ?? /^\[([0-9a-fA-F:]+)\]:(\d+)$/.exec(host);
    if (withPort) {
      host = withPort[1]!;
      port = Number(withPort[2]);
    }
    host = host.replace(/%.*$/, '');
    if (!isIP(host) || port < 1 || port > 65535 || exclude.includes(host) || exclude.includes(`${host}:${port}`)) continue;
    if (upstreams.length < maxNameservers) upstreams.push({ host, port });
  }
  return upstreams;
}

export function loadResolvConf(file: string, exclude: readonly string[] = []): Upstream[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').slice(0, maxFileBytes);
  } catch (error) {
    throw new ConfigError(`cannot read --resolv-conf ${file}`, { cause: error });
  }
  return parseResolvConf(text, exclude);
}
