/**
 * kube-controller-manager's csrapproving and csrsigning controllers in one queue: a pending CSR
 * gets the approver's decision (csr-policy.ts) through the `/approval` subresource; an approved
 * one of the kubelet signers or of kube-apiserver-client gets its certificate from the cluster CA through `/status`
 * (or a Failed condition, reason SignerValidationFailure, as the signer writes it). Each write
 * comes back through the watch and moves the CSR one step further.
 */
import type { Logger } from '../../lib/log.js';
import { parseCsr } from '../auth/csr.js';
import { issueCertificate, type ClusterCa, x509 } from '../auth/pki.js';
import { apiserverClientSigner, conditionsOf, kubeletClientSigner, kubeletServingSigner } from '../kinds-csr.js';
import type { Registry } from '../registry.js';
import { resourceNamed, storagePrefix } from '../resources.js';
import { ApiError } from '../status.js';
import type { KObject } from '../storage/types.js';
import { isRecord } from '../util.js';
import type { WatchCache } from '../watch-cache.js';
import type { Controller } from './controller.js';
import { approvalDecision, signingPlan, type CsrFacts } from './csr-policy.js';
import { KeyQueue } from './queue.js';

const csrs = resourceNamed('certificatesigningrequests');
const nodes = resourceNamed('nodes');

export interface CsrControllerOptions {
  ca: ClusterCa;
  /** --cluster-signing-duration (1 year). */
  maxSeconds: number;
  /** The shortest certificate issued (600 s upstream; --csr-min-duration). */
  minSeconds: number;
}

const stamp = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

async function nodeAddresses(registry: Registry, commonName: string): Promise<string[] | undefined> {
  if (!commonName.startsWith('system:node:')) return undefined;
  try {
    const node = await registry.get(nodes, undefined, commonName.slice('system:node:'.length));
    const addresses = isRecord(node.status) && Array.isArray(node.status.addresses) ? node.status.addresses : [];
    return addresses.filter(isRecord).map((a) => String(a.address ?? '')).filter((a) => a !== '');
  } catch (error) {
    if (error instanceof ApiError && error.code === 404) return undefined;
    throw error;
  }
}

const extendedOid = { 'client auth': x509.ExtendedKeyUsage.clientAuth, 'server auth': x509.ExtendedKeyUsage.serverAuth } as const;

async function addCondition(registry: Registry, name: string, subresource: 'approval' | 'status', condition: Record<string, string>, certificate?: string): Promise<void> {
  await registry.mutate(csrs, undefined, name, (current) => {
    const status = isRecord(current.status) ? current.status : {};
    const conditions = Array.isArray(status.conditions) ? status.conditions : [];
    const next = { ...status, conditions: [...conditions, { ...condition, lastUpdateTime: stamp(), lastTransitionTime: stamp() }] };
    if (certificate !== undefined) return { ...current, status: { ...status, certificate } };
    return { ...current, status: next };
  }, subresource);
}

async function reconcile(registry: Registry, options: CsrControllerOptions, name: string, log: Logger): Promise<void> {
  let csr: KObject;
  try {
    csr = await registry.get(csrs, undefined, name);
  } catch (error) {
    if (error instanceof ApiError && error.code === 404) return;
    throw error;
  }
  const spec = isRecord(csr.spec) ? csr.spec : {};
  const status = isRecord(csr.status) ? csr.status : {};
  const conditions = conditionsOf(csr);
  if ((typeof status.certificate === 'string' && status.certificate !== '') || conditions.some((c) => (c.type === 'Denied' || c.type === 'Failed') && c.status === 'True')) return;
  if (spec.signerName !== kubeletClientSigner && spec.signerName !== kubeletServingSigner && spec.signerName !== apiserverClientSigner) return;
  const parsed = await parseCsr(spec.request);
  const facts: CsrFacts = {
    signerName: String(spec.signerName),
    username: String(spec.username ?? ''),
    groups: Array.isArray(spec.groups) ? spec.groups.map(String) : [],
    usages: Array.isArray(spec.usages) ? spec.usages.map(String) : [],
    ...parsed,
  };
  if (!conditions.some((c) => c.type === 'Approved' && c.status === 'True')) {
    const decision = approvalDecision(facts, await nodeAddresses(registry, facts.commonName));
    if (!decision.approve) {
      log.debug({ csr: name, why: decision.why }, 'CSR left for an operator to approve');
      return;
    }
    await addCondition(registry, name, 'approval', { type: 'Approved', status: 'True', reason: 'AutoApproved', message: decision.message });
    log.info({ csr: name, requestor: facts.username, subject: facts.commonName }, 'CSR approved');
    return;
  }
  const plan = signingPlan(facts, typeof spec.expirationSeconds === 'number' ? spec.expirationSeconds : undefined, options, new Date());
  if (typeof plan === 'string') {
    await addCondition(registry, name, 'status', { type: 'Failed', status: 'True', reason: 'SignerValidationFailure', message: plan });
    log.warn({ csr: name, why: plan }, 'CSR failed the signer\'s validation');
    return;
  }
  const flags = { 'digital signature': x509.KeyUsageFlags.digitalSignature, 'key encipherment': x509.KeyUsageFlags.keyEncipherment } as Record<string, number>;
  const pem = await issueCertificate(options.ca, {
    subject: parsed.request.subjectName,
    publicKey: parsed.request.publicKey,
    dnsNames: parsed.dnsNames,
    ipAddresses: parsed.ipAddresses,
    extendedUsages: plan.extendedUsages.map((u) => extendedOid[u]),
    keyUsages: plan.keyUsages.reduce((all, u) => all | (flags[u] ?? 0), 0) || x509.KeyUsageFlags.digitalSignature,
    notBefore: plan.notBefore,
    notAfter: plan.notAfter,
  });
  await addCondition(registry, name, 'status', {}, Buffer.from(pem).toString('base64'));
  log.info({ csr: name, subject: facts.commonName, notAfter: plan.notAfter.toISOString() }, 'CSR signed');
}

export function startCsrController(registry: Registry, cache: WatchCache, log: Logger, options: CsrControllerOptions): Controller {
  const queue = new KeyQueue((name) => reconcile(registry, options, name, log), log);
  const off = cache.add(
    {
      filter: { prefix: storagePrefix(csrs), matches: () => true },
      send: (type, csr) => {
        if (type !== 'DELETED') queue.add(csr.metadata.name as string);
      },
    },
    cache.lastRevision(),
  );
  registry.list(csrs, undefined).then(
    (list) => list.items.forEach((csr) => queue.add(csr.metadata.name as string)),
    (error: unknown) => log.warn({ err: error }, 'cannot list CSRs'),
  );
  return {
    async stop() {
      off();
      await queue.stop();
    },
  };
}
