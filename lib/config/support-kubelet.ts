/**
 * KubeletConfiguration: every accepted field, honoured (with the test that proves it) or not
 * implemented (named in the agent's one start-up warning when set). lib/config/support.ts has
 * the machinery; test/unit/config-support.test.ts checks this table against the schema, the
 * tests it names and the README.
 */
import { loadKubeletConfig, type KubeletConfiguration } from './kubelet.js';
import { unimplementedSettings, type FieldSupport, type SupportTable } from './support.js';

const h = (test: string, name: string, note?: string): FieldSupport => ({ status: 'honoured', test, name, ...(note ? { note } : {}) });
const no = (note?: string): FieldSupport => ({ status: 'not implemented', ...(note ? { note } : {}) });

const nodeTest = 'test/integration/agent-node.test.ts';
const settingsTest = 'test/integration/agent-settings.test.ts';
const settingsUnit = 'test/unit/agent-settings.test.ts';
const apiSide = 'test/unit/agent-api-side.test.ts';
const thresholds = 'test/unit/eviction-thresholds.test.ts';
const imageGC = 'test/unit/eviction-image-gc.test.ts';
const cgroupsUnit = 'test/unit/agent-pod-cgroups.test.ts';

export const kubeletSupport: SupportTable = {
  staticPodPath: h(nodeTest, 'runs a static pod with a mirror pod'),
  staticPodURL: h('test/unit/agent-sources.test.ts', 'polls, keeps the last good set on failure, and reads PodLists'),
  staticPodURLHeader: h('test/unit/agent-sources.test.ts', "headers: { 'X-Token': ['t1'] }"),
  syncFrequency: h('test/unit/agent-policy.test.ts', 'periodic resync: syncFrequency plus up to half again of jitter'),
  fileCheckFrequency: h('test/unit/agent-sources.test.ts', 'adds, changes and removes pods on file events, and rescans'),
  httpCheckFrequency: h('test/unit/agent-sources.test.ts', 'polls, keeps the last good set on failure, and reads PodLists'),
  address: h(nodeTest, 'serves /healthz, /stats/summary and /metrics'),
  port: h(nodeTest, 'serves /healthz, /stats/summary and /metrics'),
  readOnlyPort: h(settingsTest, 'readOnlyPort serves /healthz and /pods without authentication'),
  rotateCertificates: h('test/unit/agent-certificates.test.ts', 'rotates before expiry with a new key, stores it and reports it, then schedules the next rotation'),
  serverTLSBootstrap: h('test/e2e/join.test.ts', 'both nodes are Ready with bootstrapped client and serving certificates, and hold no admin credential'),
  tlsCertFile: h('test/e2e/agent-kubectl.test.ts', 'the kubelet API refuses requests without a client certificate'),
  tlsPrivateKeyFile: h('test/e2e/agent-kubectl.test.ts', 'the kubelet API refuses requests without a client certificate'),
  'authentication.anonymous.enabled': h(apiSide, 'anonymous when enabled, AlwaysAllow: 200'),
  'authentication.webhook.enabled': h(apiSide, 'a good token, Webhook authorization allows stats only'),
  'authentication.webhook.cacheTTL': h(settingsUnit, 'cacheTTL, cacheAuthorizedTTL and cacheUnauthorizedTTL bound how long review answers are reused', 'TokenReview answers cached this long'),
  'authentication.x509.clientCAFile': h('test/e2e/agent-kubectl.test.ts', 'the kubelet API refuses requests without a client certificate'),
  'authorization.mode': h(apiSide, 'anonymous with Webhook authorization: 403'),
  'authorization.webhook.cacheAuthorizedTTL': h(settingsUnit, 'cacheTTL, cacheAuthorizedTTL and cacheUnauthorizedTTL bound how long review answers are reused', 'SubjectAccessReview answers cached this long'),
  'authorization.webhook.cacheUnauthorizedTTL': h(settingsUnit, 'cacheTTL, cacheAuthorizedTTL and cacheUnauthorizedTTL bound how long review answers are reused', 'SubjectAccessReview answers cached this long'),
  healthzPort: h(settingsUnit, 'healthz answers ok on healthzBindAddress:healthzPort', '0 disables it, as the kubelet'),
  healthzBindAddress: h(settingsUnit, 'healthz answers ok on healthzBindAddress:healthzPort'),
  enableServer: h(settingsTest, 'enableServer false: no kubelet API server'),
  enableDebuggingHandlers: no('exec, attach, port-forward, logs and /run are always served (subject to authorization)'),
  clusterDomain: h('test/e2e/dns-two-node.test.ts', 'busybox nslookup and glibc getent resolve web, web.default and the full name'),
  clusterDNS: h('test/e2e/dns-two-node.test.ts', 'pods have the clusterDNS in resolv.conf'),
  resolvConf: h('test/unit/agent-runtime-config.test.ts', 'parses resolv.conf'),
  nodeStatusUpdateFrequency: h('test/integration/agent-node-server-view.test.ts', 'puts Ready=True back after the node lifecycle controller wrote Ready=Unknown'),
  nodeStatusReportFrequency: h(apiSide, 'patches only on change'),
  nodeLeaseDurationSeconds: h(nodeTest, 'registers the node Ready with labels, addresses, capacity and a lease'),
  imageMinimumGCAge: h(imageGC, 'respects imageMinimumGCAge'),
  imageMaximumGCAge: h(imageGC, 'imageMaximumGCAge removes images unused for longer than it'),
  imageGCHighThresholdPercent: h(imageGC, 'frees unused images down to the low threshold'),
  imageGCLowThresholdPercent: h(imageGC, 'frees unused images down to the low threshold'),
  volumeStatsAggPeriod: no('volume usage is measured when the stats are asked for'),
  cgroupsPerQOS: h('test/integration/agent-pod-cgroups.test.ts', 'Burstable pod: the pod cgroup holds the summed limits'),
  cgroupDriver: h('test/e2e/systemd.test.ts', 'cgroupDriver: systemd — each pod is a slice with its limits'),
  cgroupRoot: h(cgroupsUnit, 'v1: pod cgroup per controller hierarchy'),
  runtimeRequestTimeout: h(settingsUnit, 'runtimeRequestTimeout fails a hung runtime call'),
  hairpinMode: no('hairpin is set by the CNI plugin configuration (hairpinMode in the conflist)'),
  maxPods: h(nodeTest, 'registers the node Ready with labels, addresses, capacity and a lease'),
  podPidsLimit: h('test/unit/agent-pod-resources.test.ts', 'BestEffort with podPidsLimit'),
  cpuCFSQuota: h('test/unit/agent-runtime-config.test.ts', 'resources: minimum shares, no quota without a limit'),
  cpuCFSQuotaPeriod: h('test/unit/agent-pod-resources.test.ts', 'custom CFS period'),
  maxOpenFiles: no(),
  serializeImagePulls: h(settingsUnit, 'serializeImagePulls: one pull at a time'),
  maxParallelImagePulls: h(settingsUnit, 'maxParallelImagePulls bounds concurrent pulls'),
  registryPullQPS: h(settingsUnit, 'registryPullQPS: a pull beyond the rate fails with pull QPS exceeded'),
  registryBurst: h(settingsUnit, 'registryPullQPS: a pull beyond the rate fails with pull QPS exceeded'),
  eventRecordQPS: h('test/unit/lib-events.test.ts', 'writes no faster than eventRecordQPS after a burst of eventBurst'),
  eventBurst: h('test/unit/lib-events.test.ts', 'writes no faster than eventRecordQPS after a burst of eventBurst'),
  kubeAPIQPS: h(settingsTest, 'kubeAPIQPS/kubeAPIBurst hold API requests beyond the burst'),
  kubeAPIBurst: h(settingsTest, 'kubeAPIQPS/kubeAPIBurst hold API requests beyond the burst'),
  evictionHard: h(thresholds, 'hard threshold acts at once'),
  evictionSoft: h(thresholds, 'soft threshold acts only after its grace period'),
  evictionSoftGracePeriod: h(thresholds, 'soft threshold acts only after its grace period'),
  evictionPressureTransitionPeriod: h(thresholds, 'condition held for the transition period after it clears'),
  evictionMaxPodGracePeriod: h('test/unit/eviction-manager.test.ts', 'min(pod grace, evictionMaxPodGracePeriod)'),
  evictionMinimumReclaim: h(thresholds, 'a met threshold stays met until minimum reclaim is reached'),
  kubeReserved: h(apiSide, 'allocatable = capacity − reserved − hard eviction'),
  systemReserved: h(apiSide, 'allocatable = capacity − reserved − hard eviction'),
  enforceNodeAllocatable: h(cgroupsUnit, 'enforceNodeAllocatable pods: the kubepods cgroup is limited', '"pods": kubepods gets cpu shares and a memory limit of capacity − kubeReserved − systemReserved; "none": the whole capacity; system-reserved/kube-reserved are refused (no *ReservedCgroup)'),
  containerLogMaxSize: h('test/unit/cri-docker-resources.test.ts', 'is what container create uses'),
  containerLogMaxFiles: h('test/unit/cri-docker-resources.test.ts', 'is what container create uses'),
  containerRuntimeEndpoint: h('test/e2e/helpers-node.ts', "'--container-runtime-endpoint', runtime.endpoint", 'tested through --container-runtime-endpoint, the flag of the same setting (it overrides the field): every e2e agent talks to its own dockerd'),
  failSwapOn: h(settingsUnit, 'failSwapOn refuses to start with swap on'),
  registerNode: h(settingsTest, 'registerNode false: no Node is created'),
  registerWithTaints: h(settingsTest, 'registers with the flag labels and taints'),
  nodeLabels: h(settingsTest, 'registers with the flag labels and taints'),
  providerID: h(settingsTest, 'registers with the flag labels and taints'),
  shutdownGracePeriod: h('test/e2e/graceful-shutdown.test.ts', 'poweroff: NotReady, the ordinary pod terminated before the critical one'),
  shutdownGracePeriodCriticalPods: h('test/e2e/graceful-shutdown.test.ts', 'poweroff: NotReady, the ordinary pod terminated before the critical one'),
  shutdownGracePeriodByPodPriority: h('test/unit/agent-shutdown-policy.test.ts', 'by priority, sorted', 'the same groups and termination as the two settings (agent/node/shutdown-policy.ts)'),
  oomScoreAdj: h('test/unit/agent-runtime-config.test.ts', 'OOM floor'),
  featureGates: no('knode has no feature gates; features are on or off as documented'),
};

let defaults: KubeletConfiguration | undefined;

/** Not-implemented fields this config sets to something other than the default. */
export function kubeletUnimplemented(config: KubeletConfiguration): string[] {
  defaults ??= loadKubeletConfig().config;
  return unimplementedSettings(config, defaults, kubeletSupport);
}
