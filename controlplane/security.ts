/**
 * Serving security for `knode controlplane`: plain HTTP without authentication is allowed only
 * on a loopback address (docs/architecture.md, "Components"); any other listen address is served
 * over TLS with a certificate signed by the cluster CA (DATA_DIR/pki, controlplane/auth/pki.ts)
 * and requires authentication: the random admin bearer token (DATA_DIR/token), client
 * certificates of that CA, or bootstrap tokens. The CA and the token go into
 * DATA_DIR/admin.kubeconfig.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { ensureClusterCa, ensureServingCertificate, type ClusterCa } from './auth/pki.js';
import { ConfigError } from '../lib/errors.js';

interface ListenAddress {
  host: string;
  port: number;
}

export function parseListen(text: string): ListenAddress {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text.trim());
  if (!match) throw new ConfigError(`--listen "${text}": expected host:port (e.g. 127.0.0.1:6443)`);
  const host = (match[1] ?? match[2]) as string;
  const port = Number(match[3]);
  if (port > 65535) throw new ConfigError(`--listen "${text}": port must be 0-65535`);
  if (host !== 'localhost' && isIP(host) === 0) throw new ConfigError(`--listen "${text}": host must be an IP address or localhost`);
  return { host: host === 'localhost' ? '127.0.0.1' : host, port };
}

export function isLoopback(host: string): boolean {
  if (host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

type ServingMode = { tls: false } | { tls: true };

/** Loopback: plain HTTP. Anything else (including 0.0.0.0): TLS and a bearer token. */
export function servingMode(host: string): ServingMode {
  return isLoopback(host) ? { tls: false } : { tls: true };
}

/**
 * Subject alternative names of the serving certificate. A wildcard listen address is reached
 * through any of the node's addresses, so all its non-loopback IPv4 addresses and its hostname
 * are included (as kubeadm puts the advertise address and node name into the apiserver cert).
 */
export function servingNames(host: string, interfaces = networkInterfaces(), nodeName = hostname()): string[] {
  const names = ['DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'IP:127.0.0.1'];
  const add = (name: string) => {
    if (!names.includes(name)) names.push(name);
  };
  if (host === '0.0.0.0' || host === '::') {
    for (const list of Object.values(interfaces))
      for (const address of list ?? []) if (address.family === 'IPv4' && !address.internal && !address.address.startsWith('127.')) add(`IP:${address.address}`);
    if (/^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?$/.test(nodeName) && nodeName.length <= 253) add(`DNS:${nodeName}`);
  } else if (isIP(host)) add(`IP:${host}`);
  return names;
}

interface ServingCredentials {
  cert: string;
  key: string;
  /** PEM of the cluster CA (clients verify the server with it; client certificates are checked against it). */
  caPem: string;
  ca: ClusterCa;
  token: string;
}

/**
 * Reuses DATA_DIR/pki and DATA_DIR/token when present so that clients keep working after a
 * restart; `hosts` are the listen addresses the serving certificate must name.
 */
export async function ensureCredentials(dataDir: string, hosts: string[]): Promise<ServingCredentials> {
  const pki = join(dataDir, 'pki');
  mkdirSync(pki, { recursive: true, mode: 0o700 });
  let ca: ClusterCa;
  try {
    ca = await ensureClusterCa(pki);
  } catch (error) {
    throw new Error(`cannot load or create the cluster CA in ${pki}`, { cause: error });
  }
  const names = [...new Set(hosts.flatMap((host) => servingNames(host)))];
  const serving = await ensureServingCertificate(pki, ca, names);
  const tokenFile = join(dataDir, 'token');
  if (!existsSync(tokenFile)) writeFileSync(tokenFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  return { ...serving, caPem: ca.certPem, ca, token: readFileSync(tokenFile, 'utf8').trim() };
}
