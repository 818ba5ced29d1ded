/**
 * Certificate rotation, as client-go's util/certificate certificate_manager.go: the current pair
 * is renewed at a jittered 70–90 % of its lifetime (nextRotationDeadline + jitteryDuration), or
 * at once when it does not match the wanted subject/SANs any more; a new key and CSR each time;
 * failures retry with exponential back-off (2 s doubling, capped). A new pair is written to the
 * store and handed to `onRotated`, which switches it in place (API client credentials, the
 * kubelet server's TLS context): nothing restarts.
 */
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import { createCsr, generateKey, type Subject } from './pki.js';
import { requestCertificate, waitForCertificate, type CsrApi } from './csr.js';
import type { CertificatePair, CertificateStore } from './store.js';

/** jitteryDuration: wait.Jitter(total, 0.2) - 0.3·total, i.e. 70 % + up to 20 % of the lifetime. Pure. */
export function rotationDeadline(notBefore: Date, notAfter: Date, random: number): number {
  const total = notAfter.getTime() - notBefore.getTime();
  return notBefore.getTime() + total * (0.7 + 0.2 * random);
}

interface CertificateTemplate {
  subject: Subject;
  /** subjectAltNames (IPs and DNS names) for serving certificates. */
  sans: string[];
}

/** certSatisfiesTemplate: same subject, and every wanted SAN present. Pure. */
export function satisfiesTemplate(pair: CertificatePair, template: CertificateTemplate): boolean {
  const { subject, dnsNames, ipAddresses } = pair.info;
  if (subject.commonName !== template.subject.commonName) return false;
  if ([...subject.organizations].sort().join('\n') !== [...template.subject.organizations].sort().join('\n')) return false;
  const have = new Set([...dnsNames, ...ipAddresses]);
  return template.sans.every((name) => have.has(name));
}

interface CertificateManagerOptions {
  store: CertificateStore;
  /** What to request; undefined while it is not known yet (a serving certificate before the Node has addresses). */
  template: () => CertificateTemplate | undefined;
  signerName: string;
  usages: string[];
  /** The CSR API to use given the current pair (undefined when there is none or it expired). */
  api: (current: CertificatePair | undefined) => CsrApi;
  onRotated?: (pair: CertificatePair) => void;
  /** How long one CSR may wait for approval (client-go: 15 min). */
  waitTimeoutMs?: number;
  expirationSeconds?: number;
  clock: Clock;
  log: Logger;
  random?: () => number;
}

export class CertificateManager {
  private pair?: CertificatePair;
  private timer?: TimerHandle;
  private stopped = true;
  private failures = 0;
  private readonly abort = new AbortController();
  private rotating?: Promise<void>;

  constructor(private readonly options: CertificateManagerOptions) {}

  /** The current pair; undefined while there is none or it has expired (client-go Current()). */
  current(): CertificatePair | undefined {
    if (!this.pair || this.options.clock.now() > this.pair.info.notAfter.getTime()) return undefined;
    return this.pair;
  }

  /** Loads the stored pair and schedules its rotation (at once when there is none). */
  start(): void {
    this.stopped = false;
    this.pair = this.options.store.current();
    this.schedule();
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    if (this.timer) this.options.clock.clearTimer(this.timer);
    return this.rotating ?? Promise.resolve();
  }

  /** When the next rotation is due (ms since the epoch). */
  nextDeadline(): number {
    const now = this.options.clock.now();
    const template = this.options.template();
    if (!this.pair || (template && !satisfiesTemplate(this.pair, template))) return now;
    return rotationDeadline(this.pair.info.notBefore, this.pair.info.notAfter, (this.options.random ?? Math.random)());
  }

  private schedule(delayMs?: number): void {
    if (this.stopped) return;
    const delay = delayMs ?? Math.max(0, this.nextDeadline() - this.options.clock.now());
    if (delayMs === undefined && this.pair) this.options.log.info({ certificate: this.options.store.prefix, expires: this.pair.info.notAfter.toISOString(), rotateInMs: Math.round(delay) }, 'certificate rotation scheduled');
    this.timer = this.options.clock.setTimer(() => {
      this.rotating = this.rotate().finally(() => (this.rotating = undefined));
    }, delay);
  }

  private async rotate(): Promise<void> {
    const { log, store } = this.options;
    if (!this.options.template()) {
      // client-go: "no template available, waiting" (kubelet: the Node has no addresses yet).
      this.schedule(1000);
      return;
    }
    try {
      const pair = await this.renew();
      this.failures = 0;
      this.pair = pair;
      log.info({ certificate: store.prefix, subject: pair.info.subject.commonName, notAfter: pair.info.notAfter.toISOString() }, 'certificate rotated');
      this.options.onRotated?.(pair);
      this.schedule();
    } catch (error) {
      if (this.stopped) return;
      // client-go: wait.Backoff{Duration: 2s, Factor: 2, Jitter: 0.1}; retried until it works.
      const delay = Math.min(2000 * 2 ** this.failures, 5 * 60_000) * (1 + 0.1 * (this.options.random ?? Math.random)());
      this.failures++;
      log.warn({ err: error, certificate: store.prefix, retryInMs: Math.round(delay) }, 'certificate rotation failed');
      this.schedule(delay);
    }
  }

  /** A new key and CSR, waited for, then stored. */
  private async renew(): Promise<CertificatePair> {
    const { template, signerName, usages, log } = this.options;
    const wanted = template()!;
    const key = await generateKey();
    const csrPem = await createCsr(key, wanted.subject, wanted.sans);
    const api = this.options.api(this.current());
    const name = await requestCertificate(api, { csrPem, signerName, usages, ...(this.options.expirationSeconds ? { expirationSeconds: this.options.expirationSeconds } : {}) }, log);
    log.info({ csr: name, signer: signerName }, 'certificate signing request created; waiting for approval');
    const certPem = await waitForCertificate(api, name, this.options.waitTimeoutMs ?? 15 * 60_000, this.abort.signal);
    return this.options.store.update(certPem, key.keyPem, new Date(this.options.clock.now()));
  }
}
