/**
 * The kubelet's certificate files (k8s.io/client-go/util/certificate/certificate_store.go): each
 * new pair goes to `<dir>/<prefix>-<YYYY-MM-DD-HH-MM-SS>.pem` (certificate then key, mode 0600)
 * and `<prefix>-current.pem` is a symlink switched to it with one rename, so a reader sees the
 * old pair or the new one, never a mix. Prefixes are "kubelet-client" and "kubelet-server".
 */
import { existsSync, lstatSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeFileAtomic } from '../../lib/fs.js';
import { certificateInfo, certificateMatchesKey, splitPem, type CertificateInfo } from './pki.js';

export interface CertificatePair {
  /** Certificate (and chain), PEM. */
  certPem: string;
  keyPem: string;
  info: CertificateInfo;
}

/** Parses "certificate(s) + private key" PEM text; undefined when it is not a matching pair. */
export function parsePair(certText: string, keyText: string): CertificatePair | undefined {
  const certs = splitPem(certText);
  const keyBlock = /-----BEGIN (EC |RSA )?PRIVATE KEY-----[\s\S]*?-----END (EC |RSA )?PRIVATE KEY-----/.exec(keyText)?.[0];
  if (certs.length === 0 || !keyBlock) return undefined;
  const certPem = certs.join('');
  const keyPem = `${keyBlock}\n`;
  if (!certificateMatchesKey(certPem, keyPem)) return undefined;
  try {
    return { certPem, keyPem, info: certificateInfo(certPem) };
  } catch {
    // an unreadable pair counts as no certificate: the caller bootstraps a new one
    return undefined;
  }
}

/** "2026-12-07-03-30-00", the store's file stamp (Go layout "2006-01-02-15-04-05", UTC). */
function fileStamp(date: Date): string {
  return date.toISOString().slice(0, 19).replace(/[T:]/g, '-');
}

export class CertificateStore {
  constructor(
    readonly dir: string,
    readonly prefix: 'kubelet-client' | 'kubelet-server' | 'kube-proxy-client' | 'overlay-client',
  ) {}

  get currentPath(): string {
    return join(this.dir, `${this.prefix}-current.pem`);
  }

  /** The current pair, or undefined when there is none or it cannot be read as one. */
  current(): CertificatePair | undefined {
    if (!existsSync(this.currentPath)) return undefined;
    const text = readFileSync(this.currentPath, 'utf8');
    return parsePair(text, text);
  }

  /** Writes a new pair and points `<prefix>-current.pem` at it. */
  update(certPem: string, keyPem: string, now = new Date()): CertificatePair {
    const pair = parsePair(certPem, keyPem);
    if (!pair) throw new Error(`the ${this.prefix} certificate does not match its private key or cannot be parsed`);
    let file = join(this.dir, `${this.prefix}-${fileStamp(now)}.pem`);
    // Two rotations within a second (lifetimes of seconds in tests) must not overwrite the file
    // the current symlink points to.
    for (let n = 1; existsSync(file); n++) file = join(this.dir, `${this.prefix}-${fileStamp(now)}.${n}.pem`);
    writeFileAtomic(file, pair.certPem + pair.keyPem, { mode: 0o600, mkdir: true });
    const updated = join(this.dir, `${this.prefix}-updated.pem`);
    rmSync(updated, { force: true });
    symlinkSync(basename(file), updated);
    if (existsSync(this.currentPath) && !lstatSync(this.currentPath).isSymbolicLink()) {
      throw new Error(`"${this.currentPath}" is a regular file, not the store's symlink; remove it`);
    }
    renameSync(updated, this.currentPath);
    return pair;
  }
}
