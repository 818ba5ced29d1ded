import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { clientConfigStillValid, loadClientCert, tmpPrivateKeyFile } from '../../agent/certificates/bootstrap.js';
import { clientSigner, clientUsages, csrOutcome, servingSigner, servingUsages, waitForCertificate } from '../../agent/certificates/csr.js';
import { CertificateManager, rotationDeadline, satisfiesTemplate } from '../../agent/certificates/manager.js';
import { certificateInfo, csrIdentity } from '../../agent/certificates/pki.js';
import { CertificateStore } from '../../agent/certificates/store.js';
import { nodeKubeconfigText } from '../../lib/config/node-kubeconfig.js';
import { ConfigError } from '../../lib/errors.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FakeCsrApi } from '../helpers/fake-csr-api.js';
import { capturingLog } from '../helpers/log-capture.js';
import { waitFor } from '../helpers/wait.js';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'knode-certs-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function bootstrapFile(dir: string, caPem: string): string {
  const file = join(dir, 'bootstrap-kubelet.conf');
  writeFileSync(file, nodeKubeconfigText({ server: 'https://10.0.0.1:6443', caPem, token: 'abcdef.0123456789abcdef' }));
  return file;
}

describe('rotation deadline (client-go nextRotationDeadline)', () => {
  it.each([
    [0, 0.7],
    [0.5, 0.8],
    [1, 0.9],
  ])('random %s → %s of the lifetime', (random, fraction) => {
    const notBefore = new Date(1_000_000);
    const notAfter = new Date(1_000_000 + 10_000);
    expect(rotationDeadline(notBefore, notAfter, random)).toBeCloseTo(1_000_000 + 10_000 * fraction);
  });
});

describe('CSR outcome', () => {
  it('waits while pending, returns the certificate once approved and issued, errors when denied or failed', () => {
    const base = { metadata: { name: 'x' }, spec: { request: '', signerName: clientSigner } };
    expect(csrOutcome(undefined)).toBeUndefined();
    expect(csrOutcome(base)).toBeUndefined();
    expect(csrOutcome({ ...base, status: { conditions: [{ type: 'Approved', status: 'True' }] } })).toBeUndefined();
    expect(csrOutcome({ ...base, status: { conditions: [{ type: 'Approved', status: 'True' }], certificate: Buffer.from('PEM').toString('base64') } })).toEqual({ certificate: 'PEM' });
    expect(csrOutcome({ ...base, status: { conditions: [{ type: 'Denied', status: 'True', reason: 'R' }] } })).toEqual({ error: expect.stringMatching(/denied, reason: R/) as unknown });
    expect(csrOutcome({ ...base, status: { conditions: [{ type: 'Failed', status: 'True', reason: 'F' }] } })).toEqual({ error: expect.stringMatching(/failed, reason: F/) as unknown });
  });
});

describe('TLS bootstrap (kubelet LoadClientCert)', () => {
  it('requests a node client certificate with the bootstrap credential and writes the kubeconfig to the cert dir', async () => {
    const dir = tempDir();
    const api = await FakeCsrApi.create();
    api.onCreate = (name) => void api.approve(name);
    const { log } = capturingLog();
    const kubeconfig = join(dir, 'kubelet.conf');
    const certDir = join(dir, 'pki');
    const result = await loadClientCert({ kubeconfig, bootstrapKubeconfig: bootstrapFile(dir, api.ca.pem), certDir, nodeName: 'node-a', log, api });
    expect(result).toBe('bootstrapped');
    const [name, csr] = [...api.csrs.entries()][0]!;
    expect(name).toMatch(/^node-csr-[A-Za-z0-9_-]{43}$/);
    expect(csr.spec.signerName).toBe(clientSigner);
    expect(csr.spec.usages).toEqual(clientUsages);
    expect(csrIdentity(Buffer.from(csr.spec.request, 'base64').toString()).subject).toBe('O=system:nodes, CN=system:node:node-a');
    const current = join(certDir, 'kubelet-client-current.pem');
    expect(lstatSync(current).isSymbolicLink()).toBe(true);
    expect(readlinkSync(current)).toMatch(/^kubelet-client-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d\.pem$/);
    expect(existsSync(join(certDir, tmpPrivateKeyFile))).toBe(false);
    const written = parse(readFileSync(kubeconfig, 'utf8')) as { clusters: { cluster: Record<string, string> }[]; users: { user: Record<string, string> }[] };
    expect(written.clusters[0]!.cluster.server).toBe('https://10.0.0.1:6443');
    expect(Buffer.from(written.clusters[0]!.cluster['certificate-authority-data']!, 'base64').toString()).toBe(api.ca.pem);
    expect(written.users[0]!.user).toEqual({ 'client-certificate': current, 'client-key': current });
    expect(clientConfigStillValid(kubeconfig, new Date(), log)).toBe(true);
    expect(await loadClientCert({ kubeconfig, bootstrapKubeconfig: 'unused', certDir, nodeName: 'node-a', log, api })).toBe('valid');
    expect(api.createdCount).toBe(1);
  });

  it('bootstraps again when the certificate expired, and reuses its pending request after a restart', async () => {
    const dir = tempDir();
    const api = await FakeCsrApi.create();
    const { log } = capturingLog();
    const options = { kubeconfig: join(dir, 'kubelet.conf'), bootstrapKubeconfig: bootstrapFile(dir, api.ca.pem), certDir: join(dir, 'pki'), nodeName: 'node-a', log, api };
    // First run: nobody approves; the run is stopped (a restart), the key stays cached.
    const abort = new AbortController();
    const first = loadClientCert({ ...options, signal: abort.signal });
    await waitFor('the CSR', () => api.csrs.size === 1);
    abort.abort();
    await expect(first).rejects.toThrow(/stopped while waiting/);
    expect(existsSync(join(dir, 'pki', tmpPrivateKeyFile))).toBe(true);
    // Second run: the same request (same key → same name) is found and waited for.
    api.onCreate = () => undefined;
    const second = loadClientCert(options);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const name = [...api.csrs.keys()][0]!;
    await api.approve(name, 1000, new Date(Date.now() - 5000)); // already expired when issued
    await second;
    expect(api.csrs.size).toBe(1);
    expect(clientConfigStillValid(options.kubeconfig, new Date(), log)).toBe(false);
    api.onCreate = (created) => void api.approve(created);
    expect(await loadClientCert(options)).toBe('bootstrapped');
    expect(api.csrs.size).toBe(2);
  });

  it('names the problem: a rejected token (401), a denied request, a garbage bootstrap kubeconfig', async () => {
    const dir = tempDir();
    const api = await FakeCsrApi.create();
    const { log } = capturingLog();
    const options = { kubeconfig: join(dir, 'kubelet.conf'), bootstrapKubeconfig: bootstrapFile(dir, api.ca.pem), certDir: join(dir, 'pki'), nodeName: 'node-a', log, api };
    api.refuse = 401;
    await expect(loadClientCert(options)).rejects.toThrow(/rejected its credential \(HTTP 401 Unauthorized\): the bootstrap token is unknown, expired or malformed/);
    api.refuse = undefined;
    api.onCreate = (name) => api.deny(name);
    await expect(loadClientCert(options)).rejects.toThrow(/is denied, reason: NotMine/);
    expect(existsSync(options.kubeconfig)).toBe(false);
    writeFileSync(options.bootstrapKubeconfig, 'clusters: 7\n');
    const error = await loadClientCert(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(options.bootstrapKubeconfig);
    await expect(loadClientCert({ ...options, bootstrapKubeconfig: join(dir, 'missing') })).rejects.toThrow(/does not exist/);
  });
});

describe('certificate manager (client-go certificate_manager)', () => {
  it('rotates before expiry with a new key, stores it and reports it, then schedules the next rotation', async () => {
    const dir = tempDir();
    const api = await FakeCsrApi.create();
    const clock = new FakeClock(Date.now());
    api.onCreate = (name) => void api.approve(name, 10_000, new Date(clock.now()));
    const store = new CertificateStore(dir, 'kubelet-server');
    const rotated: string[] = [];
    const { log } = capturingLog();
    const manager = new CertificateManager({
      store,
      template: () => ({ subject: { commonName: 'system:node:a', organizations: ['system:nodes'] }, sans: ['10.0.0.1', 'a'] }),
      signerName: servingSigner,
      usages: servingUsages,
      api: () => api,
      onRotated: (pair) => rotated.push(pair.certPem),
      clock,
      log,
      random: () => 0.5,
    });
    manager.start();
    clock.advance(0); // no pair yet: at once
    await waitFor('the first certificate', () => rotated.length === 1);
    const first = certificateInfo(rotated[0]!);
    expect(first.ipAddresses).toEqual(['10.0.0.1']);
    expect(first.dnsNames).toEqual(['a']);
    expect(manager.current()?.certPem).toBe(rotated[0]);
    expect(satisfiesTemplate(manager.current()!, { subject: { commonName: 'system:node:a', organizations: ['system:nodes'] }, sans: ['10.0.0.2'] })).toBe(false);
    clock.advance(7_900); // before 80 % of 10 s
    expect(rotated).toHaveLength(1);
    clock.advance(200);
    await waitFor('the rotated certificate', () => rotated.length === 2);
    expect(rotated[1]).not.toBe(rotated[0]);
    expect(store.current()?.certPem).toBe(rotated[1]);
    expect(api.csrs.size).toBe(2);
    await manager.stop();
  });

  it('retries with back-off when the request fails', async () => {
    const dir = tempDir();
    const api = await FakeCsrApi.create();
    api.refuse = 403;
    const clock = new FakeClock(Date.now());
    const { log, lines } = capturingLog();
    const manager = new CertificateManager({
      store: new CertificateStore(dir, 'kubelet-client'),
      template: () => ({ subject: { commonName: 'system:node:a', organizations: ['system:nodes'] }, sans: [] }),
      signerName: clientSigner,
      usages: clientUsages,
      api: () => api,
      clock,
      log,
      random: () => 0,
    });
    manager.start();
    clock.advance(0);
    await waitFor('a failure logged', () => lines().some((line) => line.msg === 'certificate rotation failed' && line.retryInMs === 2000));
    api.refuse = undefined;
    api.onCreate = (name) => void api.approve(name);
    clock.advance(2000);
    await waitFor('the certificate', () => manager.current());
    await manager.stop();
  });
});

describe('waitForCertificate', () => {
  it('times out with the CSR name', async () => {
    const api = await FakeCsrApi.create();
    await expect(waitForCertificate(api, 'csr-x', 10)).rejects.toThrow(/timed out .* csr-x/);
  });
});
