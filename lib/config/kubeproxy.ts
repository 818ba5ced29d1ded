/**
 * KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1). Defaults are kube-proxy's
 * documented v1alpha1 defaults
 * (https://kubernetes.io/docs/reference/config-api/kube-proxy-config.v1alpha1/); an empty
 * mode means iptables on Linux. Durations are loaded as milliseconds.
 */
import { z } from 'zod';
import { isValidCIDR } from '../net.js';
import { duration, hostPort } from './fields.js';
import { expectTypeMeta, readConfigDocument, unknownTopLevelFields, validateConfig } from './load.js';
import { parseDuration } from '../duration.js';
import type { LoadedConfig } from './kubelet.js';

export const kubeProxyApiVersion = 'kubeproxy.config.k8s.io/v1alpha1';

const ms = (text: string) => parseDuration(text);
const cidr = z.string().refine(isValidCIDR, 'must be a CIDR such as 10.244.0.0/16');
const cidrList = z
  .string()
  .refine((text) => text === '' || text.split(',').every((part) => isValidCIDR(part.trim())), 'must be a comma-separated list of CIDRs');

export const kubeProxyConfigSchema = z
  .object({
    apiVersion: z.literal(kubeProxyApiVersion),
    kind: z.literal('KubeProxyConfiguration'),
    bindAddress: z.string().default('0.0.0.0'),
    healthzBindAddress: hostPort.default('0.0.0.0:10256'),
    metricsBindAddress: hostPort.default('127.0.0.1:10249'),
    bindAddressHardFail: z.boolean().default(false),
    enableProfiling: z.boolean().default(false),
    clusterCIDR: cidrList.default(''),
    hostnameOverride: z.string().default(''),
    clientConnection: z
      .object({
        kubeconfig: z.string().default(''),
        qps: z.number().min(0).default(5),
        burst: z.number().int().min(0).default(10),
      })
      .prefault({}),
    mode: z.enum(['', 'iptables', 'ipvs', 'nftables']).default('').transform((mode) => (mode === '' ? 'iptables' : mode)),
    iptables: z
      .object({
        masqueradeAll: z.boolean().default(false),
        masqueradeBit: z.number().int().min(0).max(31).default(14),
        localhostNodePorts: z.boolean().default(true),
        syncPeriod: duration.default(ms('30s')),
        minSyncPeriod: duration.default(ms('1s')),
      })
      .prefault({}),
    // kube-proxy's nftables section (v1.29+): the same knobs as iptables, its own values
    nftables: z
      .object({
        masqueradeAll: z.boolean().default(false),
        masqueradeBit: z.number().int().min(0).max(31).default(14),
        syncPeriod: duration.default(ms('30s')),
        minSyncPeriod: duration.default(ms('1s')),
      })
      .prefault({}),
    ipvs: z
      .object({
        syncPeriod: duration.default(ms('30s')),
        minSyncPeriod: duration.default(0),
        scheduler: z.string().default('rr').transform((name) => name || 'rr'),
        excludeCIDRs: z.array(cidr).default([]),
        strictARP: z.boolean().default(false),
        tcpTimeout: duration.default(0),
        tcpFinTimeout: duration.default(0),
        udpTimeout: duration.default(0),
      })
      .prefault({}),
    conntrack: z
      .object({
        maxPerCore: z.number().int().min(0).default(32768),
        min: z.number().int().min(0).default(131072),
        tcpEstablishedTimeout: duration.default(ms('24h')),
        tcpCloseWaitTimeout: duration.default(ms('1h')),
        udpTimeout: duration.default(0),
        udpStreamTimeout: duration.default(0),
      })
      .prefault({}),
    nodePortAddresses: z.array(z.string()).default([]),
    oomScoreAdj: z.number().int().min(-1000).max(1000).default(-999),
    configSyncPeriod: duration.default(ms('15m')),
    portRange: z.string().default(''),
    detectLocalMode: z.enum(['', 'ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix']).default(''),
    featureGates: z.record(z.string(), z.boolean()).default({}),
  })
  .superRefine((config, ctx) => {
    if (config.iptables.minSyncPeriod > config.iptables.syncPeriod) {
      ctx.addIssue({ code: 'custom', path: ['iptables', 'minSyncPeriod'], message: 'must not be greater than iptables.syncPeriod' });
    }
  });

export type KubeProxyConfiguration = z.output<typeof kubeProxyConfigSchema>;

const knownFields = Object.keys(kubeProxyConfigSchema.shape);

export function parseKubeProxyConfig(data: unknown, file: string): LoadedConfig<KubeProxyConfiguration> {
  const object = expectTypeMeta(data, file, [kubeProxyApiVersion], 'KubeProxyConfiguration');
  const warnings = unknownTopLevelFields(object, knownFields).map((field) => `config file "${file}": unknown field "${field}" ignored`);
  return { config: validateConfig(kubeProxyConfigSchema, object, file), warnings };
}

export function loadKubeProxyConfig(file?: string): LoadedConfig<KubeProxyConfiguration> {
  if (!file) return parseKubeProxyConfig({ apiVersion: kubeProxyApiVersion, kind: 'KubeProxyConfiguration' }, '(defaults)');
  return parseKubeProxyConfig(readConfigDocument(file), file);
}
