/**
 * The runtime boundary of knode: a CRI-shaped TypeScript interface. Names and shapes follow the
 * CRI v1 protobuf (k8s.io/cri-api/pkg/apis/runtime/v1/api.proto) in camelCase, and the methods
 * follow the kubelet's Go interface over it (k8s.io/cri-api/pkg/apis/services.go: positional
 * arguments, e.g. `createContainer(podSandboxId, config, sandboxConfig)`).
 *
 * Deviations, all deliberate:
 * - protobuf wrapper types (Int64Value, UInt64Value) are plain optional numbers;
 * - timestamps are nanoseconds since the epoch as `number` (sub-microsecond precision is lost);
 * - exec/attach return node streams instead of a URL to a streaming server, because the
 *   kubelet API is served by the same process;
 * - a few knode extensions are marked "knode:" below (e.g. `pidsLimit`, `podSandboxId` on
 *   statuses, `restartCount`).
 *
 * The agent computes everything that comes from the pod spec (env with $(VAR) expansion,
 * configMap/secret contents, volume host paths including subPath, DNS config from dnsPolicy,
 * labels/annotations such as the container hash and restart count) and hands the runtime a
 * PodSandboxConfig / ContainerConfig, exactly like the kubelet does for a CRI runtime.
 */
import type { Duplex, Readable, Writable } from 'node:stream';

// ---------------------------------------------------------------------------------------------
// Common

export type Labels = Record<string, string>;

interface KeyValue {
  key: string;
  value: string;
}

export interface VersionResponse {
  /** Version of the kubelet runtime API ("0.1.0" in CRI). */
  version: string;
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}

/** RuntimeCondition types the kubelet looks at (RuntimeReady, NetworkReady). */
export interface RuntimeCondition {
  type: 'RuntimeReady' | 'NetworkReady' | string;
  status: boolean;
  reason: string;
  message: string;
}

export interface RuntimeStatus {
  conditions: RuntimeCondition[];
}

/** CRI NamespaceMode: POD (shared by the pod), CONTAINER (own), NODE (host), TARGET. */
type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}

// ---------------------------------------------------------------------------------------------
// Pod sandbox

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

export interface DNSConfig {
  servers: string[];
  searches: string[];
  options: string[];
}

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface PortMapping {
  protocol: Protocol;
  containerPort: number;
  hostPort?: number;
  hostIp?: string;
}

interface LinuxSandboxSecurityContext {
  namespaceOptions?: NamespaceOption;
  runAsUser?: number;
  runAsGroup?: number;
  readonlyRootfs?: boolean;
  supplementalGroups?: number[];
  privileged?: boolean;
}

interface LinuxPodSandboxConfig {
  cgroupParent?: string;
  securityContext?: LinuxSandboxSecurityContext;
  sysctls?: Record<string, string>;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  /** Directory for the pod's container logs, e.g. /var/log/pods/<ns>_<pod>_<uid>. */
  logDirectory?: string;
  dnsConfig?: DNSConfig;
  portMappings?: PortMapping[];
  labels?: Labels;
  annotations?: Labels;
  linux?: LinuxPodSandboxConfig;
}

type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: number;
  labels: Labels;
  annotations: Labels;
  runtimeHandler: string;
}

interface PodIP {
  ip: string;
}

interface PodSandboxNetworkStatus {
  /** Primary pod IP ('' for hostNetwork pods and before the network is set up). */
  ip: string;
  additionalIps: PodIP[];
}

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: number;
  network: PodSandboxNetworkStatus;
  linux: { namespaces: { options: NamespaceOption } };
  labels: Labels;
  annotations: Labels;
  runtimeHandler: string;
}

export interface PodSandboxFilter {
  id?: string;
  state?: PodSandboxState;
  /** Every key/value must match the sandbox's labels. */
  labelSelector?: Labels;
}

// ---------------------------------------------------------------------------------------------
// Containers

export interface ContainerMetadata {
  name: string;
  attempt: number;
}

export interface ImageSpec {
  image: string;
  annotations?: Labels;
}

export type MountPropagation = 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';

export interface Mount {
  containerPath: string;
  /** Absolute path on the node; the agent resolves subPath before (as the kubelet does). */
  hostPath: string;
  readonly?: boolean;
  selinuxRelabel?: boolean;
  propagation?: MountPropagation;
}

interface Device {
  containerPath: string;
  hostPath: string;
  /** cgroup permissions: any of "r", "w", "m". */
  permissions: string;
}

export interface LinuxContainerResources {
  cpuPeriod?: number;
  cpuQuota?: number;
  cpuShares?: number;
  memoryLimitInBytes?: number;
  oomScoreAdj?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  memorySwapLimitInBytes?: number;
  /** knode: pids limit of the container's cgroup (the kubelet sets podPidsLimit per pod). */
  pidsLimit?: number;
  unified?: Record<string, string>;
}

interface Capability {
  addCapabilities?: string[];
  dropCapabilities?: string[];
}

interface LinuxContainerSecurityContext {
  capabilities?: Capability;
  privileged?: boolean;
  namespaceOptions?: NamespaceOption;
  runAsUser?: number;
  runAsGroup?: number;
  runAsUsername?: string;
  readonlyRootfs?: boolean;
  supplementalGroups?: number[];
  /** allowPrivilegeEscalation=false → noNewPrivs=true. */
  noNewPrivs?: boolean;
  maskedPaths?: string[];
  readonlyPaths?: string[];
}

interface LinuxContainerConfig {
  resources?: LinuxContainerResources;
  securityContext?: LinuxContainerSecurityContext;
}

export interface ContainerConfig {
  metadata: ContainerMetadata;
  image: ImageSpec;
  /** Entrypoint (pod spec `command`), already $(VAR)-expanded by the agent. */
  command?: string[];
  /** Pod spec `args`, already $(VAR)-expanded by the agent. */
  args?: string[];
  workingDir?: string;
  envs?: KeyValue[];
  mounts?: Mount[];
  devices?: Device[];
  labels?: Labels;
  annotations?: Labels;
  /** Relative to the sandbox's logDirectory, e.g. "<container>/<restartCount>.log". */
  logPath?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  linux?: LinuxContainerConfig;
}

export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

export interface Container {
  id: string;
  podSandboxId: string;
  metadata: ContainerMetadata;
  image: ImageSpec;
  imageRef: string;
  state: ContainerState;
  createdAt: number;
  labels: Labels;
  annotations: Labels;
}

export interface ContainerStatus {
  id: string;
  /** knode: the sandbox the container belongs to. */
  podSandboxId: string;
  metadata: ContainerMetadata;
  state: ContainerState;
  createdAt: number;
  /** 0 when the container never started. */
  startedAt: number;
  /** 0 while not exited. */
  finishedAt: number;
  exitCode: number;
  image: ImageSpec;
  imageRef: string;
  /** e.g. "Completed", "Error", "OOMKilled" when exited. */
  reason: string;
  message: string;
  labels: Labels;
  annotations: Labels;
  mounts: Mount[];
  /** Absolute path of the container's CRI log file ('' when none). */
  logPath: string;
  /**
   * The cgroup settings the container runs with now (CRI ContainerStatus.resources.linux: cpu
   * shares/quota/period and memory limit), read back from the runtime (KEP-1287 actual resources).
   */
  resources?: LinuxContainerResources;
}

export interface ContainerFilter {
  id?: string;
  state?: ContainerState;
  podSandboxId?: string;
  labelSelector?: Labels;
}

// ---------------------------------------------------------------------------------------------
// Exec / attach

export interface ExecSyncResponse {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface ExecRequest {
  containerId: string;
  cmd: string[];
  tty?: boolean;
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
}

export interface AttachRequest {
  containerId: string;
  tty?: boolean;
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
}

/** A running exec/attach session. With tty, everything arrives on `stdout`. */
export interface StreamSession {
  stdin?: Writable;
  stdout?: Readable;
  stderr?: Readable;
  resize(width: number, height: number): Promise<void>;
  /** Resolves when the process ends (exec) or the stream closes (attach). */
  wait(): Promise<{ exitCode: number }>;
  /** Ends the session (closes the connection). */
  close(): void;
}

// ---------------------------------------------------------------------------------------------
// Stats

interface FilesystemIdentifier {
  mountpoint: string;
}

export interface FilesystemUsage {
  timestamp: number;
  fsId: FilesystemIdentifier;
  usedBytes: number;
  inodesUsed?: number;
}

interface CpuUsage {
  timestamp: number;
  usageCoreNanoSeconds: number;
  /** Average over the interval since the previous sample, when known. */
  usageNanoCores?: number;
}

interface MemoryUsage {
  timestamp: number;
  /** usage − inactive_file, as the kubelet/cAdvisor compute it. */
  workingSetBytes: number;
  usageBytes?: number;
  rssBytes?: number;
  availableBytes?: number;
  pageFaults?: number;
  majorPageFaults?: number;
}

interface ContainerAttributes {
  id: string;
  metadata: ContainerMetadata;
  labels: Labels;
  annotations: Labels;
}

export interface ContainerStats {
  attributes: ContainerAttributes;
  cpu: CpuUsage;
  memory: MemoryUsage;
  writableLayer?: FilesystemUsage;
}

export interface ContainerStatsFilter {
  id?: string;
  podSandboxId?: string;
  labelSelector?: Labels;
}

// ---------------------------------------------------------------------------------------------
// Images

export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64("user:password") as in a dockerconfigjson. */
  auth?: string;
  serverAddress?: string;
  identityToken?: string;
  registryToken?: string;
}

export interface Image {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
  uid?: number;
  username: string;
  pinned: boolean;
}

export interface ImageFilter {
  image?: ImageSpec;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** gRPC-like codes, so callers can branch without parsing messages. */
export type CriErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'InvalidArgument'
  | 'FailedPrecondition'
  | 'DeadlineExceeded'
  | 'Unavailable'
  | 'Unknown';

/** Container-waiting reasons the kubelet reports for image problems (kubelet images/types.go). */
type ImageErrorReason = 'ErrImagePull' | 'ImagePullBackOff' | 'ErrImageNeverPull' | 'InvalidImageName' | 'RegistryUnavailable';

export interface CriErrorContext {
  code?: CriErrorCode;
  podSandboxId?: string;
  containerId?: string;
  /** "<namespace>/<name>" of the pod concerned, when known. */
  pod?: string;
  /** Container name concerned, when known. */
  container?: string;
  image?: string;
  /** For image errors: the reason the kubelet would put on the container's waiting state. */
  reason?: ImageErrorReason | string;
  cause?: unknown;
}

export class CriError extends Error {
  readonly code: CriErrorCode;
  readonly podSandboxId?: string;
  readonly containerId?: string;
  readonly pod?: string;
  readonly container?: string;
  readonly image?: string;
  readonly reason?: string;

  constructor(message: string, context: CriErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = 'CriError';
    this.code = context.code ?? 'Unknown';
    this.podSandboxId = context.podSandboxId;
    this.containerId = context.containerId;
    this.pod = context.pod;
    this.container = context.container;
    this.image = context.image;
    this.reason = context.reason;
  }
}

export function isCriError(error: unknown, code?: CriErrorCode): error is CriError {
  return error instanceof CriError && (code === undefined || error.code === code);
}

// ---------------------------------------------------------------------------------------------
// Services

export interface RuntimeService {
  version(apiVersion?: string): Promise<VersionResponse>;
  status(): Promise<RuntimeStatus>;

  /**
   * Not CRI (libcni GCNetworkList): releases the network of every sandbox that is not ready,
   * e.g. sandboxes that died with a runtime restart. Optional: runtimes without CNI omit it.
   */
  garbageCollectNetwork?(): Promise<void>;

  /** Creates and starts the sandbox (pause container + network); returns its id. */
  runPodSandbox(config: PodSandboxConfig, runtimeHandler?: string): Promise<string>;
  /**
   * Stops every container of the sandbox, tears down the network. Unknown id, or a sandbox that
   * is already NotReady (e.g. after a runtime restart): success, and its network is torn down
   * if it was not (cri-dockerd and containerd do the same).
   */
  stopPodSandbox(podSandboxId: string): Promise<void>;
  /** Removes the sandbox and its containers (force). Unknown id: success. */
  removePodSandbox(podSandboxId: string): Promise<void>;
  /** Throws CriError NotFound for an unknown id. */
  podSandboxStatus(podSandboxId: string): Promise<PodSandboxStatus>;
  listPodSandbox(filter?: PodSandboxFilter): Promise<PodSandbox[]>;
  /**
   * Not CRI: every sandbox and container (as listPodSandbox() and listContainers() without
   * filter) from one query of the runtime, for the PLEG relist. Optional: without it the PLEG
   * makes both calls.
   */
  listPodResources?(): Promise<{ sandboxes: PodSandbox[]; containers: Container[] }>;

  /** Creates a container in the sandbox; returns its id. */
  createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string>;
  startContainer(containerId: string): Promise<void>;
  /** SIGTERM, then SIGKILL after `timeoutSeconds`. Unknown id or already stopped: success. */
  stopContainer(containerId: string, timeoutSeconds: number): Promise<void>;
  /** Force-removes. Unknown id: success. */
  removeContainer(containerId: string): Promise<void>;
  listContainers(filter?: ContainerFilter): Promise<Container[]>;
  /** Throws CriError NotFound for an unknown id. */
  containerStatus(containerId: string): Promise<ContainerStatus>;
  updateContainerResources(containerId: string, resources: LinuxContainerResources): Promise<void>;
  /** Reopens the container's log file (after log rotation). */
  reopenContainerLog(containerId: string): Promise<void>;

  /**
   * Runs a command in the container and waits. `timeoutSeconds` 0 means no timeout; when it
   * expires the call throws CriError DeadlineExceeded (the kubelet treats it as a probe timeout).
   */
  execSync(containerId: string, cmd: string[], timeoutSeconds: number): Promise<ExecSyncResponse>;
  exec(request: ExecRequest): Promise<StreamSession>;
  attach(request: AttachRequest): Promise<StreamSession>;
  /**
   * CRI PortForward: connects `stream` to localhost:`port` inside the sandbox's network
   * namespace, both ways; resolves when the connection is over and rejects with the reason
   * when it cannot be made or fails. The caller ends the stream afterwards (after reporting
   * the error, as the kubelet writes it on the error stream before closing the data stream).
   */
  portForward(podSandboxId: string, port: number, stream: Duplex): Promise<void>;

  /** Throws CriError NotFound for an unknown id. */
  containerStats(containerId: string): Promise<ContainerStats>;
  /** Stats of running containers. */
  listContainerStats(filter?: ContainerStatsFilter): Promise<ContainerStats[]>;
}

interface ImageService {
  listImages(filter?: ImageFilter): Promise<Image[]>;
  /** undefined when the image is not present (CRI returns a nil image). */
  imageStatus(image: ImageSpec): Promise<Image | undefined>;
  /** Returns the image reference (id). Failures are CriError with reason ErrImagePull. */
  pullImage(image: ImageSpec, auth?: AuthConfig, sandboxConfig?: PodSandboxConfig): Promise<string>;
  /** Absent image: success. */
  removeImage(image: ImageSpec): Promise<void>;
  imageFsInfo(): Promise<FilesystemUsage[]>;
}

/** What the agent holds: both services, from one object. */
export interface ContainerRuntime extends RuntimeService, ImageService {}

// ---------------------------------------------------------------------------------------------
// Well-known labels and annotations

/**
 * Labels the kubelet puts on sandboxes/containers (pkg/kubelet/types/labels.go,
 * pkg/kubelet/kuberuntime/labels.go). The Docker runtime also sets the first four itself from
 * the metadata, so a restart can rebuild everything from Docker alone.
 */
export const kubeLabels = {
  podName: 'io.kubernetes.pod.name',
  podNamespace: 'io.kubernetes.pod.namespace',
  podUid: 'io.kubernetes.pod.uid',
  containerName: 'io.kubernetes.container.name',
} as const;

/** Annotations the kubelet sets on containers (kuberuntime/labels.go). */
export const kubeAnnotations = {
  containerHash: 'io.kubernetes.container.hash',
  restartCount: 'io.kubernetes.container.restartCount',
  terminationMessagePath: 'io.kubernetes.container.terminationMessagePath',
  terminationMessagePolicy: 'io.kubernetes.container.terminationMessagePolicy',
  podDeletionGracePeriod: 'io.kubernetes.pod.deletionGracePeriod',
  podTerminationGracePeriod: 'io.kubernetes.pod.terminationGracePeriod',
  containerPorts: 'io.kubernetes.container.ports',
} as const;

/** Matches a label selector (every key/value present). */
export function matchesLabels(labels: Labels, selector: Labels | undefined): boolean {
  if (!selector) return true;
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** Current time in nanoseconds since the epoch (as a number). */
export function nowNs(): number {
  return Date.now() * 1e6;
}

// ---------------------------------------------------------------------------------------------
// Log paths (kubelet pkg/kubelet/kuberuntime/helpers.go BuildPodLogsDirectory / BuildContainerLogsDirectory)

/** /var/log/pods/<namespace>_<pod>_<uid>: the sandbox's logDirectory. */
export function podLogDirectory(namespace: string, podName: string, podUid: string, root = '/var/log/pods'): string {
  return `${root.replace(/\/+$/, '')}/${namespace}_${podName}_${podUid}`;
}

/** "<container>/<restartCount>.log": a container's logPath, relative to the logDirectory. */
export function containerLogPath(containerName: string, restartCount: number): string {
  return `${containerName}/${restartCount}.log`;
}
