/** The CertificateSigningRequest strategy (kinds-csr.ts): validation and the /approval and /status rules. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { csrConditionText, csrStrategy, prepareCsrCreate } from '../../controlplane/kinds-csr.js';
import type { KObject } from '../../controlplane/storage/types.js';

const dir = mkdtempSync(join(tmpdir(), 'knode-csr-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'k'), '-out', join(dir, 'r'), '-subj', '/O=system:nodes/CN=system:node:a'], { stdio: 'ignore' });
const request = readFileSync(join(dir, 'r')).toString('base64');

const csr = (status: Record<string, unknown> = {}, spec: Record<string, unknown> = {}): KObject => ({
  metadata: { name: 'c' },
  spec: { request, signerName: 'kubernetes.io/kube-apiserver-client-kubelet', usages: ['client auth'], ...spec },
  status,
});
const fields = (object: KObject, old?: KObject) => csrStrategy.validate(object, old).map((c) => `${c.field}: ${c.message}`);
const approved = { type: 'Approved', status: 'True', reason: 'R' };
const denied = { type: 'Denied', status: 'True', reason: 'R' };

describe('CertificateSigningRequest', () => {
  it('accepts a well-formed request', () => {
    expect(fields(csr())).toEqual([]);
  });
  it.each([
    ['no request', { request: undefined }, 'spec.request: Required value'],
    ['no signer', { signerName: '' }, 'spec.signerName: Required value'],
    ['a bad signer', { signerName: 'nodomain' }, 'spec.signerName: Invalid value'],
    ['unknown usage', { usages: ['client auth', 'flying'] }, 'spec.usages[1]: Unsupported value: "flying"'],
    ['duplicate usage', { usages: ['client auth', 'client auth'] }, 'spec.usages[1]: Duplicate value'],
    ['no usages', { usages: [] }, 'spec.usages: Required value'],
    ['too short', { expirationSeconds: 60 }, 'spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds'],
    ['not PEM', { request: Buffer.from('hello').toString('base64') }, 'spec.request: Invalid value: "<request>": PEM block type must be CERTIFICATE REQUEST'],
  ])('refuses %s', (_name, spec, message) => {
    expect(fields(csr({}, spec)).join('\n')).toContain(message);
  });
  it('Approved and Denied exclude each other; a certificate needs Approved and never changes', () => {
    expect(fields(csr({ conditions: [approved, denied] })).join()).toContain('Approved and Denied conditions are mutually exclusive');
    expect(fields(csr({ certificate: 'QUJD' })).join()).toContain('certificate can only be set if an Approved condition is present');
    const issued = csr({ conditions: [approved], certificate: 'QUJD' });
    expect(fields(csr({ conditions: [approved], certificate: 'REVG' }), issued).join()).toContain('updates may not modify existing certificate content');
    expect(fields(csr({ conditions: [] }), issued).join()).toContain('updates may not remove a condition of type "Approved"');
  });
  it('/approval changes only Approved/Denied; /status only the certificate and other conditions', () => {
    const old = csr({ conditions: [{ type: 'Failed', status: 'False' }] });
    const viaApproval = csrStrategy.prepareForSubresourceUpdate!('approval', csr({ conditions: [approved], certificate: 'QUJD' }, { signerName: 'example.com/x' }), old)!;
    expect((viaApproval.spec as { signerName: string }).signerName).toBe('kubernetes.io/kube-apiserver-client-kubelet');
    expect((viaApproval.status as { certificate?: string }).certificate).toBeUndefined();
    expect((viaApproval.status as { conditions: { type: string }[] }).conditions.map((c) => c.type)).toEqual(['Approved', 'Failed']);
    const viaStatus = csrStrategy.prepareForSubresourceUpdate!('status', csr({ conditions: [denied], certificate: 'QUJD' }), csr({ conditions: [approved] }))!;
    expect((viaStatus.status as { conditions: { type: string }[] }).conditions.map((c) => c.type)).toEqual(['Approved']);
    expect((viaStatus.status as { certificate: string }).certificate).toBe('QUJD');
  });
  it('the create hook stamps the requestor and refuses another node\'s name', async () => {
    const prepared = await prepareCsrCreate({ metadata: { name: 'c' }, spec: { request, signerName: 'kubernetes.io/kube-apiserver-client-kubelet', username: 'forged', groups: ['system:masters'] } }, { name: 'system:bootstrap:abcdef', groups: ['system:bootstrappers'] });
    expect((prepared.body as { spec: { username: string; groups: string[] } }).spec).toMatchObject({ username: 'system:bootstrap:abcdef', groups: ['system:bootstrappers'] });
    const other = await prepareCsrCreate({ metadata: { name: 'c' }, spec: { request, signerName: 'kubernetes.io/kube-apiserver-client-kubelet' } }, { name: 'system:node:b', groups: ['system:nodes'] });
    expect(other.forbidden).toBe('can only create a node CSR with CN=system:node:b');
    await expect(prepareCsrCreate({ metadata: { name: 'c' }, spec: { request: Buffer.from('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----').toString('base64') } }, { name: 'x', groups: [] })).rejects.toThrow(/is invalid: spec.request/);
  });
  it('prints the Condition column as kubectl shows it', () => {
    expect(csrConditionText(csr())).toBe('Pending');
    expect(csrConditionText(csr({ conditions: [approved], certificate: 'QUJD' }))).toBe('Approved,Issued');
    expect(csrConditionText(csr({ conditions: [denied] }))).toBe('Denied');
  });
});
