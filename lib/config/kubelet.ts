/**
 * KubeletConfiguration (kubelet.config.k8s.io/v1beta1). Defaults are the kubelet's documented
 * v1beta1 defaults (https://kubernetes.io/docs/reference/config-api/kubelet-config.v1beta1/),
 * except containerRuntimeEndpoint, whose knode default is the Docker Engine socket.
 * Durations are loaded as milliseconds. Unknown fields are warnings, as the kubelet's lenient
 * decoding after a failed strict decode.
 */
import { z } from 'zod';
import { duration, percent, port, quantity, resourceList, thresholdValue } from './fields.js';
import { expectTypeMeta, readConfigDocument, unknownTopLevelFields, validateConfig } from './load.js';
import { ConfigError } from '../errors.js';
import { parseDuration } from '../duration.js';
import { parseThresholdValue } from '../quantity.js';

export const kubeletApiVersion = 'kubelet.config.k8s.io/v1beta1';

/** The eviction signals the kubelet knows (docs: Node-pressure Eviction). */
export const evictionSignals = [
  'memory.available',
  'nodefs.available',
  'nodefs.inodesFree',
  'imagefs.available',
  'imagefs.inodesFree',
  'containerfs.available',
  'containerfs.inodesFree',
  'pid.available',
] as const;

const defaultEvictionHard = {
  'memory.available': '100Mi',
  'nodefs.available': '10%',
  'nodefs.inodesFree': '5%',
  'imagefs.available': '15%',
};

const signalMap = <T extends z.ZodType>(value: T) =>
  z.record(z.string(), value).superRefine((map, ctx) => {
    for (const key of Object.keys(map)) {
      if (!(evictionSignals as readonly string[]).includes(key)) {
        ctx.addIssue({ code: 'custom', path: [key], message: `unknown eviction signal "${key}" (one of ${evictionSignals.join(', ')})` });
      }
    }
  });

const taint = z.object({
  key: z.string().min(1),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']),
});

const ms = (text: string) => parseDuration(text);

interface ContradictionInput {
  shutdownGracePeriod: number;
  shutdownGracePeriodCriticalPods: number;
  serializeImagePulls: boolean;
  maxParallelImagePulls?: number | undefined;
  enforceNodeAllocatable: string[];
}

/** Settings that contradict each other: the kubelet's ValidateKubeletConfiguration messages. */
function contradictions(config: ContradictionInput, ctx: z.RefinementCtx): void {
  if (config.shutdownGracePeriodCriticalPods > config.shutdownGracePeriod) {
    ctx.addIssue({ code: 'custom', path: ['shutdownGracePeriodCriticalPods'], message: 'must be <= shutdownGracePeriod' });
  }
  if (config.serializeImagePulls && config.maxParallelImagePulls !== undefined && config.maxParallelImagePulls > 1) {
    ctx.addIssue({ code: 'custom', path: ['maxParallelImagePulls'], message: 'cannot be larger than 1 unless serializeImagePulls is false' });
  }
  if (config.enforceNodeAllocatable.includes('none') && config.enforceNodeAllocatable.length > 1) {
    ctx.addIssue({ code: 'custom', path: ['enforceNodeAllocatable'], message: '"none" cannot be combined with other values' });
  }
  // The kubelet needs systemReservedCgroup / kubeReservedCgroup for these, which knode does not take.
  for (const value of ['system-reserved', 'kube-reserved']) {
    if (config.enforceNodeAllocatable.includes(value)) {
      ctx.addIssue({ code: 'custom', path: ['enforceNodeAllocatable'], message: `"${value}" needs ${value === 'system-reserved' ? 'systemReservedCgroup' : 'kubeReservedCgroup'}, which knode does not support (use "pods" or "none")` });
    }
  }
}

export const kubeletConfigSchema = z
  .object({
    apiVersion: z.literal(kubeletApiVersion),
    kind: z.literal('KubeletConfiguration'),
    staticPodPath: z.string().default(''),
    staticPodURL: z.string().default(''),
    staticPodURLHeader: z.record(z.string(), z.array(z.string())).default({}),
    syncFrequency: duration.default(ms('1m')),
    fileCheckFrequency: duration.default(ms('20s')),
    httpCheckFrequency: duration.default(ms('20s')),
    address: z.string().default('0.0.0.0'),
    port: port.default(10250),
    readOnlyPort: port.default(0),
    tlsCertFile: z.string().default(''),
    tlsPrivateKeyFile: z.string().default(''),
    // Client certificate rotation (with --bootstrap-kubeconfig) and the serving certificate from a
    // kubelet-serving CSR instead of a self-signed one (agent/certificates/).
    rotateCertificates: z.boolean().default(false),
    serverTLSBootstrap: z.boolean().default(false),
    authentication: z
      .object({
        anonymous: z.object({ enabled: z.boolean().default(false) }).prefault({}),
        webhook: z.object({ enabled: z.boolean().default(true), cacheTTL: duration.default(ms('2m')) }).prefault({}),
        x509: z.object({ clientCAFile: z.string().default('') }).prefault({}),
      })
      .prefault({}),
    authorization: z
      .object({
        mode: z.enum(['AlwaysAllow', 'Webhook']).default('Webhook'),
        webhook: z
          .object({ cacheAuthorizedTTL: duration.default(ms('5m')), cacheUnauthorizedTTL: duration.default(ms('30s')) })
          .prefault({}),
      })
      .prefault({}),
    healthzPort: port.default(10248),
    healthzBindAddress: z.string().default('127.0.0.1'),
    enableServer: z.boolean().default(true),
    enableDebuggingHandlers: z.boolean().default(true),
    clusterDomain: z.string().default(''),
    clusterDNS: z.array(z.string()).default([]),
    resolvConf: z.string().default('/etc/resolv.conf'),
    nodeStatusUpdateFrequency: duration.default(ms('10s')),
    nodeStatusReportFrequency: duration.default(ms('5m')),
    nodeLeaseDurationSeconds: z.number().int().positive().default(40),
    imageMinimumGCAge: duration.default(ms('2m')),
    imageMaximumGCAge: duration.default(0),
    imageGCHighThresholdPercent: percent.default(85),
    imageGCLowThresholdPercent: percent.default(80),
    volumeStatsAggPeriod: duration.default(ms('1m')),
    cgroupsPerQOS: z.boolean().default(true),
    cgroupDriver: z.enum(['cgroupfs', 'systemd']).default('cgroupfs'),
    cgroupRoot: z.string().default(''),
    runtimeRequestTimeout: duration.default(ms('2m')),
    hairpinMode: z.enum(['promiscuous-bridge', 'hairpin-veth', 'none']).default('promiscuous-bridge'),
    maxPods: z.number().int().positive().default(110),
    podPidsLimit: z.number().int().default(-1),
    cpuCFSQuota: z.boolean().default(true),
    cpuCFSQuotaPeriod: duration.default(ms('100ms')),
    maxOpenFiles: z.number().int().positive().default(1_000_000),
    serializeImagePulls: z.boolean().default(true),
    // kubelet: nil (no limit) unless set; must be 1 or unset when serializeImagePulls is true
    maxParallelImagePulls: z.number().int().min(1).optional(),
    registryPullQPS: z.number().min(0).default(5),
    registryBurst: z.number().int().min(0).default(10),
    eventRecordQPS: z.number().min(0).default(50),
    eventBurst: z.number().int().min(0).default(100),
    kubeAPIQPS: z.number().min(0).default(50),
    kubeAPIBurst: z.number().int().min(0).default(100),
    evictionHard: signalMap(thresholdValue).optional(),
    evictionSoft: signalMap(thresholdValue).default({}),
    evictionSoftGracePeriod: signalMap(duration).default({}),
    evictionPressureTransitionPeriod: duration.default(ms('5m')),
    evictionMaxPodGracePeriod: z.number().int().default(0),
    // A quantity or a percentage, as the kubelet's parseMinimumReclaims.
    evictionMinimumReclaim: signalMap(thresholdValue).default({}),
    kubeReserved: resourceList.default({}),
    systemReserved: resourceList.default({}),
    enforceNodeAllocatable: z.array(z.enum(['pods', 'system-reserved', 'kube-reserved', 'none'])).default(['pods']),
    containerLogMaxSize: quantity.default('10Mi'),
    containerLogMaxFiles: z.number().int().min(2).default(5),
    containerRuntimeEndpoint: z.string().default('unix:///var/run/docker.sock'),
    failSwapOn: z.boolean().default(true),
    registerNode: z.boolean().default(true),
    registerWithTaints: z.array(taint).default([]),
    nodeLabels: z.record(z.string(), z.string()).default({}),
    providerID: z.string().default(''),
    shutdownGracePeriod: duration.default(0),
    shutdownGracePeriodCriticalPods: duration.default(0),
    // KEP-2712: grace periods per pod priority range (agent/node/shutdown-policy.ts).
    shutdownGracePeriodByPodPriority: z
      .array(z.object({ priority: z.number().int(), shutdownGracePeriodSeconds: z.number().int().min(0).max(86_400) }).strict())
      .max(100)
      .default([]),
    oomScoreAdj: z.number().int().min(-1000).max(1000).default(-999),
    featureGates: z.record(z.string(), z.boolean()).default({}),
  })
  .superRefine((config, ctx) => {
    // A soft threshold needs a grace period (kubelet: "evictionSoftGracePeriod must be specified").
    for (const signal of Object.keys(config.evictionSoft)) {
      if (!(signal in config.evictionSoftGracePeriod)) {
        ctx.addIssue({ code: 'custom', path: ['evictionSoftGracePeriod', signal], message: `soft eviction threshold "${signal}" has no grace period` });
      }
    }
    // A zero quantity threshold is an error ("eviction threshold … must be positive"); "0%" and
    // "100%" disable the signal (kubelet eviction helpers.go parseThresholdStatement).
    for (const field of ['evictionHard', 'evictionSoft'] as const) {
      for (const [signal, text] of Object.entries(config[field] ?? {})) {
        const value = parseThresholdValue(text);
        if ('quantity' in value && value.quantity === 0) {
          ctx.addIssue({ code: 'custom', path: [field, signal], message: `eviction threshold "${signal}" must be positive: ${text}` });
        }
      }
    }
    contradictions(config, ctx);
    if (config.shutdownGracePeriodByPodPriority.length > 0 && (config.shutdownGracePeriod > 0 || config.shutdownGracePeriodCriticalPods > 0)) {
      ctx.addIssue({ code: 'custom', path: ['shutdownGracePeriodByPodPriority'], message: 'cannot specify both shutdownGracePeriodByPodPriority and shutdownGracePeriod at the same time' });
    }
    const priorities = config.shutdownGracePeriodByPodPriority.map((p) => p.priority);
    if (new Set(priorities).size !== priorities.length) {
      ctx.addIssue({ code: 'custom', path: ['shutdownGracePeriodByPodPriority'], message: 'each priority may appear only once' });
    }
    if (config.imageGCLowThresholdPercent >= config.imageGCHighThresholdPercent) {
      ctx.addIssue({ code: 'custom', path: ['imageGCLowThresholdPercent'], message: 'must be lower than imageGCHighThresholdPercent' });
    }
  })
  .transform((config) => ({
    ...config,
    // Setting any evictionHard entry replaces the whole default map, as the kubelet does.
    evictionHard: config.evictionHard ?? { ...defaultEvictionHard },
  }));

export type KubeletConfiguration = z.output<typeof kubeletConfigSchema>;

const knownFields = Object.keys(kubeletConfigSchema.in.shape);

export interface LoadedConfig<T> {
  config: T;
  warnings: string[];
}

/** Validates an already-parsed KubeletConfiguration document. */
export function parseKubeletConfig(data: unknown, file: string): LoadedConfig<KubeletConfiguration> {
  const object = expectTypeMeta(data, file, [kubeletApiVersion], 'KubeletConfiguration');
  const warnings = unknownTopLevelFields(object, knownFields).map((field) => `config file "${file}": unknown field "${field}" ignored`);
  return { config: validateConfig(kubeletConfigSchema, object, file), warnings };
}

/** Loads a KubeletConfiguration file, or the defaults when no file is given. */
export function loadKubeletConfig(file?: string): LoadedConfig<KubeletConfiguration> {
  if (!file) return parseKubeletConfig({ apiVersion: kubeletApiVersion, kind: 'KubeletConfiguration' }, '(defaults)');
  return parseKubeletConfig(readConfigDocument(file), file);
}

export { ConfigError };
